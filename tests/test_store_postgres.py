"""The PostgreSQL store's failures: every way the database or the way to it can fail is
StoreUnavailable (503), wherever it happens (taking a connection, a statement, a transaction)."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable
from datetime import timedelta
from typing import Any

import asyncpg
import pytest

from llm_wrapper.monitors.records import Monitor
from llm_wrapper.store import Store, StoreUnavailable
from llm_wrapper.store.postgres import PostgresStore
from llm_wrapper.tokens import hash_token

from .test_store import NOW, add

FAILURES = [
    asyncpg.InternalClientError("internal"),
    asyncpg.InterfaceError("cannot perform operation: connection is closed"),
    asyncpg.ConnectionDoesNotExistError("connection was closed in the middle of operation"),
    asyncpg.CannotConnectNowError("the database system is starting up"),
    asyncpg.AdminShutdownError("terminating connection due to administrator command"),
    asyncpg.OperatorInterventionError("operator intervention"),
    asyncpg.TooManyConnectionsError("too many clients"),
    asyncpg.UndefinedTableError('relation "tokens" does not exist'),
    TimeoutError(),  # a pool acquire or a statement that took too long
    ConnectionResetError("reset by peer"),
    OSError("network unreachable"),
]


class Refusing:
    """A pool whose every use fails with `error`: when taking a connection (`acquire`), when
    beginning a transaction (`begin`), or else on every statement (`statement`)."""

    def __init__(self, error: BaseException, where: str) -> None:
        self.error, self.where = error, where

    def acquire(self, *, timeout: float | None = None) -> Refusing:
        return self

    def transaction(self) -> _Begin:
        return _Begin(self)

    async def __aenter__(self) -> Refusing:
        if self.where == "acquire":
            raise self.error
        return self

    async def __aexit__(self, *exc: object) -> None:
        return None

    async def fetch(self, *args: Any, **kwargs: Any) -> list[Any]:
        raise self.error

    async def execute(self, *args: Any, **kwargs: Any) -> str:
        raise self.error

    async def fetchval(self, *args: Any, **kwargs: Any) -> Any:
        raise self.error

    async def close(self) -> None:
        return None


class _Begin:
    def __init__(self, pool: Refusing) -> None:
        self.pool = pool

    async def __aenter__(self) -> None:
        if self.pool.where == "begin":
            raise self.pool.error

    async def __aexit__(self, *exc: object) -> None:
        return None


CALLS: dict[str, Callable[[Store], Awaitable[object]]] = {
    "authorize": lambda s: s.authorize(hash_token("t"), NOW),
    "release": lambda s: s.release(hash_token("t"), NOW.date()),
    "get_token": lambda s: s.get_token(hash_token("t")),
    "delete_token": lambda s: s.delete_token(hash_token("t")),
    "insert_monitor": lambda s: s.insert_monitor(
        Monitor(monitor_id="m", username="u", query="q", frequency="1d", created_at=NOW)
    ),
    "claim_fetches": lambda s: s.claim_fetches(NOW, NOW + timedelta(minutes=1), 5),
    "migrate": lambda s: s.migrate(),
    "ping": lambda s: s.ping(),
}


@pytest.mark.parametrize("where", ["acquire", "begin", "statement"])
@pytest.mark.parametrize("error", FAILURES, ids=lambda e: type(e).__name__)
async def test_every_database_failure_is_store_unavailable(
    error: BaseException, where: str, caplog: pytest.LogCaptureFixture
) -> None:
    store = PostgresStore("postgresql://nobody@127.0.0.1:9/none", timeout=0.5)
    store.db._pool = Refusing(error, where)  # type: ignore[assignment]
    for name, call in CALLS.items():
        with pytest.raises(StoreUnavailable) as refused:
            await call(store)
        assert (refused.value.status, refused.value.code) == (503, "database_unavailable"), name
    await store.close()
    assert not [r for r in caplog.records if r.levelno >= logging.ERROR]  # outages are not bugs: no noise


async def test_an_unexpected_database_error_is_503_and_logged(caplog: pytest.LogCaptureFixture) -> None:
    store = PostgresStore("postgresql://nobody@127.0.0.1:9/none")
    store.db._pool = Refusing(asyncpg.UniqueViolationError("duplicate key"), "statement")  # type: ignore[assignment]
    with pytest.raises(StoreUnavailable):
        await store.get_token(hash_token("t"))
    assert any("unexpected PostgreSQL error" in r.message for r in caplog.records)
    await store.close()


async def test_an_unreachable_server_is_store_unavailable() -> None:
    store = PostgresStore("postgresql://nobody@127.0.0.1:9/none", timeout=1.0)  # nothing listens on port 9
    for call in CALLS.values():
        with pytest.raises(StoreUnavailable):
            await call(store)
    await store.close()


async def test_an_exhausted_pool_is_store_unavailable_after_the_timeout(pg_dsn: str) -> None:
    store = PostgresStore(pg_dsn, min_size=1, max_size=1, timeout=0.3)
    try:
        await store.migrate()
        pool = await store.db.pool()
        held = await pool.acquire()
        try:
            started = asyncio.get_running_loop().time()
            with pytest.raises(StoreUnavailable):
                await store.get_token(hash_token("t"))
            assert asyncio.get_running_loop().time() - started < 2
        finally:
            await pool.release(held)
        assert await store.get_token(hash_token("t")) is None
    finally:
        await store.close()


async def test_terminated_connections_are_store_unavailable_then_replaced(pg_dsn: str) -> None:
    store = PostgresStore(pg_dsn, min_size=2, max_size=2)
    try:
        await store.migrate()
        token_hash = hash_token(await add(store))
        admin = await asyncpg.connect(pg_dsn)
        try:
            await admin.fetch(
                "SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
                "WHERE datname = current_database() AND pid <> pg_backend_pid()"
            )
        finally:
            await admin.close()
        outcomes = []
        for _ in range(4):
            try:
                outcomes.append(await store.authorize(token_hash, NOW) is not None)
            except StoreUnavailable:  # anything else fails the test
                outcomes.append(False)
        assert outcomes[-1] is True  # the pool reconnected
    finally:
        await store.close()


async def test_a_closed_store_is_store_unavailable(pg_dsn: str) -> None:
    store = PostgresStore(pg_dsn)
    await store.migrate()
    await store.close()
    with pytest.raises(StoreUnavailable, match="closed"):
        await store.get_token(hash_token("t"))
