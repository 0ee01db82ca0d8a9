"""Token format, expiry parsing and the refusal rules of `admit` / `identify`, on both backends."""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta, timezone

import pytest

from llm_wrapper.errors import AuthenticationFailed, RateLimited
from llm_wrapper.store import Store
from llm_wrapper.tokens import (
    EXPIRY_MAX,
    EXPIRY_MIN,
    PREFIX,
    TokenInputError,
    admit,
    bearer_token,
    check_new_token,
    format_time,
    hash_token,
    identify,
    issue_token,
    new_token,
    parse_expiry,
    ratelimit_headers,
    release,
    seconds_to_reset,
)

from .test_store import EXPIRY, NOW, add


def test_new_token_format() -> None:
    tokens = {new_token() for _ in range(100)}
    assert len(tokens) == 100
    for token in tokens:
        assert re.fullmatch(r"llmw_[A-Za-z0-9_-]{43,}", token), token
    assert PREFIX == "llmw_"
    assert re.fullmatch(r"[0-9a-f]{64}", hash_token("x"))


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("2030-01-01 00:00:00", datetime(2030, 1, 1, tzinfo=UTC)),
        ("  2030-01-01 12:30:05 ", datetime(2030, 1, 1, 12, 30, 5, tzinfo=UTC)),
        ("2030-01-01T12:30:05", datetime(2030, 1, 1, 12, 30, 5, tzinfo=UTC)),
        ("2030-01-01 02:00:00+02:00", datetime(2030, 1, 1, 0, 0, tzinfo=UTC)),
        ("2030-01-01 00:00:00-05:30", datetime(2030, 1, 1, 5, 30, tzinfo=UTC)),
        ("2030-01-01T00:00:00Z", datetime(2030, 1, 1, tzinfo=UTC)),
        ("2030-01-01 00:00:00.999", datetime(2030, 1, 1, tzinfo=UTC)),
        ("2030-01-01", datetime(2030, 1, 1, tzinfo=UTC)),
    ],
)
def test_parse_expiry(text: str, expected: datetime) -> None:
    parsed = parse_expiry(text)
    assert parsed == expected
    assert parsed.utcoffset() == timedelta(0)


@pytest.mark.parametrize(
    "text", ["", "   ", "tomorrow", "2030-13-01 00:00:00", "2030-01-01 25:00:00", "01/02/2030"]
)
def test_parse_expiry_refuses_garbage(text: str) -> None:
    with pytest.raises(ValueError, match="YYYY-MM-DD HH:MM:SS"):
        parse_expiry(text)


@pytest.mark.parametrize(
    "text",
    [
        "0999-06-01 00:00:00",
        "0001-01-01 00:00:00",
        "0001-01-01T00:00:00+01:00",  # before year 1 in UTC
        "1999-12-31 23:59:59",
        "9999-01-01 00:00:00",
        "9999-12-31T23:59:59-10:00",  # year 10000 in UTC
        "9998-12-31T23:59:59-00:01",
    ],
)
def test_parse_expiry_refuses_dates_out_of_range(text: str) -> None:
    with pytest.raises(ValueError, match="out of range; use a date from 2000-01-01 to 9998-12-31"):
        parse_expiry(text)


def test_parse_expiry_accepts_the_ends_of_the_range() -> None:
    assert parse_expiry("2000-01-01 00:00:00") == EXPIRY_MIN
    assert parse_expiry("9998-12-31 23:59:59") == EXPIRY_MAX
    assert parse_expiry("9998-12-31T23:59:59.999999") == EXPIRY_MAX
    assert parse_expiry("2000-01-01T01:00:00+01:00") == EXPIRY_MIN


def test_format_time_always_writes_four_digit_years() -> None:
    assert format_time(datetime(999, 6, 1, tzinfo=UTC)) == "0999-06-01 00:00:00"
    assert format_time(datetime(2030, 1, 2, 3, 4, 5, 678901, tzinfo=UTC)) == "2030-01-02 03:04:05"
    assert format_time(datetime(2030, 1, 2, 3, 4, 5, tzinfo=timezone(timedelta(hours=2)))) == "2030-01-02 01:04:05"


@pytest.mark.parametrize(
    ("username", "message"),
    [
        (123, "must be a string"),
        (["alice"], "must be a string"),
        ({"name": "alice"}, "must be a string"),
        (True, "must be a string"),
        ("ali\x00ce", "must not contain NUL"),
        (None, "must not be empty"),
        ("  ", "must not be empty"),
    ],
)
def test_check_new_token_refuses_bad_usernames(username: object, message: str) -> None:
    with pytest.raises(TokenInputError, match=message) as refused:
        check_new_token(username, "2030-01-01 00:00:00", 5)
    assert refused.value.field == "username"


async def test_issue_token_refuses_a_nul_username_and_stores_nothing(store: Store) -> None:
    with pytest.raises(TokenInputError):
        await issue_token(store, username="a\x00b", expiry="2030-01-01 00:00:00", rate_limit=5, now=NOW)
    with pytest.raises(TokenInputError):
        await issue_token(store, username=7, expiry="2030-01-01 00:00:00", rate_limit=5, now=NOW)
    assert await store.list_tokens() == []


async def test_release_gives_back_what_admit_counted(store: Store) -> None:
    token = await add(store, rate_limit=1)
    grant = await admit(store, token, NOW)
    await release(store, token, grant)
    again = await admit(store, token, NOW)  # the day's only request is free again
    assert (again.requests_today, again.lifetime_requests) == (1, 1)


@pytest.mark.parametrize(
    ("now", "seconds"),
    [
        (datetime(2030, 1, 1, 23, 59, 30, tzinfo=UTC), 30),
        (datetime(2030, 1, 1, 0, 0, 0, tzinfo=UTC), 86400),
        (datetime(2030, 1, 1, 12, 0, 0, tzinfo=UTC), 43200),
        (datetime(2030, 1, 1, 23, 59, 59, 500000, tzinfo=UTC), 1),
        (datetime(2030, 1, 2, 1, 0, 0, tzinfo=timezone(timedelta(hours=2))), 3600),
    ],
)
def test_seconds_to_reset(now: datetime, seconds: int) -> None:
    assert seconds_to_reset(now) == seconds


@pytest.mark.parametrize("header", [None, "", "Bearer", "Bearer   ", "Basic abc", "llmw_abc"])
def test_bearer_token_refuses_malformed_headers(header: str | None) -> None:
    with pytest.raises(AuthenticationFailed):
        bearer_token(header)


def test_bearer_token() -> None:
    assert bearer_token("Bearer llmw_abc") == "llmw_abc"
    assert bearer_token("bearer  llmw_abc ") == "llmw_abc"


async def test_admit_counts_and_then_refuses_with_retry_after(store: Store) -> None:
    token = await add(store, rate_limit=2)
    first = await admit(store, token, NOW)
    second = await admit(store, token, NOW)
    assert (first.remaining, second.remaining) == (1, 0)
    assert ratelimit_headers(second, NOW) == {
        "x-ratelimit-limit-requests": "2",
        "x-ratelimit-remaining-requests": "0",
        "x-ratelimit-reset-requests": "43200s",
    }
    late = NOW.replace(hour=23, minute=59, second=50)
    with pytest.raises(RateLimited) as refused:
        await admit(store, token, late)
    assert refused.value.status == 429
    assert refused.value.headers["Retry-After"] == "10"
    assert refused.value.headers["x-ratelimit-remaining-requests"] == "0"
    assert refused.value.headers["x-ratelimit-limit-requests"] == "2"
    next_day = NOW + timedelta(days=1)
    assert (await admit(store, token, next_day)).requests_today == 1


async def test_admit_refuses_unknown_and_expired_tokens(store: Store) -> None:
    with pytest.raises(AuthenticationFailed) as unknown:
        await admit(store, "llmw_not-a-token", NOW)
    assert unknown.value.status == 401 and unknown.value.code == "invalid_api_key"
    token = await add(store, expiry=NOW)
    with pytest.raises(AuthenticationFailed) as expired:
        await admit(store, token, NOW)
    assert expired.value.status == 401 and expired.value.code == "token_expired"
    assert "2030-06-15 12:00:00" in expired.value.message
    assert (await admit(store, token, NOW - timedelta(seconds=1))).requests_today == 1


async def test_identify_authenticates_without_counting(store: Store) -> None:
    token = await add(store, rate_limit=1)
    await admit(store, token, NOW)
    for _ in range(3):
        record = await identify(store, token, NOW)  # works even when out of requests
        assert (record.username, record.requests_today(NOW), record.lifetime_requests) == (
            "alice",
            1,
            1,
        )
    assert ratelimit_headers(record, NOW)["x-ratelimit-remaining-requests"] == "0"
    with pytest.raises(AuthenticationFailed):
        await identify(store, "llmw_nope", NOW)
    with pytest.raises(AuthenticationFailed) as expired:
        await identify(store, token, EXPIRY)
    assert expired.value.code == "token_expired"
