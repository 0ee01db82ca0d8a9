"""SQL written once (`store/database.py`), and the Store composed of its token and monitor parts."""

from __future__ import annotations

import sqlite3
from contextlib import closing

import asyncpg
import pytest

from llm_wrapper.errors import InvalidRequest
from llm_wrapper.monitors.records import Monitor
from llm_wrapper.store import MonitorStore, Store, TokenStore
from llm_wrapper.store import monitors as monitor_sql
from llm_wrapper.store import tokens as token_sql
from llm_wrapper.store import usage as usage_sql
from llm_wrapper.store.database import Query, check_text, clean_text, sql

from .test_store import NOW

STATEMENTS = {
    f"{module.__name__.rsplit('.', 1)[1]}.{name}": value
    for module in (token_sql, monitor_sql, usage_sql)
    for name, value in vars(module).items()
    if isinstance(value, Query)
}


def test_sql_renders_named_parameters_for_each_driver() -> None:
    query = sql("UPDATE t SET a = :a, b = :b::jsonb WHERE a > :a AND c = {true} {skip_locked}")
    assert query.sqlite == "UPDATE t SET a = :a, b = :b::jsonb WHERE a > :a AND c = 1 "
    assert query.postgres == "UPDATE t SET a = $1, b = $2::jsonb WHERE a > $1 AND c = TRUE FOR UPDATE SKIP LOCKED"
    assert query.names == ("a", "b")


def test_sql_fills_parts_the_same_or_per_dialect() -> None:
    query = sql("SELECT {cols} FROM t WHERE x = :x{extra}", cols="a, b",
                extra={"sqlite": " AND y = :y", "postgresql": ""})
    assert query.sqlite == "SELECT a, b FROM t WHERE x = :x AND y = :y"
    assert (query.postgres, query.names) == ("SELECT a, b FROM t WHERE x = $1", ("x",))


def test_every_statement_is_fully_rendered() -> None:
    assert len(STATEMENTS) >= 25
    for name, query in STATEMENTS.items():
        for text in (query.sqlite, query.postgres):
            assert "{" not in text and "}" not in text, name
        assert "$" not in query.sqlite and "SKIP LOCKED" not in query.sqlite, name
        assert not any(f":{n}" in query.postgres for n in query.names), name


async def test_every_statement_compiles_on_both_databases(store: Store, store_backend: tuple[str, str]) -> None:
    kind, where = store_backend
    if kind == "sqlite":
        with closing(sqlite3.connect(where)) as db:
            for query in STATEMENTS.values():
                params = {n: None for n in query.names}
                db.execute(f"EXPLAIN {query.sqlite}", params).fetchall()  # parsed and planned, not run
        return
    conn = await asyncpg.connect(where)
    try:
        for name, query in STATEMENTS.items():
            prepared = await conn.prepare(query.postgres)
            assert len(prepared.get_parameters()) == len(query.names), name
    finally:
        await conn.close()


@pytest.mark.parametrize(
    ("value", "message"),
    [(None, "must be a string"), (3, "must be a string"), ("a\x00", "NUL"), ("\udc80", "not valid Unicode")],
)
def test_check_text_refuses_what_no_database_can_store(value: object, message: str) -> None:
    with pytest.raises(InvalidRequest, match=message) as refused:
        check_text(value, "query")
    assert (refused.value.status, refused.value.param) == (400, "query")


def test_check_text_and_clean_text_keep_good_text() -> None:
    assert check_text("naïve ☃ 🙂", "q") == "naïve ☃ 🙂"
    assert clean_text(None) is None and clean_text("fine") == "fine"
    assert clean_text("a\x00b\x00") == "a\ufffdb\ufffd"


async def test_the_store_answers_for_its_token_and_monitor_parts(store: Store) -> None:
    assert isinstance(store.tokens, TokenStore) and isinstance(store.monitors, MonitorStore)
    assert store.authorize.__self__ is store.tokens  # type: ignore[attr-defined]
    assert store.claim_fetches.__self__ is store.monitors  # type: ignore[attr-defined]
    assert store.authorize is store.authorize  # bound once, then an instance attribute
    assert "one atomic statement" in (Store.authorize.__doc__ or "")
    monitor = Monitor(monitor_id="m1", username="alice", query="q", frequency="1d", created_at=NOW)
    await store.monitors.insert_monitor(monitor)
    assert [m.monitor_id for m in await store.list_monitors("alice")] == ["m1"]
