"""`GET /v1/me` and `GET /v1/usage`: the caller's own account and usage, read without counting a request."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from fastapi import APIRouter
from starlette.responses import Response

from ..reports import grouped
from ..services import Services
from ..tokens import TokenRecord, format_time
from .admin import usage_period
from .deps import CurrentUser, ServicesDep
from .responses import json_response

router = APIRouter()

MONITOR_FIELDS = ("monitor_id", "username", "query", "frequency", "created_at", "deactivated_at", "active")


@router.get("/v1/me")
async def me(user: CurrentUser, services: ServicesDep) -> Response:
    return json_response(await account(user, services), headers=services.auth.headers_for(user))


async def account(user: TokenRecord, services: Services) -> dict[str, Any]:
    """The account as `/v1/me` reports it; times are UTC 'YYYY-MM-DD HH:MM:SS'."""
    now = services.auth.clock()
    used = user.requests_today(now)
    monitor = await services.monitors.active_monitor(user.username)
    waiting = await services.monitors.waiting_updates(user.username)
    return {
        "object": "user",
        "username": user.username,
        "expiry": format_time(user.expiry) if user.expiry else None,
        "expired": user.expired(now),
        "rate_limit": user.rate_limit,
        "requests_today": used,
        "remaining_today": max(0, user.rate_limit - used),
        "lifetime_requests": user.lifetime_requests,
        "active_monitor": monitor_json(monitor) if monitor is not None else None,
        "waiting_updates": waiting,
        "budget_usd": user.budget_usd,
        "budget_period": user.budget_period,
        "spent_usd": round(user.spent(now), 9),
        "models": user.models,
    }


@router.get("/v1/usage")
async def usage(user: CurrentUser, services: ServicesDep, start: str | None = None, end: str | None = None) -> Response:
    """The caller's own usage rows (every token of the username), not counted as a request."""
    first, last = usage_period(start, end, services.auth.clock().date())
    rows = grouped(await services.store.usage.usage(first, last, user.username))
    for row in rows:
        del row["username"]
    return json_response({"object": "list", "data": rows}, headers=services.auth.headers_for(user))


def monitor_json(monitor: Any) -> dict[str, Any]:
    """A monitor as `/v1/monitors` shows it (its `to_json()`), else its public fields, times in ISO 8601."""
    if callable(getattr(monitor, "to_json", None)):
        return monitor.to_json()
    out = {name: getattr(monitor, name, None) for name in MONITOR_FIELDS}
    for name, value in out.items():
        if isinstance(value, datetime):
            out[name] = value.isoformat().replace("+00:00", "Z")
    return out
