"""What the store accepts and what it reads back, on SQLite and PostgreSQL.

Text no database can store (a NUL character, a lone surrogate) is refused with
a 400 before it is sent; error text from elsewhere is stored with NULs
replaced. A stored expiry out of range, PostgreSQL's ±infinity or SQLite text
that is no time (rows written here with raw SQL, as an old version or a hand
might have) reads as expired at EXPIRY_MIN: listing, getting and deleting
never fail, and `authorize` refuses the token.
"""

from __future__ import annotations

import json
import os
import sqlite3
import subprocess
from collections.abc import Awaitable
from contextlib import closing
from datetime import UTC, datetime, timedelta
from pathlib import Path

import asyncpg
import pytest

from llm_wrapper.errors import InvalidRequest
from llm_wrapper.monitors.records import Monitor
from llm_wrapper.store import Store
from llm_wrapper.tokens import EXPIRY_MIN, TokenRecord, hash_token

from .gateway_process import BIN
from .test_store import EXPIRY, NOW, add

SQLITE_UNREADABLE = [
    "0999-06-01 00:00:00", "999-06-01 00:00:00", "1-01-01 00:00:00", "1999-12-31 23:59:59",
    "10000-01-01 00:00:00", "2030-02-30 00:00:00", "garbage", "", 12345,
]
POSTGRES_UNREADABLE = [
    "-infinity", "infinity", "0001-01-01 00:00:00+00", "0999-06-01 00:00:00+00",
    "1999-12-31 23:59:59+00", "20000-01-01 00:00:00+00", "4713-01-01 00:00:00+00 BC",
]


async def insert_raw(backend: tuple[str, str], token_hash: str, expiry: str | int) -> None:
    """A token row written with raw SQL, its expiry as given (SQLite text, PostgreSQL literal)."""
    kind, where = backend
    if kind == "sqlite":
        with closing(sqlite3.connect(where)) as db:
            db.execute(
                "INSERT INTO tokens (token_hash, username, expiry, rate_limit, created_at) "
                "VALUES (?, 'raw', ?, 5, '2030-01-01 00:00:00')",
                (token_hash, expiry),
            )
            db.commit()
        return
    conn = await asyncpg.connect(where)
    try:
        await conn.execute(
            "INSERT INTO tokens (token_hash, username, expiry, rate_limit, created_at) "
            f"VALUES ($1, 'raw', '{expiry}'::timestamptz, 5, now())",
            token_hash,
        )
    finally:
        await conn.close()


# expiries ----------------------------------------------------------------------


async def test_unreadable_stored_expiries_read_as_expired(store: Store, store_backend: tuple[str, str]) -> None:
    good = hash_token(await add(store, username="good"))
    unreadable = SQLITE_UNREADABLE if store_backend[0] == "sqlite" else POSTGRES_UNREADABLE
    hashes = [hash_token(f"raw-{n}") for n in range(len(unreadable))]
    for token_hash, expiry in zip(hashes, unreadable, strict=True):
        await insert_raw(store_backend, token_hash, expiry)

    listed = {r.token_hash: r for r in await store.list_tokens()}  # the listing never fails
    assert listed[good].expiry == EXPIRY
    for token_hash, expiry in zip(hashes, unreadable, strict=True):
        record = listed[token_hash]
        assert record.expiry == EXPIRY_MIN and record.expired(NOW), expiry
        shown = record.to_json(NOW)
        assert (shown["expiry"], shown["expired"]) == ("2000-01-01 00:00:00", True), expiry
        assert await store.get_token(token_hash) == record
        assert await store.authorize(token_hash, NOW) is None, expiry
    for token_hash in hashes:  # deleting by id lists first: both work
        assert [r.id for r in await store.list_tokens()].count(token_hash[:10]) == 1
        assert await store.delete_token(token_hash)
    assert [r.token_hash for r in await store.list_tokens()] == [good]


async def test_a_stored_year_9999_expiry_still_admits(store: Store, store_backend: tuple[str, str]) -> None:
    token_hash = hash_token("from-an-older-version")
    await insert_raw(
        store_backend, token_hash, "9999-06-01 00:00:00" + ("" if store_backend[0] == "sqlite" else "+00")
    )
    grant = await store.authorize(token_hash, NOW)
    assert grant is not None and grant.expiry == datetime(9999, 6, 1, tzinfo=UTC)
    record = await store.get_token(token_hash)
    assert record is not None and not record.expired(NOW)


async def test_the_store_refuses_an_expiry_out_of_range(store: Store) -> None:
    for expiry in (datetime(999, 6, 1, tzinfo=UTC), datetime(9999, 1, 1, tzinfo=UTC)):
        with pytest.raises(InvalidRequest) as refused:
            await add(store, expiry=expiry)
        assert refused.value.param == "expiry"
    assert await store.list_tokens() == []


def test_token_commands_work_with_an_unreadable_expiry_stored(tmp_path: Path) -> None:
    path = tmp_path / "tokens.db"
    env = {**os.environ, "DATABASE_URL": f"sqlite:///{path}", "LLM_WRAPPER_ENV_FILE": str(tmp_path / "none.env")}

    def tokens(*args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run([str(BIN / "llm-wrapper"), "tokens", *args], env=env, cwd=tmp_path,
                              capture_output=True, text=True, timeout=60)

    refused = tokens("add", "--username", "u", "--expiry", "0999-06-01 00:00:00", "--rate-limit", "5")
    assert refused.returncode == 2 and "out of range" in refused.stderr
    assert tokens("add", "--username", "ok", "--expiry", "2030-01-01 00:00:00", "--rate-limit", "5").returncode == 0
    with closing(sqlite3.connect(path)) as db, db:  # as the old version stored such an expiry
        db.execute("INSERT INTO tokens (token_hash, username, expiry, rate_limit, created_at) "
                   "VALUES (?, 'old', '999-06-01 00:00:00', 5, '2030-01-01 00:00:00')", (hash_token("x"),))
    listed = tokens("list", "--json")
    assert listed.returncode == 0, listed.stderr
    old = next(r for r in json.loads(listed.stdout) if r["username"] == "old")
    assert (old["expiry"], old["expired"]) == ("2000-01-01 00:00:00", True)
    assert tokens("list").returncode == 0
    deleted = tokens("delete", "--id", old["id"])
    assert deleted.returncode == 0, deleted.stderr
    assert [r["username"] for r in json.loads(tokens("list", "--json").stdout)] == ["ok"]


# text ----------------------------------------------------------------------------


def monitor(username: str = "alice", query: str = "q", monitor_id: str = "m1") -> Monitor:
    return Monitor(monitor_id=monitor_id, username=username, query=query, frequency="1d", created_at=NOW)


@pytest.mark.parametrize("bad", ["a\x00b", "\x00", "lone \ud800 surrogate"], ids=["nul", "only-nul", "surrogate"])
async def test_text_no_database_can_store_is_refused_before_it_is_sent(store: Store, bad: str) -> None:
    async def refused(param: str, call: Awaitable[object]) -> None:
        with pytest.raises(InvalidRequest) as error:
            await call
        assert error.value.status == 400 and error.value.param == param

    await refused("username", store.add_token(token_hash="h", username=bad, expiry=EXPIRY, rate_limit=5, now=NOW))
    record = TokenRecord(hash_token("t"), bad, EXPIRY, 5, 0, None, 0, NOW)
    await refused("username", store.import_token(record))
    await refused("query", store.insert_monitor(monitor(query=bad)))
    await refused("username", store.insert_monitor(monitor(username=bad)))
    await refused("monitor_id", store.insert_monitor(monitor(monitor_id=bad)))
    await refused("monitor_id", store.get_monitor(bad))
    await refused("monitor_id", store.deactivate_monitor(bad, NOW))
    await refused("username", store.list_monitors(bad))
    await refused("monitor_id", store.record_run(bad, "failed", NOW, None))
    await refused("monitor_id", store.add_event_group(monitor_id=bad, event_group_id="g", webhook_id=None, received_at=NOW))
    await refused("event_group_id", store.add_event_group(monitor_id="m", event_group_id=bad, webhook_id=None, received_at=NOW))
    await refused("webhook_id", store.add_event_group(monitor_id="m", event_group_id="g", webhook_id=bad, received_at=NOW))
    await refused("username", store.claim_updates(bad, NOW))
    await refused("username", store.count_updates(bad))
    await refused("username", store.last_processed_at(bad))
    await refused("monitor_id", store.list_event_groups(bad))
    assert await store.list_tokens() == [] and await store.list_monitors() == []
    assert await store.list_event_groups() == []


async def test_nul_characters_from_elsewhere_are_stored_replaced(store: Store) -> None:
    await store.insert_monitor(monitor())
    await store.record_run("m1", "failed", NOW, "boom\x00")
    assert (await store.get_monitor("m1")).last_error == "boom\ufffd"
    for group in ("g1", "g2"):
        await store.add_event_group(monitor_id="m1", event_group_id=group, webhook_id=None, received_at=NOW)
    (first,) = await store.claim_fetches(NOW, NOW + timedelta(minutes=2), 10)  # one a monitor at a time
    await store.finish_fetch(first.id, now=NOW, events=[
        {"event_id": "e\x00", "event_date": "2026-05-01\x00", "text": "a\x00b", "source_urls": ["https://x/\x00"]}
    ])
    (second,) = await store.claim_fetches(NOW, NOW + timedelta(minutes=2), 10)
    await store.finish_fetch(second.id, now=NOW, error="bad\x00gateway", retry_at=NOW)
    stored = {g.event_group_id: g for g in await store.list_event_groups("m1")}
    assert stored["g1"].events == [
        {"event_id": "e\ufffd", "event_date": "2026-05-01\ufffd", "text": "a\ufffdb", "source_urls": ["https://x/\ufffd"]}
    ]
    assert stored["g1"].source_urls == ["https://x/\ufffd"] and stored["g1"].event_date == "2026-05-01\ufffd"
    assert stored["g2"].last_error == "bad\ufffdgateway"
    await store.deactivate_monitor("m1", NOW)
    await store.finish_cancel("m1", remote_state=None, error="nope\x00", retry_at=NOW)
    assert (await store.get_monitor("m1")).last_error == "nope\ufffd"
