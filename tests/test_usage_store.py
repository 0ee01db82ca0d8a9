"""The usage rollups, budgets and token updates in the store, on SQLite and PostgreSQL.

Times are passed in (the injectable clock of the store's API), so period boundaries are exact.
"""

from __future__ import annotations

import asyncio
from datetime import UTC, date, datetime, timedelta

import pytest

from llm_wrapper.allowlist import AllowListError, allows, check_models, split, to_text
from llm_wrapper.errors import BudgetExceeded, RateLimited
from llm_wrapper.store import Store
from llm_wrapper.store.usage import UsageDelta
from llm_wrapper.tokens import (
    TokenInputError,
    admit,
    apply_changes,
    hash_token,
    issue_token,
    period_end,
)
from llm_wrapper.usage import UsageRecorder

NOW = datetime(2030, 6, 15, 12, 0, 0, tzinfo=UTC)


async def new_token(store: Store, **extra: object) -> str:
    issued = await issue_token(
        store, username="erin", expiry="2099-01-01 00:00:00", rate_limit=100, now=NOW, **extra
    )
    return issued.token


def delta(requests: int, cost: float, username: str = "erin") -> UsageDelta:
    return UsageDelta(username, requests=requests, errors=1, prompt_tokens=10 * requests,
                      completion_tokens=3 * requests, cost_usd=cost)


async def test_flushes_add_up_and_outlive_the_token(store: Store) -> None:
    token = await new_token(store)
    key = (hash_token(token), NOW.date(), "gpt-4o")
    await store.usage.add([(key, delta(2, 0.25))], NOW)
    await asyncio.gather(*(store.usage.add([(key, delta(1, 0.125))], NOW) for _ in range(4)))
    assert await store.delete_token(hash_token(token))
    [row] = await store.usage.usage(NOW.date(), NOW.date())
    assert (row.username, row.model, row.requests, row.errors) == ("erin", "gpt-4o", 6, 5)
    assert (row.prompt_tokens, row.completion_tokens, row.cost_usd) == (60, 18, 0.75)
    assert row.to_json()["total_tokens"] == 78
    assert await store.usage.usage(NOW.date() + timedelta(days=1), NOW.date() + timedelta(days=2)) == []
    assert await store.usage.usage(NOW.date(), NOW.date(), "someone else") == []


async def test_the_recorder_keeps_a_batch_the_database_refused(store: Store) -> None:
    token = await new_token(store)
    recorder = UsageRecorder(store, lambda: NOW)
    recorder.add(hash_token(token), "erin", "m", failed=False, usage={"prompt_tokens": 4}, cost=0.5, priced=True)
    await store.close()
    assert await recorder.flush() is False  # the database is closed: kept for the next flush
    recorder.add(hash_token(token), "erin", "m", failed=True, usage=None, cost=0.0, priced=False)
    [(_, pending)] = recorder._pending.items()
    assert (pending.requests, pending.errors, pending.prompt_tokens, pending.cost_usd) == (2, 1, 4, 0.5)


async def test_a_budget_refuses_once_spent_and_again_admits_in_the_next_period(store: Store) -> None:
    token = await new_token(store, budget_usd=1.0, budget_period="day")
    key = (hash_token(token), NOW.date(), "gpt-4o")
    await store.usage.add([(key, delta(1, 0.999))], NOW)
    assert (await admit(store, token, NOW)).requests_today == 1  # 0.999 < 1
    await store.usage.add([(key, delta(1, 0.001))], NOW)
    with pytest.raises(BudgetExceeded) as refused:
        await admit(store, token, NOW)
    assert refused.value.status == 429 and refused.value.code == "budget_exceeded" and refused.value.final
    assert refused.value.headers["Retry-After"] == str(12 * 3600)
    record = await store.get_token(hash_token(token))
    assert record is not None and record.requests_today(NOW) == 1 and record.spent(NOW) == pytest.approx(1.0)
    midnight = datetime(2030, 6, 16, tzinfo=UTC)
    with pytest.raises(BudgetExceeded) as last_second:
        await admit(store, token, midnight - timedelta(seconds=1))
    assert last_second.value.headers["Retry-After"] == "1"
    assert (await admit(store, token, midnight)).requests_today == 1  # a new day: no spend yet


async def test_a_monthly_budget_spans_the_month_and_the_daily_limit_is_said_first(store: Store) -> None:
    token = await new_token(store, budget_usd=2.0)  # a month by default
    first = datetime(2030, 6, 1, 0, 0, 0, tzinfo=UTC)
    await store.usage.add([((hash_token(token), date(2030, 5, 31), "m"), delta(1, 5.0))], first)  # last month
    await store.usage.add([((hash_token(token), first.date(), "m"), delta(1, 1.0))], first)
    await store.usage.add([((hash_token(token), NOW.date(), "m"), delta(1, 1.0))], NOW)
    with pytest.raises(BudgetExceeded) as refused:
        await admit(store, token, NOW)
    assert refused.value.headers["Retry-After"] == str(int((datetime(2030, 7, 1, tzinfo=UTC) - NOW).total_seconds()))
    assert (await admit(store, token, datetime(2030, 7, 1, tzinfo=UTC))).requests_today == 1
    limited = await new_token(store, budget_usd=0.0)
    record = await store.get_token(hash_token(limited))
    assert record is not None
    await store.update_token(apply_changes(record, {"rate_limit": 1}), NOW)
    await store.usage.add([((hash_token(limited), NOW.date(), "m"), delta(1, 0.0))], NOW)
    with pytest.raises(BudgetExceeded):
        await admit(store, limited, NOW)  # spent 0 >= budget 0


async def test_update_keeps_the_secret_counts_and_usage(store: Store) -> None:
    token = await new_token(store)
    for _ in range(3):
        await admit(store, token, NOW)
    await store.usage.add([((hash_token(token), NOW.date(), "m"), delta(1, 0.5))], NOW)
    record = await store.get_token(hash_token(token))
    assert record is not None and record.spent(NOW) == 0.5  # no budget: this month's spend
    changed = apply_changes(record, {"rate_limit": 3, "expiry": "2031-02-03 04:05:06", "budget_usd": 0.25,
                                     "budget_period": "day", "models": ["gpt-*"]})
    updated = await store.update_token(changed, NOW)
    assert updated is not None
    listing = updated.to_json(NOW)
    assert (listing["rate_limit"], listing["expiry"], listing["requests_today"], listing["lifetime_requests"]) == (
        3, "2031-02-03 04:05:06", 3, 3)
    assert (listing["budget_usd"], listing["budget_period"], listing["spent_usd"], listing["models"]) == (
        0.25, "day", 0.5, ["gpt-*"])
    with pytest.raises(RateLimited):  # the same secret, its count kept: 3 of 3
        await admit(store, token, NOW)
    gone = await store.get_token(hash_token(token))
    assert gone is not None and await store.delete_token(gone.token_hash)
    assert await store.update_token(changed, NOW) is None


@pytest.mark.parametrize(
    ("changes", "field"),
    [({"rate_limit": 0}, "rate_limit"), ({"budget_usd": "1"}, "budget_usd"), ({"budget_usd": float("nan")}, "budget_usd"),
     ({"budget_period": "week"}, "budget_period"), ({"models": "a,b"}, "models"), ({"expiry": None}, "expiry"),
     ({"token_hash": "x"}, "token_hash")],
)
async def test_bad_changes_name_their_field(store: Store, changes: dict, field: str) -> None:
    record = await store.get_token(hash_token(await new_token(store)))
    assert record is not None
    with pytest.raises(TokenInputError) as bad:
        apply_changes(record, changes)
    assert bad.value.field == field


def test_budget_periods_end_at_utc_midnight_and_month_end() -> None:
    assert period_end("day", NOW) == datetime(2030, 6, 16, tzinfo=UTC)
    assert period_end("month", datetime(2030, 12, 31, 23, 0, tzinfo=UTC)) == datetime(2031, 1, 1, tzinfo=UTC)
    assert period_end(None, datetime(2030, 2, 1, tzinfo=UTC)) == datetime(2030, 3, 1, tzinfo=UTC)


def test_allow_list_patterns() -> None:
    text = to_text(["gpt-4o", "claude-*", "*-mini", "meta-llama/*-Turbo"])
    assert allows(text, "gpt-4o") and not allows(text, "gpt-4o-2024")
    assert allows(text, "claude-3") and allows(text, "gpt-5-mini") and not allows(text, "mini")
    assert allows(text, "meta-llama/Llama-3.3-70B-Instruct-Turbo") and not allows(text, "meta-llama/x")
    assert not allows(to_text(["a.c"]), "abc") and not allows(to_text(["a?"]), "ab")  # only `*` is special
    assert allows(None, "anything") and not allows("not json", "anything")
    assert check_models(split("a, b")) == ["a", "b"] and check_models(None) is None
    for bad in ([], [""], ["x" * 201], [1], "a", split("a,,b"), ["a\x00"], ["m"] * 101):
        with pytest.raises(AllowListError):
            check_models(bad)
