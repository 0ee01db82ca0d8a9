"""The ways a PostgreSQL server can be unreachable, turned into `StoreUnavailable` (503)."""

from __future__ import annotations

import asyncio
import functools
from collections.abc import Awaitable, Callable
from typing import Any, TypeVar

import asyncpg

from .base import StoreUnavailable

T = TypeVar("T")

UNAVAILABLE = (
    OSError,
    asyncio.TimeoutError,
    asyncpg.InterfaceError,
    asyncpg.PostgresConnectionError,
    asyncpg.CannotConnectNowError,
    asyncpg.AdminShutdownError,
    # The schema is not there yet: the server started before the database and is still migrating.
    asyncpg.UndefinedTableError,
)


def guarded(method: Callable[..., Awaitable[T]]) -> Callable[..., Awaitable[T]]:
    """Decorate a store method: an unreachable database raises StoreUnavailable, nothing else changes."""

    @functools.wraps(method)
    async def wrapper(self: Any, *args: Any, **kwargs: Any) -> T:
        try:
            return await method(self, *args, **kwargs)
        except UNAVAILABLE as exc:
            raise StoreUnavailable(f"The database is not available ({type(exc).__name__}).") from None

    return wrapper
