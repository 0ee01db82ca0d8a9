"""The SQLite store under locks and failures: it waits for another process's lock without
blocking the event loop, gives up after its timeout, retries a transaction whole, and answers
StoreUnavailable (503) for a full disk, a read-only or an unopenable file."""

from __future__ import annotations

import asyncio
import concurrent.futures
import sqlite3
import threading
import time
from collections.abc import AsyncIterator, Awaitable, Iterator
from contextlib import closing, contextmanager
from pathlib import Path

import httpx
import pytest

from llm_wrapper.monitors.records import Monitor
from llm_wrapper.store import StoreUnavailable
from llm_wrapper.store.database import Executor
from llm_wrapper.store.sqlite import SQLiteStore
from llm_wrapper.store.tokens import ADD
from llm_wrapper.tokens import hash_token

from .gateway_process import GatewayProcess
from .test_store import EXPIRY, NOW, add


@pytest.fixture
async def store(tmp_path: Path) -> AsyncIterator[SQLiteStore]:
    opened = SQLiteStore(tmp_path / "store.db", timeout=5.0)
    await opened.migrate()
    yield opened
    await opened.close()


@contextmanager
def locked_by_another_connection(path: Path, seconds: float) -> Iterator[threading.Thread]:
    """Another connection (in a thread, as another process would) holds the write lock for `seconds`."""
    ready = threading.Event()

    def hold() -> None:
        with closing(sqlite3.connect(path, isolation_level=None)) as db:
            db.execute("BEGIN EXCLUSIVE")
            ready.set()
            time.sleep(seconds)
            db.execute("COMMIT")

    holder = threading.Thread(target=hold)
    holder.start()
    assert ready.wait(10)
    try:
        yield holder
    finally:
        holder.join()


class Ticker:
    """Ticks every 10 ms on the event loop; a blocked loop shows as a long gap."""

    def __init__(self) -> None:
        self.ticks: list[float] = []

    async def run(self) -> None:
        while True:
            self.ticks.append(time.monotonic())
            await asyncio.sleep(0.01)

    def longest_gap(self) -> float:
        return max(b - a for a, b in zip(self.ticks, self.ticks[1:], strict=False))


async def while_ticking(work: Awaitable[object]) -> tuple[Ticker, float, object]:
    """Await `work` while a Ticker runs; its result, or the exception it raised."""
    ticker = Ticker()
    task = asyncio.create_task(ticker.run())
    await asyncio.sleep(0.02)
    started = time.monotonic()
    try:
        result = await work
    except Exception as exc:
        result = exc
    finally:
        waited = time.monotonic() - started
        task.cancel()
    return ticker, waited, result


async def test_a_locked_database_is_waited_for_without_blocking_the_loop(store: SQLiteStore) -> None:
    token_hash = hash_token(await add(store))
    with locked_by_another_connection(store.db.path, 2.0):
        ticker, waited, grant = await while_ticking(store.authorize(token_hash, NOW))
    assert grant is not None and getattr(grant, "requests_today", None) == 1, grant
    assert 1.5 < waited < 4.5
    assert len(ticker.ticks) > 60 and ticker.longest_gap() < 0.25  # the loop kept running


async def test_a_lock_held_past_the_timeout_is_store_unavailable(tmp_path: Path) -> None:
    store = SQLiteStore(tmp_path / "store.db", timeout=0.5)
    try:
        await store.migrate()
        token_hash = hash_token(await add(store))
        with locked_by_another_connection(store.db.path, 2.0):
            ticker, waited, error = await while_ticking(store.authorize(token_hash, NOW))
            assert isinstance(error, StoreUnavailable) and "locked" in error.message
            assert (error.status, error.code) == (503, "database_unavailable")
            assert 0.4 < waited < 1.5 and ticker.longest_gap() < 0.25
        record = await store.get_token(token_hash)
        assert record is not None and record.lifetime_requests == 0  # nothing was counted
    finally:
        await store.close()


async def test_a_transaction_waits_for_the_lock_and_is_applied_once(store: SQLiteStore) -> None:
    def monitor(monitor_id: str) -> Monitor:
        return Monitor(monitor_id=monitor_id, username="alice", query="q", frequency="1d", created_at=NOW)

    await store.insert_monitor(monitor("m1"))
    with locked_by_another_connection(store.db.path, 1.0):
        ticker, _, replaced = await while_ticking(store.insert_monitor(monitor("m2")))
    assert isinstance(replaced, list) and [m.monitor_id for m in replaced] == ["m1"]
    assert sorted((m.monitor_id, m.active) for m in await store.list_monitors()) == [("m1", False), ("m2", True)]
    assert ticker.longest_gap() < 0.25


async def test_a_transaction_that_meets_a_lock_is_retried_whole(store: SQLiteStore) -> None:
    attempts = 0

    async def work(tx: Executor) -> int:
        nonlocal attempts
        attempts += 1
        await tx.run(ADD, {"hash": f"h{attempts}", "username": "u", "expiry": None, "rate_limit": 1,
                           "created_at": "2030-01-01 00:00:00", "budget_usd": None, "budget_period": None, "models": None})
        if attempts == 1:
            raise sqlite3.OperationalError("database is locked")
        return attempts

    assert await store.db.transact(work) == 2
    assert [r.token_hash for r in await store.list_tokens()] == ["h2"]  # the first attempt left nothing


async def test_a_transaction_may_not_wait_for_anything_else(store: SQLiteStore) -> None:
    async def work(tx: Executor) -> None:
        await tx.run(ADD, {"hash": "h", "username": "u", "expiry": None, "rate_limit": 1,
                           "created_at": "2030-01-01 00:00:00", "budget_usd": None, "budget_period": None, "models": None})
        await asyncio.sleep(0)  # another task could use the shared connection meanwhile

    with pytest.raises(RuntimeError, match="SQLite transaction waited"):
        await store.db.transact(work)
    assert await store.list_tokens() == []


async def test_a_full_disk_is_store_unavailable(store: SQLiteStore) -> None:
    db = store.db.connection()
    pages = db.execute("PRAGMA page_count").fetchone()[0]
    db.execute(f"PRAGMA max_page_count = {pages}")  # SQLITE_FULL once the file would grow
    with pytest.raises(StoreUnavailable, match="full") as full:
        for n in range(1000):
            await add(store, username=f"user-{n}-" + "x" * 500)
    assert full.value.status == 503
    db.execute("PRAGMA max_page_count = 1073741823")
    await add(store)  # and the store works again once there is room


async def test_a_read_only_database_is_store_unavailable(store: SQLiteStore) -> None:
    store.db.connection().execute("PRAGMA query_only = ON")
    with pytest.raises(StoreUnavailable, match="readonly"):
        await add(store)
    assert await store.list_tokens() == []  # reading still works


async def test_a_database_that_cannot_be_opened_is_store_unavailable(tmp_path: Path) -> None:
    (tmp_path / "a-file").write_text("")
    (tmp_path / "a-folder.db").mkdir()
    for path in (tmp_path / "a-file" / "store.db", tmp_path / "a-folder.db"):
        store = SQLiteStore(path, timeout=0.2)  # opening is deferred: the app starts and answers 503
        with pytest.raises(StoreUnavailable):
            await store.migrate()
        with pytest.raises(StoreUnavailable):
            await store.authorize(hash_token("t"), NOW)
        await store.close()


async def test_a_closed_store_is_store_unavailable(tmp_path: Path) -> None:
    store = SQLiteStore(tmp_path / "store.db")
    await store.migrate()
    await store.close()
    with pytest.raises(StoreUnavailable, match="closed"):
        await store.add_token(token_hash="h", username="u", expiry=EXPIRY, rate_limit=1, now=NOW)


def test_the_gateway_stays_responsive_while_another_process_locks_the_database(tmp_path: Path) -> None:
    config = {"openai": {"name": "OpenAI", "base_url": "http://127.0.0.1:9/v1", "api_key_env": "OPENAI_API_KEY",
                         "supported_models": ["gpt-test"], "payload_extra_parameters": {}}}
    gateway = GatewayProcess(tmp_path, {"OPENAI_API_KEY": "sk-test", "DB_TIMEOUT_SECONDS": "1"}, config=config)
    token = gateway.add_token("alice")
    gateway.start()
    try:
        with httpx.Client(base_url=gateway.url, timeout=10) as client, \
                concurrent.futures.ThreadPoolExecutor(1) as pool, \
                locked_by_another_connection(tmp_path / "gateway.db", 2.5):
            chat = pool.submit(client.post, "/v1/chat/completions", headers={"Authorization": f"Bearer {token}"},
                               json={"model": "gpt-test", "messages": [{"role": "user", "content": "hi"}]})
            time.sleep(0.3)  # the chat request is now waiting for the lock
            started = time.monotonic()
            assert client.get("/healthz").status_code == 200
            assert time.monotonic() - started < 0.5
            answer = chat.result(timeout=10)
        assert answer.status_code == 503 and answer.json()["error"]["code"] == "database_unavailable"
    finally:
        gateway.stop()
