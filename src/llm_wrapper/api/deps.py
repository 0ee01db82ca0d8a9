"""Dependencies shared by the routes: the services, the identified caller, the request body."""

from __future__ import annotations

from typing import Annotated

from fastapi import Depends, Request

from .. import bodies
from ..services import Services
from ..tokens import TokenRecord


async def get_services(request: Request) -> Services:
    # async on purpose: FastAPI runs a plain `def` dependency in a worker thread, on every request.
    return request.app.state.services


ServicesDep = Annotated[Services, Depends(get_services)]


async def current_user(request: Request) -> TokenRecord:
    """Authenticate without counting a request (everything but chat completions)."""
    services: Services = request.app.state.services
    record = await services.auth.identify(request.headers.get("authorization"))
    request.state.grant = record
    return record


CurrentUser = Annotated[TokenRecord, Depends(current_user)]


async def read_body(request: Request, limit: int) -> bytes:
    """The whole body, refusing (413) anything over `limit` bytes before reading it all."""
    return await bodies.read_body(request.stream(), request.headers.get("content-length"), limit)
