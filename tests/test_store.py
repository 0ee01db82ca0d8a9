"""The token store, the same tests on both backends (the `store` fixture): SQLite and PostgreSQL."""

from __future__ import annotations

import asyncio
import json
import sqlite3
import subprocess
import sys
from datetime import UTC, date, datetime, timedelta, timezone
from pathlib import Path

import asyncpg

from llm_wrapper.store import Store
from llm_wrapper.store.migrations import MIGRATIONS
from llm_wrapper.store.sqlite import SQLiteStore
from llm_wrapper.tokens import TokenRecord, hash_token, new_token

from .fixtures.postgres import open_backend

NOW = datetime(2030, 6, 15, 12, 0, 0, tzinfo=UTC)
EXPIRY = datetime(2031, 1, 1, tzinfo=UTC)


async def migration_names(backend: tuple[str, str]) -> list[str]:
    if backend[0] == "sqlite":
        with sqlite3.connect(backend[1]) as db:
            return [r[0] for r in db.execute("SELECT name FROM schema_migrations ORDER BY name")]
    conn = await asyncpg.connect(backend[1])
    try:
        return [r[0] for r in await conn.fetch("SELECT name FROM schema_migrations ORDER BY name")]
    finally:
        await conn.close()


async def add(
    store: Store, *, rate_limit: int = 5, expiry: datetime = EXPIRY, username: str = "alice"
) -> str:
    token = new_token()
    await store.add_token(
        token_hash=hash_token(token),
        username=username,
        expiry=expiry,
        rate_limit=rate_limit,
        now=NOW,
    )
    return token


# migrations ----------------------------------------------------------------


async def test_migrations_are_applied_once_and_recorded(
    store: Store, store_backend: tuple[str, str]
) -> None:
    expected = sorted(name for name, _, _ in MIGRATIONS)
    assert await migration_names(store_backend) == expected
    assert await store.migrate() == []
    again = open_backend(store_backend)
    try:
        assert await again.migrate() == []
    finally:
        await again.close()
    assert await migration_names(store_backend) == expected


MIGRATE_SCRIPT = """
import asyncio, json, sys
from pathlib import Path
from llm_wrapper.store.sqlite import SQLiteStore
from llm_wrapper.store.postgres import PostgresStore

async def main():
    kind, where = sys.argv[1], sys.argv[2]
    store = SQLiteStore(Path(where)) if kind == "sqlite" else PostgresStore(where)
    try:
        print(json.dumps(await store.migrate()))
    finally:
        await store.close()

asyncio.run(main())
"""


async def test_concurrent_migrations_from_several_processes(store_backend: tuple[str, str]) -> None:
    procs = [
        await asyncio.create_subprocess_exec(
            sys.executable,
            "-c",
            MIGRATE_SCRIPT,
            *store_backend,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
        )
        for _ in range(4)
    ]
    outputs = [await p.communicate() for p in procs]
    assert [p.returncode for p in procs] == [0] * 4, [err.decode() for _, err in outputs]
    applied = [name for out, _ in outputs for name in json.loads(out)]
    names = [name for name, _, _ in MIGRATIONS]
    assert sorted(applied) == sorted(names)  # every step applied by exactly one process
    assert await migration_names(store_backend) == sorted(names)


async def test_concurrent_migrations_from_tasks(store_backend: tuple[str, str]) -> None:
    stores = [open_backend(store_backend) for _ in range(3)]
    try:
        results = await asyncio.gather(*(s.migrate() for s in stores))
    finally:
        for s in stores:
            await s.close()
    assert sorted(n for r in results for n in r) == sorted(n for n, _, _ in MIGRATIONS)


# add / get / list / delete / import --------------------------------------------


async def test_add_get_list_delete(store: Store) -> None:
    token = await add(store, rate_limit=7, username="bob")
    other = await add(store, username="alice")
    record = await store.get_token(hash_token(token))
    assert record is not None
    assert (record.username, record.rate_limit, record.expiry) == ("bob", 7, EXPIRY)
    assert (record.request_count, record.lifetime_requests, record.last_request_date) == (
        0,
        0,
        None,
    )
    assert record.created_at == NOW
    assert [r.username for r in await store.list_tokens()] == ["alice", "bob"]
    assert await store.get_token(hash_token("llmw_nope")) is None
    assert await store.delete_token(hash_token(token)) is True
    assert await store.delete_token(hash_token(token)) is False
    assert await store.get_token(hash_token(token)) is None
    assert [r.token_hash for r in await store.list_tokens()] == [hash_token(other)]


async def test_import_keeps_counts_and_is_idempotent(store: Store) -> None:
    record = TokenRecord(
        token_hash=hash_token("old-plaintext"),
        username="carol",
        expiry=EXPIRY,
        rate_limit=10,
        request_count=4,
        last_request_date=NOW.date(),
        lifetime_requests=99,
        created_at=NOW,
    )
    assert await store.import_token(record) is True
    assert await store.import_token(record) is False
    assert await store.get_token(record.token_hash) == record
    grant = await store.authorize(record.token_hash, NOW)
    assert grant is not None and (grant.requests_today, grant.lifetime_requests) == (5, 100)


async def test_import_without_expiry_or_history(store: Store) -> None:
    record = TokenRecord(
        token_hash=hash_token("t"),
        username="dave",
        expiry=None,
        rate_limit=1,
        request_count=0,
        last_request_date=None,
        lifetime_requests=0,
        created_at=NOW,
    )
    assert await store.import_token(record)
    assert await store.authorize(record.token_hash, NOW + timedelta(days=99999)) is not None


# authorize -------------------------------------------------------------------


async def test_authorize_admits_exactly_up_to_the_limit(store: Store) -> None:
    token_hash = hash_token(await add(store, rate_limit=3))
    grants = [await store.authorize(token_hash, NOW) for _ in range(3)]
    assert [(g.requests_today, g.remaining, g.lifetime_requests) for g in grants if g] == [
        (1, 2, 1),
        (2, 1, 2),
        (3, 0, 3),
    ]
    assert grants[0] is not None and grants[0].username == "alice" and grants[0].expiry == EXPIRY
    assert await store.authorize(token_hash, NOW) is None
    record = await store.get_token(token_hash)
    assert record is not None
    assert (record.request_count, record.lifetime_requests) == (3, 3)  # refusals count nothing


async def test_concurrent_authorize_never_exceeds_the_limit(
    store: Store, store_backend: tuple[str, str]
) -> None:
    token_hash = hash_token(await add(store, rate_limit=20))
    others = [open_backend(store_backend) for _ in range(2)]
    try:
        results = await asyncio.gather(
            *(s.authorize(token_hash, NOW) for _ in range(30) for s in [store, *others])
        )
    finally:
        for s in others:
            await s.close()
    granted = sorted(g.requests_today for g in results if g is not None)
    assert granted == list(range(1, 21))


async def test_a_new_utc_day_restarts_the_count(store: Store) -> None:
    token_hash = hash_token(await add(store, rate_limit=2))
    late = datetime(2030, 6, 15, 23, 59, 59, tzinfo=UTC)
    assert await store.authorize(token_hash, late) is not None
    assert await store.authorize(token_hash, late) is not None
    assert await store.authorize(token_hash, late) is None
    # 01:00 in UTC+2 is still 23:00 UTC on the same day: refused.
    same_day = datetime(2030, 6, 16, 1, 0, tzinfo=timezone(timedelta(hours=2)))
    assert await store.authorize(token_hash, same_day) is None
    midnight = datetime(2030, 6, 16, 0, 0, 0, tzinfo=UTC)
    grant = await store.authorize(token_hash, midnight)
    assert grant is not None and (grant.requests_today, grant.lifetime_requests) == (1, 3)
    record = await store.get_token(token_hash)
    assert record is not None and record.last_request_date == date(2030, 6, 16)
    assert record.requests_today(midnight) == 1 and record.requests_today(late) == 0


async def test_a_lagging_clock_does_not_restart_a_newer_day(store: Store) -> None:
    token_hash = hash_token(await add(store, rate_limit=2))
    ahead = datetime(2030, 6, 16, 0, 0, 1, tzinfo=UTC)
    behind = datetime(2030, 6, 15, 23, 59, 59, tzinfo=UTC)
    assert await store.authorize(token_hash, ahead) is not None
    grant = await store.authorize(token_hash, behind)
    assert grant is not None and grant.requests_today == 2
    assert await store.authorize(token_hash, ahead) is None
    record = await store.get_token(token_hash)
    assert record is not None and record.last_request_date == date(2030, 6, 16)


async def test_expiry_boundary(store: Store) -> None:
    token_hash = hash_token(await add(store, rate_limit=100, expiry=NOW))
    assert await store.authorize(token_hash, NOW - timedelta(seconds=1)) is not None
    assert await store.authorize(token_hash, NOW - timedelta(microseconds=1)) is not None
    assert await store.authorize(token_hash, NOW) is None
    assert await store.authorize(token_hash, NOW + timedelta(microseconds=1)) is None
    record = await store.get_token(token_hash)
    assert record is not None and record.lifetime_requests == 2


async def test_unknown_and_deleted_tokens_are_refused(store: Store) -> None:
    token_hash = hash_token(await add(store))
    assert await store.authorize(hash_token("llmw_unknown"), NOW) is None
    assert await store.authorize(token_hash, NOW) is not None
    assert await store.delete_token(token_hash)
    assert await store.authorize(token_hash, NOW) is None


async def test_the_sqlite_file_never_holds_the_plaintext(tmp_path: Path) -> None:
    store = SQLiteStore(tmp_path / "store.db")
    await store.migrate()
    token = await add(store)
    imported = "plain-imported-token-0123456789"
    await store.import_token(
        TokenRecord(
            token_hash=hash_token(imported),
            username="old",
            expiry=EXPIRY,
            rate_limit=3,
            request_count=0,
            last_request_date=None,
            lifetime_requests=0,
            created_at=NOW,
        )
    )
    assert await store.authorize(hash_token(token), NOW) is not None
    files = sorted(tmp_path.glob("store.db*"))
    assert tmp_path / "store.db-wal" in files  # still open: the WAL holds the latest writes
    blob = b"".join(f.read_bytes() for f in files)
    assert hash_token(token).encode() in blob  # the check below can see the rows it looks for
    assert token.encode() not in blob and token[5:].encode() not in blob
    assert imported.encode() not in blob
    await store.close()
    blob = b"".join(f.read_bytes() for f in sorted(tmp_path.glob("store.db*")))
    assert token[5:].encode() not in blob and imported.encode() not in blob


# release: a counted request given back ------------------------------------------


async def counts(store: Store, token_hash: str) -> tuple[int, int]:
    record = await store.get_token(token_hash)
    assert record is not None
    return record.request_count, record.lifetime_requests


async def test_release_gives_back_the_day_and_lifetime_counts(store: Store) -> None:
    token_hash = hash_token(await add(store, rate_limit=2))
    first = await store.authorize(token_hash, NOW)
    second = await store.authorize(token_hash, NOW)
    assert first is not None and second is not None and first.counted_on == NOW.date()
    assert await store.authorize(token_hash, NOW) is None
    await store.release(token_hash, second.counted_on)
    assert await counts(store, token_hash) == (1, 1)
    third = await store.authorize(token_hash, NOW)  # the request given back can be used again
    assert third is not None and (third.requests_today, third.lifetime_requests) == (2, 2)


async def test_release_never_goes_below_zero(store: Store) -> None:
    token_hash = hash_token(await add(store))
    await store.release(token_hash, NOW.date())
    assert await counts(store, token_hash) == (0, 0)
    grant = await store.authorize(token_hash, NOW)
    assert grant is not None and grant.counted_on is not None
    await store.release(token_hash, grant.counted_on)
    await store.release(token_hash, grant.counted_on)
    assert await counts(store, token_hash) == (0, 0)
    await store.release(hash_token("llmw_unknown"), NOW.date())  # nothing to give back: no error


async def test_release_after_midnight_gives_back_only_the_lifetime_count(store: Store) -> None:
    token_hash = hash_token(await add(store, rate_limit=5))
    yesterday = await store.authorize(token_hash, NOW)
    assert yesterday is not None and yesterday.counted_on is not None
    tomorrow = NOW + timedelta(days=1)
    assert await store.authorize(token_hash, tomorrow) is not None
    await store.release(token_hash, yesterday.counted_on)  # that day's count is gone already
    record = await store.get_token(token_hash)
    assert record is not None and record.last_request_date == tomorrow.date()
    assert (record.request_count, record.lifetime_requests) == (1, 1)


async def test_a_grant_says_which_day_counted_it_even_on_a_lagging_clock(store: Store) -> None:
    token_hash = hash_token(await add(store, rate_limit=5))
    ahead = datetime(2030, 6, 16, 0, 0, 1, tzinfo=UTC)
    behind = datetime(2030, 6, 15, 23, 59, 59, tzinfo=UTC)
    assert await store.authorize(token_hash, ahead) is not None
    grant = await store.authorize(token_hash, behind)
    assert grant is not None and grant.counted_on == date(2030, 6, 16)  # counted on the newer day
    await store.release(token_hash, grant.counted_on)
    assert await counts(store, token_hash) == (1, 1)


async def test_concurrent_authorize_and_release_pairs_leave_exact_counts(
    store: Store, store_backend: tuple[str, str]
) -> None:
    token_hash = hash_token(await add(store, rate_limit=10))
    others = [open_backend(store_backend) for _ in range(2)]

    async def pair(s: Store, give_back: bool) -> tuple[bool, bool]:
        grant = await s.authorize(token_hash, NOW)
        if grant is None:
            return False, False
        assert grant.requests_today <= 10 and grant.counted_on is not None
        if give_back:
            await s.release(token_hash, grant.counted_on)
        return True, give_back

    try:
        stores = [store, *others]
        results = await asyncio.gather(*(pair(stores[i % 3], i % 4 != 0) for i in range(90)))
    finally:
        for s in others:
            await s.close()
    kept = sum(granted and not given for granted, given in results)
    assert kept <= 10
    assert await counts(store, token_hash) == (kept, kept)
