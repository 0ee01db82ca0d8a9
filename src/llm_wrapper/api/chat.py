"""`POST /v1/chat/completions` and `GET /v1/models`."""

from __future__ import annotations

import time

from fastapi import APIRouter, Request
from starlette.responses import Response

from ..errors import PayloadTooLarge
from ..services import Services
from .deps import CurrentUser, ServicesDep, read_body
from .responses import json_response

router = APIRouter()


async def chat_completions(request: Request) -> Response:
    """The hot path's only route. A plain Starlette endpoint (FastAPI's dependency solving and
    response validation cost more than the rest of the gateway's own work), doing what
    `CurrentGrant` does for the other routes."""
    started = time.perf_counter()
    services: Services = request.app.state.services
    grant = await services.gateway.authorize(request.headers.get("authorization"))
    request.state.grant = grant
    try:
        raw = await read_body(request, services.settings.max_body_bytes)
    except PayloadTooLarge as error:
        services.gateway.refused(grant, error, started)
        raise
    return await services.gateway.chat(raw, grant, started)


router.add_route("/v1/chat/completions", chat_completions, methods=["POST"], include_in_schema=False)


@router.get("/v1/models")
async def list_models(user: CurrentUser, services: ServicesDep) -> Response:
    data = [
        {"id": model, "object": "model", "created": 0, "owned_by": provider.key}
        for model, provider in services.registry.enabled_models()
    ]
    if not any(entry["id"] == "speed" for entry in data):
        # `speed` answers update questions from monitors even when Parallel's chat is not enabled.
        data.append({"id": "speed", "object": "model", "created": 0, "owned_by": "llm-wrapper"})
    return json_response(
        {"object": "list", "data": data}, headers=services.gateway.headers_for(user)
    )
