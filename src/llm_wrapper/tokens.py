"""Bearer tokens: their format, how they are stored, and the daily-limit rules.

A token is `llmw_` followed by 43 URL-safe characters (32 random bytes from
`secrets`). Only its SHA-256 hash is stored, so the database never holds a
usable secret; lookups go by hash, which leaks nothing through timing because
an attacker cannot choose the hash of what they send.

Times are UTC. An expiry written without a zone ("YYYY-MM-DD HH:MM:SS") is
read as UTC; one with an offset is converted to UTC; it must fall between
EXPIRY_MIN and EXPIRY_MAX (years 2000 to 9998) once in UTC. A token is valid
while now < expiry. The daily count starts again at 00:00 UTC.

Counting (the store's `authorize`, one UPDATE … RETURNING statement): a
request is counted when it is admitted, before it is forwarded; refusals (401,
429) count nothing. Other authenticated routes use `identify`, which checks
the token without counting. `lifetime_requests` counts every admitted request.
A request that got no answer through no fault of the caller is given back with
`release` (one UPDATE statement: the day's count, if still that day's, and the
lifetime count, each less one, never below zero).
Tokens imported from the original `auth_tokens.db` keep their counts and are
stored by hash like new ones; the original plaintext token keeps working.
"""

from __future__ import annotations

import hashlib
import secrets
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from .store.base import Store

PREFIX = "llmw_"
EXPIRY_FORMAT = "%Y-%m-%d %H:%M:%S"
# What an expiry may be: far enough from datetime's limits that no offset or
# formatting can overflow. The store reads a stored expiry before EXPIRY_MIN, past
# year 9999 or unreadable (PostgreSQL's ±infinity, text that is no time) as EXPIRY_MIN.
EXPIRY_MIN = datetime(2000, 1, 1, tzinfo=UTC)
EXPIRY_MAX = datetime(9998, 12, 31, 23, 59, 59, tzinfo=UTC)
MAX_RATE_LIMIT = 2**31 - 1  # the largest value a PostgreSQL INTEGER column holds


def new_token() -> str:
    return PREFIX + secrets.token_urlsafe(32)


def hash_token(token: str) -> str:
    return hashlib.sha256(token.encode("utf-8")).hexdigest()


def token_id(token_hash: str) -> str:
    """A short, public handle for a token (the start of its hash), safe to print and log."""
    return token_hash[:10]


def parse_expiry(text: str) -> datetime:
    """Parse an expiry (UTC, whole seconds, EXPIRY_MIN to EXPIRY_MAX); raises ValueError with a readable message."""
    value = text.strip()
    if not value:
        raise ValueError("the expiry is empty; use 'YYYY-MM-DD HH:MM:SS' (UTC)")
    try:
        parsed = datetime.fromisoformat(value)
    except ValueError:
        raise ValueError(f"cannot read the expiry {text!r}; use 'YYYY-MM-DD HH:MM:SS' (UTC)") from None
    if parsed.tzinfo is None:
        parsed = parsed.replace(tzinfo=UTC)
    try:
        parsed = parsed.astimezone(UTC).replace(microsecond=0)
    except OverflowError:  # e.g. 9999-12-31T23:59:59-10:00 is in year 10000 in UTC
        parsed = EXPIRY_MAX + timedelta(seconds=1)
    if not EXPIRY_MIN <= parsed <= EXPIRY_MAX:
        raise ValueError(
            f"the expiry {text!r} is out of range; use a date from {EXPIRY_MIN:%Y-%m-%d} "
            f"to {EXPIRY_MAX:%Y-%m-%d} (UTC)"
        )
    return parsed


def format_time(moment: datetime) -> str:
    """'YYYY-MM-DD HH:MM:SS' in UTC (the year always four digits, unlike strftime's %Y)."""
    return moment.astimezone(UTC).replace(tzinfo=None).isoformat(" ", "seconds")


def utc_now() -> datetime:
    return datetime.now(UTC)


def next_reset(now: datetime) -> datetime:
    """The next 00:00 UTC, when every daily count starts again."""
    today = now.astimezone(UTC).date()
    return datetime.combine(today + timedelta(days=1), datetime.min.time(), tzinfo=UTC)


def seconds_to_reset(now: datetime) -> int:
    return max(1, int((next_reset(now) - now).total_seconds() + 0.999))


@dataclass(frozen=True, slots=True)
class Grant:
    """An admitted request: who it is, and where their day's count stands after it.

    `counted_on` is the UTC day whose count holds the request: what `release` needs.
    """

    username: str
    rate_limit: int
    requests_today: int
    lifetime_requests: int
    expiry: datetime | None
    counted_on: date | None = None

    @property
    def remaining(self) -> int:
        return max(0, self.rate_limit - self.requests_today)


@dataclass(frozen=True, slots=True)
class TokenRecord:
    """A stored token as listed: everything but the secret."""

    token_hash: str
    username: str
    expiry: datetime | None
    rate_limit: int
    request_count: int
    last_request_date: date | None
    lifetime_requests: int
    created_at: datetime | None

    def requests_today(self, now: datetime) -> int:
        return self.request_count if self.last_request_date == now.astimezone(UTC).date() else 0

    def expired(self, now: datetime) -> bool:
        return self.expiry is not None and now >= self.expiry

    @property
    def id(self) -> str:
        return token_id(self.token_hash)

    def to_json(self, now: datetime) -> dict[str, Any]:
        """As `tokens list --json` and the admin API show it: never the secret or its hash."""
        return {
            "id": self.id,
            "username": self.username,
            "expiry": format_time(self.expiry) if self.expiry else None,
            "expired": self.expired(now),
            "rate_limit": self.rate_limit,
            "requests_today": self.requests_today(now),
            "lifetime_requests": self.lifetime_requests,
            "last_request_date": self.last_request_date.isoformat() if self.last_request_date else None,
            "created_at": format_time(self.created_at) if self.created_at else None,
        }


class TokenInputError(ValueError):
    """A value given for a new token is unusable; `field` names it."""

    def __init__(self, field: str, message: str) -> None:
        super().__init__(message)
        self.field = field


@dataclass(frozen=True, slots=True)
class IssuedToken:
    """A new token: the secret is here once and only here."""

    token: str
    username: str
    expiry: datetime
    rate_limit: int

    def to_json(self) -> dict[str, Any]:
        return {
            "token": self.token,
            "id": token_id(hash_token(self.token)),
            "username": self.username,
            "expiry": format_time(self.expiry),
            "rate_limit": self.rate_limit,
        }


def check_new_token(username: Any, expiry: str, rate_limit: Any) -> tuple[str, datetime, int]:
    """Validate a new token's fields; raises TokenInputError naming the first bad one."""
    if username is None:
        username = ""
    if not isinstance(username, str):
        raise TokenInputError("username", "must be a string")
    username = username.strip()
    if not username:
        raise TokenInputError("username", "must not be empty")
    if "\x00" in username:
        raise TokenInputError("username", "must not contain NUL characters")
    if isinstance(rate_limit, bool) or not isinstance(rate_limit, int) or not 1 <= rate_limit <= MAX_RATE_LIMIT:
        raise TokenInputError("rate_limit", f"must be a whole number from 1 to {MAX_RATE_LIMIT}")
    try:
        expires = parse_expiry(str(expiry or ""))
    except ValueError as exc:
        raise TokenInputError("expiry", str(exc)) from None
    return username, expires, rate_limit


async def issue_token(store: Store, *, username: Any, expiry: str, rate_limit: Any, now: datetime) -> IssuedToken:
    """Validate, make and store a new token (hashed); the secret is returned once."""
    username, expires, limit = check_new_token(username, expiry, rate_limit)
    token = new_token()
    await store.add_token(token_hash=hash_token(token), username=username, expiry=expires, rate_limit=limit, now=now)
    return IssuedToken(token, username, expires, limit)


def ratelimit_headers(grant: Grant | TokenRecord, now: datetime) -> dict[str, str]:
    if isinstance(grant, TokenRecord):
        remaining = max(0, grant.rate_limit - grant.requests_today(now))
    else:
        remaining = grant.remaining
    return {
        "x-ratelimit-limit-requests": str(grant.rate_limit),
        "x-ratelimit-remaining-requests": str(remaining),
        "x-ratelimit-reset-requests": f"{seconds_to_reset(now)}s",
    }


def bearer_token(header: str | None) -> str:
    """The token from an `Authorization: Bearer …` header; raises AuthenticationFailed."""
    from .errors import AuthenticationFailed

    if not header:
        raise AuthenticationFailed("Missing bearer token: send 'Authorization: Bearer <token>'.")
    scheme, _, value = header.partition(" ")
    value = value.strip()
    if scheme.lower() != "bearer" or not value:
        raise AuthenticationFailed("Malformed Authorization header: expected 'Bearer <token>'.")
    return value


async def identify(store: Store, token: str, now: datetime) -> TokenRecord:
    """The token's record for routes that authenticate without counting a request; raises 401."""
    from .errors import AuthenticationFailed

    record = await store.get_token(hash_token(token))
    if record is None:
        raise AuthenticationFailed("Invalid token.")
    if record.expired(now):
        raise AuthenticationFailed(f"This token expired at {format_time(record.expiry)} UTC.", code="token_expired")  # type: ignore[arg-type]
    return record


async def admit(store: Store, token: str, now: datetime) -> Grant:
    """Authorise and count one request, or raise why not (401 or 429 with Retry-After)."""
    from .errors import AuthenticationFailed, RateLimited

    token_hash = hash_token(token)
    grant = await store.authorize(token_hash, now)
    if grant is not None:
        return grant
    record = await store.get_token(token_hash)  # refusals only: find out which refusal
    if record is None:
        raise AuthenticationFailed("Invalid token.")
    if record.expired(now):
        raise AuthenticationFailed(f"This token expired at {format_time(record.expiry)} UTC.", code="token_expired")  # type: ignore[arg-type]
    wait = seconds_to_reset(now)
    raise RateLimited(
        f"Daily request limit of {record.rate_limit} reached; it resets at 00:00 UTC.",
        headers={
            "Retry-After": str(wait),
            "x-ratelimit-limit-requests": str(record.rate_limit),
            "x-ratelimit-remaining-requests": "0",
            "x-ratelimit-reset-requests": f"{wait}s",
        },
    )


async def release(store: Store, token: str, grant: Grant) -> None:
    """Give back a request `admit` counted (it got no answer through no fault of the caller).

    One atomic statement takes it off the day's count (when that count is still
    the day's it was counted on) and off the lifetime count, never below zero.
    Call it at most once per grant; a grant the store did not make (no
    `counted_on`) has nothing to give back.
    """
    if grant.counted_on is not None:
        await store.release(hash_token(token), grant.counted_on)
