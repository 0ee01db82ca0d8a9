"""`POST /v1/chat/completions` and `GET /v1/models`."""

from __future__ import annotations

import time

from fastapi import APIRouter, Request
from starlette.responses import Response

from ..gateway import Incoming
from ..services import Services
from .deps import CurrentUser, ServicesDep
from .responses import json_response

router = APIRouter()


async def chat_completions(request: Request) -> Response:
    """The hot path's only route: a plain Starlette endpoint (FastAPI's dependency solving and
    response validation cost more than the rest of the gateway's own work)."""
    started = time.perf_counter()
    services: Services = request.app.state.services
    headers = request.headers
    return await services.gateway.chat(
        Incoming(headers.get("authorization"), request.stream(), headers.get("content-length"), started)
    )


router.add_route("/v1/chat/completions", chat_completions, methods=["POST"], include_in_schema=False)


@router.get("/v1/models")
async def list_models(user: CurrentUser, services: ServicesDep) -> Response:
    data = [
        {"id": model.id, "object": "model", "created": 0, "owned_by": model.owned_by}
        for model in services.gateway.models()
    ]
    return json_response({"object": "list", "data": data}, headers=services.auth.headers_for(user))
