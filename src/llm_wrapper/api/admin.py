"""The admin API under `/v1/admin`: tokens over HTTP, for operators with `LLM_WRAPPER_ADMIN_KEY`.

Off (every path 404) unless the key is set. The key is compared in constant time.

    GET    /v1/admin/tokens         every token, as `tokens list --json`
    POST   /v1/admin/tokens         {"username", "expiry", "rate_limit"} -> 201 with the token (shown once)
    PATCH  /v1/admin/tokens/{id}    any of {"rate_limit", "expiry", "budget_usd", "budget_period", "models"}
    DELETE /v1/admin/tokens/{id}    by the id `tokens list` shows
    GET    /v1/admin/usage          ?start=&end=&username= : everyone's usage rows (see `reports.py`)
    GET    /v1/admin/providers      each deployment's last hour in this process (see `health.py`)
    GET    /v1/admin/monitors       every monitor, as `monitors list --json`, with `events_waiting`
"""

from __future__ import annotations

import hmac
from datetime import date
from typing import Annotated

from fastapi import APIRouter, Depends, Request
from starlette.responses import Response

from ..bodies import json_object
from ..errors import AuthenticationFailed, InvalidRequest, NotFound, clip
from ..reports import grouped, period
from ..services import Services
from ..store.database import check_text
from ..tokens import TokenInputError, TokenRecord, apply_changes, bearer_token, issue_token
from .deps import ServicesDep, read_body
from .responses import json_response

router = APIRouter(prefix="/v1/admin")


async def require_admin(request: Request) -> None:
    services: Services = request.app.state.services
    key = services.settings.llm_wrapper_admin_key
    if key is None or not key.get_secret_value():
        raise NotFound(f"No route for {request.method} {request.url.path}.")
    given = bearer_token(request.headers.get("authorization"))
    if not hmac.compare_digest(given.encode(), key.get_secret_value().encode()):
        raise AuthenticationFailed("Invalid admin key.")


Admin = Annotated[None, Depends(require_admin)]


@router.get("/tokens")
async def list_tokens(_: Admin, services: ServicesDep) -> Response:
    now = services.auth.clock()
    return json_response({"object": "list", "data": [r.to_json(now) for r in await services.store.list_tokens()]})


@router.post("/tokens")
async def add_token(_: Admin, request: Request, services: ServicesDep) -> Response:
    body = json_object(await read_body(request, services.settings.max_body_bytes))
    try:
        issued = await issue_token(
            services.store,
            username=body.get("username", ""),
            expiry=body.get("expiry", ""),
            rate_limit=body.get("rate_limit"),
            now=services.auth.clock(),
            budget_usd=body.get("budget_usd"),
            budget_period=body.get("budget_period"),
            models=body.get("models"),
        )
    except TokenInputError as exc:
        raise InvalidRequest(f"'{exc.field}' {exc}", param=exc.field) from None
    return json_response(issued.to_json(), status=201)


@router.patch("/tokens/{token_id}")
async def update_token(token_id: str, _: Admin, request: Request, services: ServicesDep) -> Response:
    """Change a token in place (its secret, counts and usage stay); answers its listing."""
    body = json_object(await read_body(request, services.settings.max_body_bytes))
    record = await _find(services, token_id)
    try:
        changed = apply_changes(record, body)
    except TokenInputError as exc:
        raise InvalidRequest(f"'{exc.field}' {exc}", param=exc.field) from None
    now = services.auth.clock()
    updated = await services.store.update_token(changed, now)
    if updated is None:
        raise NotFound(f"No token with id {clip(token_id)!r}.", param="token_id")
    return json_response(updated.to_json(now))


@router.get("/usage")
async def usage(
    _: Admin, services: ServicesDep, start: str | None = None, end: str | None = None, username: str | None = None
) -> Response:
    first, last = usage_period(start, end, services.auth.clock().date())
    rows = await services.store.usage.usage(first, last, check_text(username, "username") if username else None)
    return json_response({"object": "list", "data": grouped(rows)})


@router.get("/providers")
async def providers(_: Admin, services: ServicesDep) -> Response:
    return json_response({"object": "list", "data": services.gateway.router.health_rows()})


@router.get("/monitors")
async def monitors(_: Admin, services: ServicesDep) -> Response:
    """Two statements whatever the number of monitors: the listing and the waiting counts."""
    listed = await services.monitors.list()
    waiting = await services.store.count_waiting()
    return json_response({
        "object": "list",
        "data": [{**m.to_json(), "events_waiting": waiting.get(m.monitor_id, 0)} for m in listed],
    })


async def _find(services: Services, token_id: str) -> TokenRecord:
    for record in await services.store.list_tokens():
        if record.id == token_id:
            return record
    raise NotFound(f"No token with id {clip(token_id)!r}.", param="token_id")


def usage_period(start: str | None, end: str | None, today: date) -> tuple[date, date]:
    """`reports.period`, a bad value being a 400 naming it."""
    try:
        return period(start, end, today)
    except ValueError as exc:
        raise InvalidRequest(f"Invalid period: {exc}.", param="start" if "start" in str(exc) else "end") from None


@router.delete("/tokens/{token_id}")
async def delete_token(token_id: str, _: Admin, services: ServicesDep) -> Response:
    for record in await services.store.list_tokens():
        if record.id == token_id and await services.store.delete_token(record.token_hash):
            return json_response({"id": token_id, "username": record.username, "deleted": True})
    raise NotFound(f"No token with id {token_id!r}.", param="token_id")

