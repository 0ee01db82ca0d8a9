"""The hot routes: the API calls every client makes, served straight from the ASGI call.

Every other route goes through FastAPI's middleware, route matching and exception
handlers. The POST routes of the chat request path (chat, embeddings, Responses,
Messages) are found in one dict lookup instead, and their errors are mapped here
the way the app's handlers would map them. The same endpoints stay registered as
ordinary routes too (`HOT` in their modules), so another method is answered 405 as before.
docs/benchmarks.md has what this saves per request.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable
from typing import Any

from fastapi import FastAPI
from starlette.requests import ClientDisconnect, Request
from starlette.responses import Response
from starlette.types import Receive, Scope, Send

from ..errors import GatewayError, error_response

log = logging.getLogger(__name__)

Endpoint = Callable[[Request], Awaitable[Response]]


class GatewayApp(FastAPI):
    """FastAPI, with `hot_routes` (path -> endpoint, POST only) answered before its middleware."""

    hot_routes: dict[str, Endpoint]

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.hot_routes = {}

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http" and scope["method"] == "POST":
            endpoint = self.hot_routes.get(scope["path"])
            if endpoint is not None:
                scope["app"] = self
                await self._serve(endpoint, scope, receive, send)
                return
        await super().__call__(scope, receive, send)

    async def _serve(self, endpoint: Endpoint, scope: Scope, receive: Receive, send: Send) -> None:
        try:
            response = await endpoint(Request(scope, receive))
        except GatewayError as error:
            response = error_response(error)
        except ClientDisconnect:
            return  # left while sending the body: nothing was counted, nobody to answer
        except Exception:
            log.exception("unhandled error on POST %s", scope["path"])
            response = error_response(GatewayError("Internal error in the gateway."))
        await response(scope, receive, send)
