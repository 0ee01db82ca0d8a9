"""`POST/GET /v1/monitors` and `DELETE /v1/monitors/{monitor_id}`: the token's user and their monitors.

Authenticated without counting a request. Another user's monitor is 404.
"""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Request
from starlette.responses import Response

from ..bodies import json_object
from ..errors import InvalidRequest
from .deps import CurrentUser, ServicesDep, read_body
from .responses import json_response

router = APIRouter()


def _create_body(raw: bytes) -> dict[str, Any]:
    body = json_object(raw or b"{}")
    for name in ("query", "cadence", "frequency", "webhook_url"):
        if body.get(name) is not None and not isinstance(body[name], str):
            raise InvalidRequest(f"'{name}' must be a string.", param=name)
    if not (body.get("query") or "").strip():
        raise InvalidRequest("'query' is required.", param="query")
    types = body.get("event_types")
    if types is not None and not (isinstance(types, list) and all(isinstance(t, str) for t in types)):
        raise InvalidRequest("'event_types' must be an array of strings.", param="event_types")
    return body


@router.post("/v1/monitors", status_code=201)
async def create_monitor(request: Request, user: CurrentUser, services: ServicesDep) -> Response:
    body = _create_body(await read_body(request, services.settings.max_body_bytes))
    monitor, replaced = await services.monitors.create(
        user.username,
        body["query"],
        body.get("cadence") or body.get("frequency") or "daily",
        webhook_url=body.get("webhook_url"),
        event_types=body.get("event_types"),
    )
    return json_response(
        {**monitor.to_json(), "replaced": replaced}, status=201, headers=services.auth.headers_for(user)
    )


@router.get("/v1/monitors")
async def list_monitors(user: CurrentUser, services: ServicesDep) -> Response:
    monitors = await services.monitors.list(user.username)
    return json_response(
        {"object": "list", "data": [m.to_json() for m in monitors]}, headers=services.auth.headers_for(user)
    )


@router.delete("/v1/monitors/{monitor_id}")
async def deactivate_monitor(monitor_id: str, user: CurrentUser, services: ServicesDep) -> Response:
    monitor = await services.monitors.deactivate(monitor_id, user.username)
    return json_response(monitor.to_json(), headers=services.auth.headers_for(user))
