"""Dependencies shared by the routes: the services, the admitted caller, the request body."""

from __future__ import annotations

import time
from typing import Annotated

from fastapi import Depends, Request

from ..errors import PayloadTooLarge
from ..services import Services
from ..tokens import Grant, TokenRecord


async def get_services(request: Request) -> Services:
    # async on purpose: FastAPI runs a plain `def` dependency in a worker thread, on every request.
    return request.app.state.services


ServicesDep = Annotated[Services, Depends(get_services)]


async def current_grant(request: Request) -> Grant:
    """Authorise and count this request; the grant is kept so every response carries its headers."""
    request.state.started = time.perf_counter()
    services: Services = request.app.state.services
    grant = await services.gateway.authorize(request.headers.get("authorization"))
    request.state.grant = grant
    return grant


CurrentGrant = Annotated[Grant, Depends(current_grant)]


async def current_user(request: Request) -> TokenRecord:
    """Authenticate without counting a request (everything but chat completions)."""
    services: Services = request.app.state.services
    record = await services.gateway.identify(request.headers.get("authorization"))
    request.state.grant = record
    return record


CurrentUser = Annotated[TokenRecord, Depends(current_user)]


async def read_body(request: Request, limit: int) -> bytes:
    """The whole body, refusing (413) anything over `limit` bytes before reading it all."""
    length = request.headers.get("content-length")
    if length is not None and length.isdigit() and int(length) > limit:
        raise PayloadTooLarge(f"The request body is larger than {limit} bytes.")
    chunks: list[bytes] = []
    size = 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > limit:
            raise PayloadTooLarge(f"The request body is larger than {limit} bytes.")
        chunks.append(chunk)
    return b"".join(chunks)
