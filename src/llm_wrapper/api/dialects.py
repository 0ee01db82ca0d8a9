"""`POST /v1/messages`, `POST /v1/messages/count_tokens`, `POST /v1/responses` and
`POST /v1/embeddings`: the other APIs, each served by the chat request path through its dialect
(dialects.py).

Like the chat route, they are plain Starlette endpoints. `/v1/messages` answers its errors in
Anthropic's shape (with the same status and headers); the others in OpenAI's, by the app's
handler, as chat does. All but `count_tokens` are served before FastAPI's middleware (hot.py).
"""

from __future__ import annotations

import logging
import time

from fastapi import APIRouter, Request
from starlette.responses import Response

from .. import dialects
from ..bodies import json_object
from ..errors import GatewayError, error_response
from ..gateway import Incoming
from ..redaction import scrub
from ..services import Services
from ..translation import anthropic
from .deps import read_body
from .responses import json_response

log = logging.getLogger(__name__)

router = APIRouter()


def _incoming(request: Request, authorization: str | None) -> Incoming:
    headers = request.headers
    return Incoming(authorization, request.stream(), headers.get("content-length"), time.perf_counter(),
                    request.receive)


def anthropic_authorization(request: Request) -> str | None:
    """The token as Anthropic's SDK sends it (`x-api-key`), else the bearer token (its `auth_token`)."""
    key = request.headers.get("x-api-key")
    return f"Bearer {key}" if key is not None else request.headers.get("authorization")


def anthropic_error(error: GatewayError) -> Response:
    return error_response(error, body=anthropic.error_body(error.status, scrub(error.message)))


async def messages(request: Request) -> Response:
    services: Services = request.app.state.services
    try:
        return await services.gateway.chat(
            _incoming(request, anthropic_authorization(request)), dialects.Messages()
        )
    except GatewayError as error:
        return anthropic_error(error)
    except Exception:
        log.exception("unhandled error on POST /v1/messages")
        return anthropic_error(GatewayError("Internal error in the gateway."))


async def count_tokens(request: Request) -> Response:
    """An estimate of the input tokens; authenticated, not counted as a request."""
    services: Services = request.app.state.services
    try:
        record = await services.auth.identify(anthropic_authorization(request))
        headers = services.auth.headers_for(record)
        try:
            body = json_object(await read_body(request, services.settings.max_body_bytes))
            return json_response({"input_tokens": anthropic.count_tokens(body)}, headers=headers)
        except GatewayError as error:
            error.headers = {**headers, **error.headers}
            raise
    except GatewayError as error:
        return anthropic_error(error)


async def responses(request: Request) -> Response:
    services: Services = request.app.state.services
    dialect = dialects.Responses(services.gateway.router.speaks_responses)
    return await services.gateway.chat(_incoming(request, request.headers.get("authorization")), dialect)


async def embeddings(request: Request) -> Response:
    services: Services = request.app.state.services
    return await services.gateway.chat(_incoming(request, request.headers.get("authorization")), dialects.Embeddings())


HOT = {"/v1/messages": messages, "/v1/responses": responses, "/v1/embeddings": embeddings}  # see hot.py
for _path, _endpoint in {**HOT, "/v1/messages/count_tokens": count_tokens}.items():
    router.add_route(_path, _endpoint, methods=["POST"], include_in_schema=False)
