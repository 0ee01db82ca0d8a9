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
A token may also have a budget (`budget_usd` per UTC `day` or `month`): the
admitting statement refuses a token whose recorded spend in the current
period (`spent_usd`, kept by the usage flusher) has reached it, and `admit`
then says `budget_exceeded`. Without a budget, `spent_usd` is the spend of the
current month.
Tokens imported from the original `auth_tokens.db` keep their counts and are
stored by hash like new ones; the original plaintext token keeps working.
"""

from __future__ import annotations

import hashlib
import secrets
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, replace
from datetime import UTC, date, datetime, timedelta
from typing import TYPE_CHECKING, Any

from .errors import AuthenticationFailed, BudgetExceeded, RateLimited

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


BUDGET_PERIODS = ("day", "month")


def period_start(period: str | None, day: date) -> date:
    """The first day of the budget period holding `day` (a month when there is no period)."""
    return day if period == "day" else day.replace(day=1)


def period_end(period: str | None, now: datetime) -> datetime:
    """When the budget period holding `now` ends (00:00 UTC of the next day or month)."""
    start = period_start(period, now.astimezone(UTC).date())
    if period == "day":
        end = start + timedelta(days=1)
    else:
        end = (start + timedelta(days=32)).replace(day=1)
    return datetime.combine(end, datetime.min.time(), tzinfo=UTC)


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
    token_hash: str = ""
    models: str | None = None  # the allow-list as stored (JSON text); None: every model

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
    budget_usd: float | None = None
    budget_period: str | None = None
    models: list[str] | None = None
    spent_usd: float = 0.0
    spent_period: date | None = None

    def spent(self, now: datetime) -> float:
        """What the token spent in its current budget period (month without a budget), as last flushed."""
        start = period_start(self.budget_period, now.astimezone(UTC).date())
        return self.spent_usd if self.spent_period == start else 0.0

    def over_budget(self, now: datetime) -> bool:
        return self.budget_usd is not None and self.spent(now) >= self.budget_usd

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
            "budget_usd": self.budget_usd,
            "budget_period": self.budget_period,
            "spent_usd": round(self.spent(now), 9),
            "models": self.models,
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
    budget_usd: float | None = None
    budget_period: str | None = None
    models: list[str] | None = None

    def to_json(self) -> dict[str, Any]:
        return {
            "token": self.token,
            "id": token_id(hash_token(self.token)),
            "username": self.username,
            "expiry": format_time(self.expiry),
            "rate_limit": self.rate_limit,
            "budget_usd": self.budget_usd,
            "budget_period": self.budget_period,
            "models": self.models,
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
    check_rate_limit(rate_limit)
    try:
        expires = parse_expiry(str(expiry or ""))
    except ValueError as exc:
        raise TokenInputError("expiry", str(exc)) from None
    return username, expires, rate_limit


MAX_BUDGET_USD = 1e12


def check_rate_limit(rate_limit: Any) -> int:
    if isinstance(rate_limit, bool) or not isinstance(rate_limit, int) or not 1 <= rate_limit <= MAX_RATE_LIMIT:
        raise TokenInputError("rate_limit", f"must be a whole number from 1 to {MAX_RATE_LIMIT}")
    return rate_limit


def check_budget(budget_usd: Any, budget_period: Any) -> tuple[float | None, str | None]:
    """A budget (USD, or None for none) and its period (`day` or `month`; None when not given)."""
    if budget_usd is not None:
        if isinstance(budget_usd, bool) or not isinstance(budget_usd, int | float) or not (
            0 <= budget_usd <= MAX_BUDGET_USD
        ):
            raise TokenInputError("budget_usd", f"must be a number of US dollars from 0 to {MAX_BUDGET_USD:.0f}")
        budget_usd = float(budget_usd)
    if budget_period is not None and budget_period not in BUDGET_PERIODS:
        raise TokenInputError("budget_period", "must be 'day' or 'month'")
    return budget_usd, budget_period


def check_models(models: Any) -> list[str] | None:
    from .allowlist import AllowListError
    from .allowlist import check_models as check

    try:
        return check(models)
    except AllowListError as exc:
        raise TokenInputError("models", str(exc)) from None


def apply_changes(record: TokenRecord, changes: dict[str, Any]) -> TokenRecord:
    """The token with `changes` (any of `rate_limit`, `expiry`, `budget_usd`, `budget_period`,
    `models`) applied; TokenInputError naming the first bad or unknown field. A budget set
    without a period keeps the token's, else is a month's; no budget drops the period."""
    known = {"rate_limit", "expiry", "budget_usd", "budget_period", "models"}
    for name in changes:
        if name not in known:
            raise TokenInputError(str(name)[:40], "is not a field that can be changed")
    update: dict[str, Any] = {}
    if "rate_limit" in changes:
        update["rate_limit"] = check_rate_limit(changes["rate_limit"])
    if "expiry" in changes:
        try:
            update["expiry"] = parse_expiry(changes["expiry"]) if isinstance(changes["expiry"], str) else None
        except ValueError as exc:
            raise TokenInputError("expiry", str(exc)) from None
        if update["expiry"] is None:
            raise TokenInputError("expiry", "must be 'YYYY-MM-DD HH:MM:SS' (UTC)")
    budget = changes.get("budget_usd", record.budget_usd)
    period = changes.get("budget_period", record.budget_period)
    budget, period = check_budget(budget, period)
    if "budget_usd" in changes:
        if budget is None and "budget_period" not in changes:
            period = None
        elif budget is not None and period is None:
            period = "month"
    update["budget_usd"], update["budget_period"] = budget, period
    if "models" in changes:
        update["models"] = check_models(changes["models"])
    return replace(record, **update)


async def issue_token(
    store: Store, *, username: Any, expiry: str, rate_limit: Any, now: datetime,
    budget_usd: Any = None, budget_period: Any = None, models: Any = None,
) -> IssuedToken:
    """Validate, make and store a new token (hashed); the secret is returned once."""
    username, expires, limit = check_new_token(username, expiry, rate_limit)
    budget, period = check_budget(budget_usd, budget_period)
    if budget is not None and period is None:
        period = "month"
    allowed = check_models(models)
    token = new_token()
    await store.add_token(
        token_hash=hash_token(token), username=username, expiry=expires, rate_limit=limit, now=now,
        budget_usd=budget, budget_period=period, models=allowed,
    )
    return IssuedToken(token, username, expires, limit, budget, period, allowed)


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
    if not header:
        raise AuthenticationFailed("Missing bearer token: send 'Authorization: Bearer <token>'.")
    scheme, _, value = header.partition(" ")
    value = value.strip()
    if scheme.lower() != "bearer" or not value:
        raise AuthenticationFailed("Malformed Authorization header: expected 'Bearer <token>'.")
    return value


async def identify(store: Store, token: str, now: datetime) -> TokenRecord:
    """The token's record for routes that authenticate without counting a request; raises 401."""
    record = await store.get_token(hash_token(token))
    if record is None:
        raise AuthenticationFailed("Invalid token.")
    if record.expired(now):
        raise AuthenticationFailed(f"This token expired at {format_time(record.expiry)} UTC.", code="token_expired")  # type: ignore[arg-type]
    return record


async def admit(
    store: Store, token: str, now: datetime,
    authorize: Callable[[str, datetime], Awaitable[Grant | None]] | None = None,
) -> Grant:
    """Authorise and count one request, or raise why not (401 or 429 with Retry-After).

    `authorize` counts it (`store.authorize` unless given: the gateway's `Admissions`)."""
    token_hash = hash_token(token)
    grant = await (authorize or store.authorize)(token_hash, now)
    if grant is not None:
        return grant
    record = await store.get_token(token_hash)  # refusals only: find out which refusal
    if record is None:
        raise AuthenticationFailed("Invalid token.")
    if record.expired(now):
        raise AuthenticationFailed(f"This token expired at {format_time(record.expiry)} UTC.", code="token_expired")  # type: ignore[arg-type]
    if record.requests_today(now) < record.rate_limit and record.over_budget(now):
        until = period_end(record.budget_period, now)
        raise BudgetExceeded(
            f"The budget of ${record.budget_usd:g} a {record.budget_period or 'month'} is spent; "
            f"it starts again at {format_time(until)} UTC.",
            headers={"Retry-After": str(max(1, int((until - now).total_seconds() + 0.999)))},
        )
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
