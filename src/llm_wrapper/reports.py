"""Usage reports: the period asked for, and the rollup rows grouped as `usage --by` shows them.

Shared by `llm-wrapper usage`, `GET /v1/usage` and `GET /v1/admin/usage`.
"""

from __future__ import annotations

from collections.abc import Iterable
from datetime import date, timedelta
from typing import Any

from .store.usage import UsageRow

DEFAULT_DAYS = 30
MAX_DAYS = 3660  # ten years: a bound on what one request may make the database sum
GROUPS = ("day", "model", "user")
SUMS = ("requests", "errors", "prompt_tokens", "completion_tokens", "total_tokens", "cost_usd")
# The fields a row keeps under each grouping (the others are summed over).
KEYS = {None: ("date", "username", "model"), "day": ("date",), "model": ("model",), "user": ("username",)}


def period(start: str | None, end: str | None, today: date) -> tuple[date, date]:
    """The UTC days from `start` to `end` (YYYY-MM-DD, both included); by default the last
    30 days, today included. ValueError with a readable message for a bad or too long period."""
    last = _day(end, "end") if end else today
    first = _day(start, "start") if start else last - timedelta(days=DEFAULT_DAYS - 1)
    if first > last:
        raise ValueError(f"the start {first} is after the end {last}")
    if (last - first).days >= MAX_DAYS:
        raise ValueError(f"the period is longer than {MAX_DAYS} days")
    return first, last


def _day(text: str, name: str) -> date:
    try:
        if len(text) != 10:
            raise ValueError
        return date.fromisoformat(text)
    except ValueError:
        raise ValueError(f"{name} must be a date as YYYY-MM-DD, not {text[:40]!r}") from None


def grouped(rows: Iterable[UsageRow], by: str | None = None) -> list[dict[str, Any]]:
    """Rows as JSON objects: one per day x user x model, or summed per day, model or user."""
    keys = KEYS[by]
    out: dict[tuple[Any, ...], dict[str, Any]] = {}
    for row in rows:
        data = row.to_json()
        key = tuple(data[k] for k in keys)
        into = out.get(key)
        if into is None:
            out[key] = {k: data[k] for k in (*keys, *SUMS, "unpriced_requests")}
            continue
        for name in (*SUMS, "unpriced_requests"):
            into[name] += data[name]
    result = sorted(out.values(), key=lambda r: tuple(r[k] for k in keys))
    for summed in result:
        summed["cost_usd"] = round(summed["cost_usd"], 9)
    return result
