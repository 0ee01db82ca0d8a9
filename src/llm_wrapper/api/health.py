"""Liveness and readiness, for load balancers and orchestrators."""

from __future__ import annotations

from fastapi import APIRouter
from starlette.responses import Response

from ..store import StoreUnavailable
from .deps import ServicesDep
from .responses import json_response

router = APIRouter()
metrics_router = APIRouter()


@router.get("/healthz")
async def healthz() -> Response:
    return json_response({"status": "ok"})


@router.get("/readyz")
async def readyz(services: ServicesDep) -> Response:
    migrating = services.extras.get("migrating")
    try:
        await services.store.ping()
        if migrating is not None and not migrating.done():
            raise StoreUnavailable("The database answers; the schema is still being migrated.")
    except StoreUnavailable as exc:
        return json_response({"status": "unavailable", "database": exc.message}, status=503)
    return json_response({"status": "ready", "database": services.store.dialect})


@metrics_router.get("/metrics")
async def metrics() -> Response:
    from ..metrics import render

    body, content_type = render()
    return Response(body, media_type=content_type)
