"""The gateway's errors and their one mapping to OpenAI's error JSON.

    GatewayError                    500 server_error
    ├── InvalidRequest              400 invalid_request_error
    ├── AuthenticationFailed        401 authentication_error
    ├── NotFound                    404 invalid_request_error
    │   └── ModelNotFound           404 code model_not_found
    ├── PayloadTooLarge             413 invalid_request_error
    ├── RateLimited                 429 rate_limit_exceeded (Retry-After)
    ├── UpstreamError               the provider's own status and message
    ├── UpstreamUnreachable         502 bad_gateway
    ├── ServiceUnavailable          503 service_unavailable (provider disabled, store down)
    └── UpstreamTimeout             504 timeout

Handlers raise these; `error_response` is the only place that writes them to the wire.
"""

from __future__ import annotations

from typing import Any

import orjson
from starlette.responses import Response


class GatewayError(Exception):
    status: int = 500
    type: str = "server_error"
    code: str | None = None

    def __init__(
        self,
        message: str,
        *,
        param: str | None = None,
        code: str | None = None,
        status: int | None = None,
        headers: dict[str, str] | None = None,
    ) -> None:
        super().__init__(message)
        self.message = message
        self.param = param
        if code is not None:
            self.code = code
        if status is not None:
            self.status = status
        self.headers = headers or {}

    def body(self) -> dict[str, Any]:
        return {
            "error": {
                "message": self.message,
                "type": self.type,
                "param": self.param,
                "code": self.code,
            }
        }


class InvalidRequest(GatewayError):
    status, type = 400, "invalid_request_error"


class AuthenticationFailed(GatewayError):
    status, type, code = 401, "authentication_error", "invalid_api_key"


class NotFound(GatewayError):
    status, type, code = 404, "invalid_request_error", "not_found"


class ModelNotFound(NotFound):
    code = "model_not_found"


class PayloadTooLarge(GatewayError):
    status, type, code = 413, "invalid_request_error", "request_too_large"


class RateLimited(GatewayError):
    status, type, code = 429, "rate_limit_exceeded", "rate_limit_exceeded"


class UpstreamError(GatewayError):
    """A provider answered with an error status; its status and message are passed on."""

    type = "upstream_error"


class UpstreamUnreachable(GatewayError):
    status, type, code = 502, "bad_gateway", "upstream_unreachable"


class ServiceUnavailable(GatewayError):
    status, type, code = 503, "service_unavailable", "service_unavailable"


class UpstreamTimeout(GatewayError):
    status, type, code = 504, "timeout", "upstream_timeout"


_STATUS_TYPES = {
    400: "invalid_request_error",
    401: "authentication_error",
    403: "permission_error",
    404: "invalid_request_error",
    409: "conflict_error",
    422: "invalid_request_error",
    429: "rate_limit_exceeded",
}


def status_type(status: int) -> str:
    """The OpenAI error `type` conventionally paired with an HTTP status."""
    return _STATUS_TYPES.get(status, "server_error" if status >= 500 else "invalid_request_error")


def error_response(error: GatewayError, headers: dict[str, str] | None = None) -> Response:
    merged = {**(headers or {}), **error.headers}
    return Response(
        orjson.dumps(error.body()),
        status_code=error.status,
        media_type="application/json",
        headers=merged,
    )


def sse_error_event(error: GatewayError) -> bytes:
    """The event that ends a stream which failed after its headers were sent (the SDK raises on it)."""
    return b"data: " + orjson.dumps(error.body()) + b"\n\n"
