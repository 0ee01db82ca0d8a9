"""The token table, on either database: admit and count, give back, add, list, delete.

Each statement is written once (see `database.py`). `authorize` and `release`
are one statement each, so no two requests, on any number of workers or
instances sharing the database, can both take the last request of a day.
"""

from __future__ import annotations

from datetime import UTC, date, datetime
from typing import Any

from .. import allowlist
from ..errors import InvalidRequest
from ..tokens import EXPIRY_MAX, EXPIRY_MIN, Grant, TokenRecord
from .database import Database, Executor, Row, check_text, sql

# A stored expiry reads as stored from EXPIRY_MIN to READ_MAX (tokens made before
# EXPIRY_MAX was the limit may say 9999), else as EXPIRY_MIN: expired. Values asyncpg
# could not decode (±infinity, beyond year 9999, BC) are clamped in SQL; text SQLite
# holds that is not a time, in `_expiry`. `authorize` refuses them all.
READ_MAX = datetime(9999, 12, 31, 23, 59, 59, tzinfo=UTC)
EXPIRY = (
    "CASE WHEN expiry BETWEEN :floor AND :read_max THEN expiry "
    "WHEN expiry IS NOT NULL THEN :floor END AS expiry"
)
COLUMNS = (
    f"token_hash, username, {EXPIRY}, rate_limit, request_count, last_request_date, "
    "lifetime_requests, created_at, budget_usd, budget_period, models, spent_usd, spent_period"
)
# The first day of the token's current budget period (a month when it has no budget period).
# (PostgreSQL cannot tell the parameters' type inside a CASE; SQLite keeps days as text.)
PERIOD = {
    "sqlite": "(CASE WHEN budget_period = 'day' THEN :today ELSE :month END)",
    "postgresql": "(CASE WHEN budget_period = 'day' THEN CAST(:today AS DATE) ELSE CAST(:month AS DATE) END)",
}
# The token's spend in its current period, from the usage rollups (run by the flusher after
# adding to them, and when a token's budget changes), so the admitting statement need only
# compare two columns of the row it updates anyway.
RECOMPUTE_SPEND = sql("""
UPDATE tokens SET
    spent_period = {period},
    spent_usd = COALESCE((SELECT SUM(u.cost_usd) FROM usage_daily u
                          WHERE u.token_hash = tokens.token_hash AND u.day >= {period}), 0)
WHERE token_hash = :hash
""", period=PERIOD)

# Check and count `:n` requests (all or none: admissions.py) in one statement. Concurrent updates of a row queue on its lock
# and each re-checks the WHERE clause against the row as the previous one left it
# (PostgreSQL, READ COMMITTED; SQLite has one writer at a time), so the limit holds.
# `last_request_date >= :today` rather than `=`: an instance whose clock lags a few
# seconds behind another's just after midnight keeps counting the newer day instead
# of restarting it. A token with a budget is refused once its spend in the current
# period, as last flushed, has reached the budget (a spend of an earlier period is none).
# On SQLite, dates and times are ISO text, which compares in time
# order when it is a time (`datetime(expiry) = expiry`: '999-06-01 …' sorts after 2030).
AUTHORIZE = sql("""
UPDATE tokens SET
    request_count = CASE WHEN last_request_date >= :today THEN request_count + :n ELSE :n END,
    last_request_date = CASE WHEN last_request_date >= :today THEN last_request_date ELSE :today END,
    lifetime_requests = lifetime_requests + :n
WHERE token_hash = :hash
  AND (expiry IS NULL OR (expiry > :now AND expiry <= :read_max{a_time}))
  AND (CASE WHEN last_request_date >= :today THEN request_count ELSE 0 END) + :n <= rate_limit
  AND (budget_usd IS NULL OR spent_period IS NULL OR spent_period <> {period} OR spent_usd < budget_usd)
RETURNING username, rate_limit, request_count, lifetime_requests, expiry, last_request_date, models
""", a_time={"sqlite": " AND datetime(expiry) = expiry", "postgresql": ""}, period=PERIOD)
# The day's count is given back only while it is still the count of the day it was
# taken on (after midnight that count has restarted); neither count goes below zero.
RELEASE = sql("""
UPDATE tokens SET
    request_count = CASE WHEN last_request_date = :day AND request_count > 0
                         THEN request_count - 1 ELSE request_count END,
    lifetime_requests = CASE WHEN lifetime_requests > 0 THEN lifetime_requests - 1 ELSE 0 END
WHERE token_hash = :hash
""")
ADD = sql(
    "INSERT INTO tokens (token_hash, username, expiry, rate_limit, created_at, budget_usd, budget_period, models) "
    "VALUES (:hash, :username, :expiry, :rate_limit, :created_at, :budget_usd, :budget_period, :models)"
)
UPDATE = sql(
    "UPDATE tokens SET rate_limit = :rate_limit, expiry = :expiry, budget_usd = :budget_usd, "
    "budget_period = :budget_period, models = :models WHERE token_hash = :hash"
)
IMPORT = sql(
    "INSERT INTO tokens (token_hash, username, expiry, rate_limit, request_count, last_request_date, "
    "lifetime_requests, created_at) VALUES (:hash, :username, :expiry, :rate_limit, :request_count, "
    ":last_request_date, :lifetime_requests, :created_at) ON CONFLICT (token_hash) DO NOTHING"
)
GET = sql(f"SELECT {COLUMNS} FROM tokens WHERE token_hash = :hash")
LIST = sql(f"SELECT {COLUMNS} FROM tokens ORDER BY username, created_at")
DELETE = sql("DELETE FROM tokens WHERE token_hash = :hash")


class TokenStore:
    """Tokens by hash (never the secret); times are aware UTC datetimes."""

    def __init__(self, db: Database) -> None:
        self.db = db
        self._read_max = db.seconds(READ_MAX)
        self._bounds = {"floor": db.seconds(EXPIRY_MIN), "read_max": self._read_max}

    async def authorize(self, token_hash: str, now: datetime, n: int = 1) -> Grant | None:
        """Admit and count `n` requests (all of them or none) in one atomic statement.

        Returns the grant of the last of them, or None when the token is unknown, expired,
        over its budget or without `n` requests left today (then nothing was counted;
        `get_token` says which).
        """
        db = self.db
        today = now.astimezone(UTC).date()
        rows = await db.rows(AUTHORIZE, {
            "hash": token_hash, "today": db.day(today), "month": db.day(today.replace(day=1)),
            "now": db.seconds(now), "read_max": self._read_max, "n": n,
        })
        if not rows:
            return None
        row = rows[0]
        return Grant(row[0], row[1], row[2], row[3], self._expiry(row[4]), db.read_day(row[5]), token_hash, row[6])

    async def release(self, token_hash: str, counted_on: date) -> None:
        """Give back one request `authorize` counted on `counted_on` (UTC day), in one statement:
        off `lifetime_requests`, and off the day's count while that is still `counted_on`'s.
        Neither goes below zero; an unknown token is ignored."""
        await self.db.run(RELEASE, {"hash": token_hash, "day": self.db.day(counted_on)})

    async def add_token(
        self, *, token_hash: str, username: str, expiry: datetime, rate_limit: int, now: datetime,
        budget_usd: float | None = None, budget_period: str | None = None, models: list[str] | None = None,
    ) -> None:
        """Store a new token; InvalidRequest if the username or expiry cannot be stored."""
        db = self.db
        await db.run(ADD, {
            "hash": token_hash, "username": check_text(username, "username"),
            "expiry": db.seconds(_storable(expiry)), "rate_limit": rate_limit, "created_at": db.seconds(now),
            "budget_usd": budget_usd, "budget_period": budget_period, "models": allowlist.to_text(models),
        })

    async def update_token(self, record: TokenRecord, now: datetime) -> TokenRecord | None:
        """Write a token's limit, expiry, budget and allow-list (its secret and counts stay), and
        bring its spend up to date for its (maybe new) period; the token as it now stands, or
        None when it is gone."""
        db = self.db
        today = now.astimezone(UTC).date()

        async def work(tx: Executor) -> int:
            changed = await tx.run(UPDATE, {
                "hash": record.token_hash, "rate_limit": record.rate_limit,
                "expiry": db.seconds(_storable(record.expiry)), "budget_usd": record.budget_usd,
                "budget_period": record.budget_period, "models": allowlist.to_text(record.models),
            })
            await tx.run(RECOMPUTE_SPEND, {
                "hash": record.token_hash, "today": db.day(today), "month": db.day(today.replace(day=1)),
            })
            return changed

        if not await db.transact(work):
            return None
        return await self.get_token(record.token_hash)

    async def import_token(self, record: TokenRecord) -> bool:
        """Store a token (by hash) unless it is already there; True when it was added."""
        db = self.db
        return await db.run(IMPORT, {
            "hash": record.token_hash, "username": check_text(record.username, "username"),
            "expiry": db.seconds(_storable(record.expiry)), "rate_limit": record.rate_limit,
            "request_count": record.request_count, "last_request_date": db.day(record.last_request_date),
            "lifetime_requests": record.lifetime_requests,
            "created_at": db.seconds(record.created_at or datetime.now(UTC)),
        }) == 1

    async def get_token(self, token_hash: str) -> TokenRecord | None:
        rows = await self.db.rows(GET, {**self._bounds, "hash": token_hash})
        return self._record(rows[0]) if rows else None

    async def list_tokens(self) -> list[TokenRecord]:
        """Every token, by username; never raises on a stored expiry it cannot read (see READ_MAX)."""
        return [self._record(row) for row in await self.db.rows(LIST, self._bounds)]

    async def delete_token(self, token_hash: str) -> bool:
        return await self.db.run(DELETE, {"hash": token_hash}) == 1

    def _expiry(self, value: Any) -> datetime | None:
        if value is None:
            return None
        try:
            moment = self.db.read_time(value)
            if moment is not None and EXPIRY_MIN <= moment <= READ_MAX:
                return moment
        except (ValueError, TypeError, OverflowError):
            pass
        return EXPIRY_MIN

    def _record(self, row: Row) -> TokenRecord:
        db = self.db
        return TokenRecord(
            token_hash=row[0], username=row[1], expiry=self._expiry(row[2]), rate_limit=row[3],
            request_count=row[4], last_request_date=db.read_day(row[5]), lifetime_requests=row[6],
            created_at=db.read_time(row[7]), budget_usd=row[8], budget_period=row[9],
            models=allowlist.from_text(row[10]), spent_usd=row[11] or 0.0, spent_period=db.read_day(row[12]),
        )


def _storable(expiry: datetime | None) -> datetime | None:
    if expiry is not None and not EXPIRY_MIN <= expiry <= EXPIRY_MAX:
        raise InvalidRequest(
            f"'expiry' must be from {EXPIRY_MIN:%Y-%m-%d} to {EXPIRY_MAX:%Y-%m-%d} (UTC).", param="expiry"
        )
    return expiry
