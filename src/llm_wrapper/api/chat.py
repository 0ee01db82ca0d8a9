"""`POST /v1/chat/completions` and `GET /v1/models`."""

from __future__ import annotations

from fastapi import APIRouter, Request
from starlette.responses import Response

from ..errors import PayloadTooLarge
from .deps import CurrentGrant, CurrentUser, ServicesDep, read_body
from .responses import json_response

router = APIRouter()


@router.post("/v1/chat/completions")
async def chat_completions(request: Request, grant: CurrentGrant, services: ServicesDep) -> Response:
    try:
        raw = await read_body(request, services.settings.max_body_bytes)
    except PayloadTooLarge as error:
        services.gateway.refused(grant, error, request.state.started)
        raise
    return await services.gateway.chat(raw, grant, request.state.started)


@router.get("/v1/models")
async def list_models(user: CurrentUser, services: ServicesDep) -> Response:
    data = [
        {"id": model, "object": "model", "created": 0, "owned_by": provider.key}
        for model, provider in services.registry.enabled_models()
    ]
    return json_response(
        {"object": "list", "data": data}, headers=services.gateway.headers_for(user)
    )
