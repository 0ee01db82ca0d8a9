"""Token format, expiry parsing and the refusal rules of `admit` / `identify`, on both backends."""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta, timezone

import pytest

from llm_wrapper.errors import AuthenticationFailed, RateLimited
from llm_wrapper.store import Store
from llm_wrapper.tokens import (
    PREFIX,
    admit,
    bearer_token,
    hash_token,
    identify,
    new_token,
    parse_expiry,
    ratelimit_headers,
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
