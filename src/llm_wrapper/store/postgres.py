"""The shared store: PostgreSQL through an asyncpg pool, for several workers and instances.

Every statement goes through `_on_connection`, which takes a pooled connection
(waiting at most `timeout` seconds) and turns every failure of the database
or of the way to it into StoreUnavailable (503); see `postgres_guard.py`.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Coroutine
from datetime import date, datetime
from typing import Any, TypeVar

import asyncpg

from .base import Store
from .database import NO_PARAMS, Database, Executor, Params, Query, Row, StoreUnavailable
from .migrations import MIGRATIONS
from .postgres_guard import DATABASE_ERRORS, unavailable

T = TypeVar("T")

MIGRATION_LOCK = 0x6C6C6D77  # "llmw": one advisory lock key for schema changes


class _Session:
    """Statements on one connection (inside a transaction)."""

    def __init__(self, conn: Any, timeout: float) -> None:
        self.conn, self.timeout = conn, timeout

    async def rows(self, query: Query, params: Params = NO_PARAMS) -> list[Row]:
        return await self.conn.fetch(query.postgres, *[params[n] for n in query.names], timeout=self.timeout)

    async def run(self, query: Query, params: Params = NO_PARAMS) -> int:
        return _changed(await self.conn.execute(query.postgres, *[params[n] for n in query.names], timeout=self.timeout))


async def _nothing_to_reset(conn: asyncpg.Connection) -> None:
    """The pool's reset of a connection it takes back, after rolling back any open transaction.

    asyncpg's default also runs `SELECT pg_advisory_unlock_all(); CLOSE ALL; UNLISTEN *;
    RESET ALL;`: a second round trip for every statement. This store leaves nothing of that
    behind (no SET, cursor, LISTEN or session-level advisory lock; its locks are `_xact_`
    ones, which end with their transaction), so there is nothing to undo.
    """


class PostgresDatabase(Database):
    dialect = "postgresql"

    def __init__(self, dsn: str, *, min_size: int = 1, max_size: int = 10, timeout: float = 5.0) -> None:
        self.dsn = dsn.replace("postgresql+asyncpg://", "postgresql://", 1)
        self.min_size, self.max_size, self.timeout = min_size, max_size, timeout
        self._pool: asyncpg.Pool | None = None
        self._lock = asyncio.Lock()
        self._closed = False

    async def pool(self) -> asyncpg.Pool:
        """The pool, created on first use (and again after a failed first connect)."""
        if self._pool is None:
            async with self._lock:
                if self._closed:
                    raise StoreUnavailable("The database is closed.")
                if self._pool is None:
                    self._pool = await asyncpg.create_pool(
                        self.dsn,
                        min_size=self.min_size,
                        max_size=self.max_size,
                        timeout=self.timeout,
                        command_timeout=self.timeout,
                        reset=_nothing_to_reset,
                    )
        return self._pool

    async def _on_connection(self, call: Callable[[Any], Awaitable[T]]) -> T:
        try:
            pool = self._pool or await self.pool()
            # One deadline for taking a connection and the statement: asyncpg's own acquire timeout
            # wraps the wait in a task of its own (`wait_for`), a cost on every statement.
            async with asyncio.timeout(self.timeout), pool.acquire() as conn:
                return await call(conn)
        except DATABASE_ERRORS as exc:
            raise unavailable(exc) from exc

    async def rows(self, query: Query, params: Params = NO_PARAMS) -> list[Row]:
        args = [params[n] for n in query.names]
        return await self._on_connection(lambda conn: conn.fetch(query.postgres, *args))

    async def run(self, query: Query, params: Params = NO_PARAMS) -> int:
        args = [params[n] for n in query.names]
        return _changed(
            await self._on_connection(lambda conn: conn.execute(query.postgres, *args))
        )

    async def transact(
        self, work: Callable[[Executor], Coroutine[Any, Any, T]], *, lock: tuple[int, str] | None = None
    ) -> T:
        async def in_transaction(conn: Any) -> T:
            async with conn.transaction():
                if lock is not None:
                    await conn.execute("SELECT pg_advisory_xact_lock($1, hashtext($2))", *lock, timeout=self.timeout)
                return await work(_Session(conn, self.timeout))

        return await self._on_connection(in_transaction)

    async def migrate(self) -> list[str]:
        async def work(conn: Any) -> list[str]:
            applied: list[str] = []
            async with conn.transaction():
                await conn.execute("SELECT pg_advisory_xact_lock($1)", MIGRATION_LOCK)
                await conn.execute(
                    "CREATE TABLE IF NOT EXISTS schema_migrations (name TEXT PRIMARY KEY, applied_at TIMESTAMPTZ NOT NULL)"
                )
                done = {r["name"] for r in await conn.fetch("SELECT name FROM schema_migrations")}
                for name, _, statements in MIGRATIONS:
                    if name not in done:
                        for statement in statements:
                            await conn.execute(statement)
                        await conn.execute("INSERT INTO schema_migrations (name, applied_at) VALUES ($1, now())", name)
                        applied.append(name)
            return applied

        return await self._on_connection(work)

    async def ping(self) -> None:
        await self._on_connection(lambda conn: conn.fetchval("SELECT 1", timeout=self.timeout))

    async def close(self) -> None:
        async with self._lock:
            self._closed = True
            pool, self._pool = self._pool, None
        if pool is not None:
            try:
                await asyncio.wait_for(pool.close(), self.timeout)
            except DATABASE_ERRORS:
                pool.terminate()

    # asyncpg takes and gives datetimes and dates as they are

    def time(self, moment: datetime | None) -> datetime | None:
        return moment

    def seconds(self, moment: datetime | None) -> datetime | None:
        return moment

    def day(self, value: date | None) -> date | None:
        return value

    def read_time(self, value: Any) -> datetime | None:
        return value

    def read_day(self, value: Any) -> date | None:
        return value


class PostgresStore(Store):
    db: PostgresDatabase

    def __init__(self, dsn: str, *, min_size: int = 1, max_size: int = 10, timeout: float = 5.0) -> None:
        super().__init__(PostgresDatabase(dsn, min_size=min_size, max_size=max_size, timeout=timeout))


def _changed(status: str) -> int:
    """Rows changed, from a command status such as 'UPDATE 3' or 'INSERT 0 1'."""
    tail = status.rpartition(" ")[2]
    return int(tail) if tail.isdigit() else 0
