"""The usage rollups, on either database: per token, UTC day and model, added to in batches.

Every process adds its own deltas (`x = x + excluded.x`), so the sums are exact
across workers and instances however their flushes interleave. The rows keep
the username and outlive their token.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from datetime import date, datetime
from typing import Any

from .database import Database, Executor, sql
from .tokens import RECOMPUTE_SPEND

ADD = sql("""
INSERT INTO usage_daily (token_hash, day, model, username, requests, errors, prompt_tokens,
                         completion_tokens, cost_usd, unpriced)
VALUES (:hash, :day, :model, :username, :requests, :errors, :prompt, :completion, :cost, :unpriced)
ON CONFLICT (token_hash, day, model) DO UPDATE SET
    requests = usage_daily.requests + excluded.requests,
    errors = usage_daily.errors + excluded.errors,
    prompt_tokens = usage_daily.prompt_tokens + excluded.prompt_tokens,
    completion_tokens = usage_daily.completion_tokens + excluded.completion_tokens,
    cost_usd = usage_daily.cost_usd + excluded.cost_usd,
    unpriced = usage_daily.unpriced + excluded.unpriced
""")
ROWS = sql("""
SELECT day, username, model, CAST(SUM(requests) AS BIGINT), CAST(SUM(errors) AS BIGINT),
       CAST(SUM(prompt_tokens) AS BIGINT), CAST(SUM(completion_tokens) AS BIGINT), SUM(cost_usd),
       CAST(SUM(unpriced) AS BIGINT)
FROM usage_daily
WHERE day >= :start AND day <= :end AND (CAST(:username AS TEXT) IS NULL OR username = :username)
GROUP BY day, username, model
ORDER BY day, username, model
""")


@dataclass(slots=True)
class UsageDelta:
    """What one process saw for a token, day and model since its last flush."""

    username: str
    requests: int = 0
    errors: int = 0
    prompt_tokens: int = 0
    completion_tokens: int = 0
    cost_usd: float = 0.0
    unpriced: int = 0

    def merge(self, other: UsageDelta) -> None:
        self.requests += other.requests
        self.errors += other.errors
        self.prompt_tokens += other.prompt_tokens
        self.completion_tokens += other.completion_tokens
        self.cost_usd += other.cost_usd
        self.unpriced += other.unpriced


UsageKey = tuple[str, date, str]  # token hash, UTC day, model


@dataclass(frozen=True, slots=True)
class UsageRow:
    """A day's usage of one user and model (every token of the user summed)."""

    day: date
    username: str
    model: str
    requests: int
    errors: int
    prompt_tokens: int
    completion_tokens: int
    cost_usd: float
    unpriced: int

    def to_json(self) -> dict[str, Any]:
        return {
            "date": self.day.isoformat(), "username": self.username, "model": self.model,
            "requests": self.requests, "errors": self.errors, "prompt_tokens": self.prompt_tokens,
            "completion_tokens": self.completion_tokens,
            "total_tokens": self.prompt_tokens + self.completion_tokens,
            "cost_usd": round(self.cost_usd, 9), "unpriced_requests": self.unpriced,
        }


class UsageStore:
    def __init__(self, db: Database) -> None:
        self.db = db

    async def add(self, batch: Iterable[tuple[UsageKey, UsageDelta]], now: datetime) -> None:
        """Add a batch of deltas and bring each touched token's spend up to date, in one transaction."""
        db = self.db
        items = sorted(batch, key=lambda item: item[0])  # one lock order in every process: no deadlocks
        today = now.date()
        period = {"today": db.day(today), "month": db.day(today.replace(day=1))}

        async def work(tx: Executor) -> None:
            for (token_hash, day, model), d in items:
                await tx.run(ADD, {
                    "hash": token_hash, "day": db.day(day), "model": model, "username": d.username,
                    "requests": d.requests, "errors": d.errors, "prompt": d.prompt_tokens,
                    "completion": d.completion_tokens, "cost": d.cost_usd, "unpriced": d.unpriced,
                })
            for token_hash in sorted({key[0] for key, _ in items}):
                await tx.run(RECOMPUTE_SPEND, {"hash": token_hash, **period})

        await db.transact(work)

    async def usage(self, start: date, end: date, username: str | None = None) -> list[UsageRow]:
        """Every (day, user, model) row from `start` to `end` (UTC days, both included)."""
        db = self.db
        rows = await db.rows(ROWS, {"start": db.day(start), "end": db.day(end), "username": username})
        return [
            UsageRow(_day(db.read_day(r[0])), r[1], r[2], int(r[3]), int(r[4]), int(r[5]), int(r[6]), float(r[7]),
                     int(r[8]))
            for r in rows
        ]


def _day(value: date | None) -> date:
    assert value is not None, "usage_daily.day is NOT NULL"
    return value
