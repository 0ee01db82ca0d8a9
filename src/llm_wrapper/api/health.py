"""Liveness and readiness, for load balancers and orchestrators."""

from __future__ import annotations

from fastapi import APIRouter
from starlette.responses import Response
from .responses import json_response

from ..store import StoreUnavailable
from .deps import ServicesDep

router = APIRouter()


@router.get("/healthz")
async def healthz() -> Response:
    return json_response({"status": "ok"})


@router.get("/readyz")
async def readyz(services: ServicesDep) -> Response:
    try:
        await services.store.ping()
    except StoreUnavailable as exc:
        return json_response({"status": "unavailable", "database": exc.message}, status=503)
    return json_response({"status": "ready", "database": services.store.dialect})
