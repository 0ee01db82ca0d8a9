"""`POST /v1/chat/completions` and `GET /v1/models`."""

from __future__ import annotations

import time
from typing import Any

from fastapi import APIRouter, Request
from starlette.responses import Response

from .. import allowlist
from ..errors import ModelNotFound, clip
from ..gateway import Incoming, ModelListing
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
        Incoming(headers.get("authorization"), request.stream(), headers.get("content-length"), started, request.receive)
    )


HOT = {"/v1/chat/completions": chat_completions}  # served before FastAPI's middleware (hot.py)
for _path, _endpoint in HOT.items():
    router.add_route(_path, _endpoint, methods=["POST"], include_in_schema=False)


def _model_object(model: ModelListing) -> dict[str, Any]:
    return {"id": model.id, "object": "model", "created": 0, "owned_by": model.owned_by}


@router.get("/v1/models")
async def list_models(user: CurrentUser, services: ServicesDep) -> Response:
    data = [_model_object(model) for model in services.gateway.models(allowlist.to_text(user.models))]
    return json_response({"object": "list", "data": data}, headers=services.auth.headers_for(user))


@router.get("/v1/models/{model_id:path}")
async def retrieve_model(model_id: str, user: CurrentUser, services: ServicesDep) -> Response:
    """One model, as the SDKs' `models.retrieve` asks (ids may contain `/`, e.g. Together's)."""
    for model in services.gateway.models(allowlist.to_text(user.models)):
        if model.id == model_id:
            return json_response(_model_object(model), headers=services.auth.headers_for(user))
    raise ModelNotFound(f"The model '{clip(model_id)}' does not exist or is not served here.", param="model")
