"""The shared store: PostgreSQL through an asyncpg pool, for several workers and instances."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime
from typing import Any, TypeVar

import asyncpg

from ..tokens import Grant, TokenRecord
from .base import Store
from .migrations import MIGRATIONS
from .postgres_guard import guarded
from .postgres_monitors import PostgresMonitorStore

T = TypeVar("T")

# One statement checks and counts. Concurrent updates of the row queue on its lock and
# each re-checks the WHERE clause against the row as the previous one left it (READ
# COMMITTED), so the limit holds across any number of workers and instances.
# `>= $2` rather than `=`: see the SQLite store (clocks a little apart around midnight).
AUTHORIZE = """
UPDATE tokens SET
    request_count = CASE WHEN last_request_date >= $2 THEN request_count + 1 ELSE 1 END,
    last_request_date = GREATEST(last_request_date, $2),
    lifetime_requests = lifetime_requests + 1
WHERE token_hash = $1
  AND (expiry IS NULL OR expiry > $3)
  AND (CASE WHEN last_request_date >= $2 THEN request_count ELSE 0 END) < rate_limit
RETURNING username, rate_limit, request_count, lifetime_requests, expiry
"""

TOKEN_COLUMNS = (
    "token_hash, username, expiry, rate_limit, request_count, last_request_date, "
    "lifetime_requests, created_at"
)
MIGRATION_LOCK = 0x6C6C6D77  # "llmw": one advisory lock key for schema changes




def _record(row: asyncpg.Record) -> TokenRecord:
    return TokenRecord(**dict(row))


class PostgresStore(PostgresMonitorStore, Store):
    dialect = "postgresql"

    def __init__(self, dsn: str, *, min_size: int = 1, max_size: int = 10, timeout: float = 5.0) -> None:
        self.dsn = dsn.replace("postgresql+asyncpg://", "postgresql://", 1)
        self.min_size, self.max_size, self.timeout = min_size, max_size, timeout
        self._pool: asyncpg.Pool | None = None
        self._lock = asyncio.Lock()

    async def pool(self) -> asyncpg.Pool:
        """The pool, created on first use (and again after a failed first connect)."""
        if self._pool is None:
            async with self._lock:
                if self._pool is None:
                    self._pool = await asyncpg.create_pool(
                        self.dsn,
                        min_size=self.min_size,
                        max_size=self.max_size,
                        timeout=self.timeout,
                        command_timeout=self.timeout,
                    )
        return self._pool

    async def _fetchrow(self, sql: str, *args: Any) -> asyncpg.Record | None:
        pool = await self.pool()
        return await pool.fetchrow(sql, *args, timeout=self.timeout)

    async def _fetch(self, sql: str, *args: Any) -> list[asyncpg.Record]:
        pool = await self.pool()
        return await pool.fetch(sql, *args, timeout=self.timeout)

    async def _execute(self, sql: str, *args: Any) -> str:
        pool = await self.pool()
        return await pool.execute(sql, *args, timeout=self.timeout)

    @guarded
    async def migrate(self) -> list[str]:
        applied: list[str] = []
        pool = await self.pool()
        async with pool.acquire() as conn, conn.transaction():
            await conn.execute("SELECT pg_advisory_xact_lock($1)", MIGRATION_LOCK)
            await conn.execute(
                "CREATE TABLE IF NOT EXISTS schema_migrations (name TEXT PRIMARY KEY, applied_at TIMESTAMPTZ NOT NULL)"
            )
            done = {r["name"] for r in await conn.fetch("SELECT name FROM schema_migrations")}
            for name, _, statements in MIGRATIONS:
                if name in done:
                    continue
                for statement in statements:
                    await conn.execute(statement)
                await conn.execute(
                    "INSERT INTO schema_migrations (name, applied_at) VALUES ($1, now())", name
                )
                applied.append(name)
        return applied

    async def close(self) -> None:
        if self._pool is not None:
            await self._pool.close()
            self._pool = None

    @guarded
    async def ping(self) -> None:
        await self._fetchrow("SELECT 1")

    @guarded
    async def authorize(self, token_hash: str, now: datetime) -> Grant | None:
        row = await self._fetchrow(AUTHORIZE, token_hash, now.astimezone(UTC).date(), now)
        if row is None:
            return None
        return Grant(row[0], row[1], row[2], row[3], row[4])

    @guarded
    async def add_token(
        self, *, token_hash: str, username: str, expiry: datetime, rate_limit: int, now: datetime
    ) -> None:
        await self._execute(
            "INSERT INTO tokens (token_hash, username, expiry, rate_limit, created_at) VALUES ($1, $2, $3, $4, $5)",
            token_hash, username, expiry, rate_limit, now,
        )

    @guarded
    async def import_token(self, record: TokenRecord) -> bool:
        status = await self._execute(
            f"INSERT INTO tokens ({TOKEN_COLUMNS}) VALUES ($1, $2, $3, $4, $5, $6, $7, $8) "
            "ON CONFLICT (token_hash) DO NOTHING",
            record.token_hash, record.username, record.expiry, record.rate_limit,
            record.request_count, record.last_request_date, record.lifetime_requests,
            record.created_at or datetime.now(UTC),
        )
        return status.endswith(" 1")

    @guarded
    async def get_token(self, token_hash: str) -> TokenRecord | None:
        row = await self._fetchrow(f"SELECT {TOKEN_COLUMNS} FROM tokens WHERE token_hash = $1", token_hash)
        return _record(row) if row else None

    @guarded
    async def list_tokens(self) -> list[TokenRecord]:
        rows = await self._fetch(f"SELECT {TOKEN_COLUMNS} FROM tokens ORDER BY username, created_at")
        return [_record(r) for r in rows]

    @guarded
    async def delete_token(self, token_hash: str) -> bool:
        return (await self._execute("DELETE FROM tokens WHERE token_hash = $1", token_hash)) == "DELETE 1"
