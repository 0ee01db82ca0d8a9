"""Storage: `open_store(settings)` picks SQLite or PostgreSQL from `DATABASE_URL`."""

from __future__ import annotations

from ..settings import Settings, SettingsError
from .base import Store, StoreUnavailable
from .monitors import MonitorStore
from .sqlite import SQLiteStore, sqlite_path
from .tokens import TokenStore

__all__ = ["MonitorStore", "Store", "StoreUnavailable", "TokenStore", "open_store"]


def open_store(settings: Settings) -> Store:
    url = settings.database_url
    scheme = url.split(":", 1)[0].lower()
    if scheme == "sqlite":
        try:
            path = sqlite_path(url)
        except ValueError as exc:
            raise SettingsError(f"DATABASE_URL: {exc}") from None
        return SQLiteStore(path, timeout=settings.db_timeout_seconds)
    if scheme.startswith("postgres"):
        from .postgres import PostgresStore

        return PostgresStore(
            url,
            min_size=settings.db_pool_min_size,
            max_size=settings.db_pool_max_size,
            timeout=settings.db_timeout_seconds,
        )
    raise SettingsError(f"DATABASE_URL must start with sqlite:/// or postgresql:// (got {scheme}:)")
