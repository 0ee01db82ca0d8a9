"""The gateway's errors and their one mapping to OpenAI's error JSON.

    GatewayError                    500 server_error
    ├── InvalidRequest              400 invalid_request_error
    ├── AuthenticationFailed        401 authentication_error
    ├── ModelNotAllowed             403 permission_error, code model_not_allowed
    ├── NotFound                    404 invalid_request_error
    │   └── ModelNotFound           404 code model_not_found
    ├── PayloadTooLarge             413 invalid_request_error
    ├── RateLimited                 429 rate_limit_exceeded (Retry-After)
    │   └── BudgetExceeded          429 code budget_exceeded (Retry-After: the period's end)
    ├── UpstreamError               the provider's own status, message, type and param
    ├── UpstreamUnreachable         502 bad_gateway
    │   └── ProviderAuthFailed      502 code provider_auth_failed (the provider refused our key)
    ├── ServiceUnavailable          503 service_unavailable (provider disabled, store down)
    └── UpstreamTimeout             504 timeout

Handlers raise these; `error_response` and `sse_error_event` are the only places
that write them to the wire, and both scrub every configured secret from the
message (providers echo keys in their errors).

An error whose `final` is true cannot be cured by retrying soon (a daily limit,
an expired token, a disabled provider): it carries `x-should-retry: false`,
which the official SDKs obey instead of sleeping on `Retry-After` and retrying.
"""

from __future__ import annotations

from typing import Any

import orjson
from starlette.responses import Response

from .redaction import scrub

NO_RETRY = {"x-should-retry": "false"}


class GatewayError(Exception):
    status: int = 500
    type: str = "server_error"
    code: str | None = None
    final: bool = False  # retrying soon cannot help: say so with `x-should-retry: false`

    def __init__(
        self,
        message: str,
        *,
        param: str | None = None,
        code: str | None = None,
        status: int | None = None,
        type: str | None = None,
        headers: dict[str, str] | None = None,
        final: bool | None = None,
    ) -> None:
        super().__init__(message)
        self.message = message
        self.param = param
        if code is not None:
            self.code = code
        if status is not None:
            self.status = status
        if type is not None:
            self.type = type
        if final is not None:
            self.final = final
        self.headers = headers or {}

    def body(self) -> dict[str, Any]:
        return {
            "error": {
                "message": scrub(self.message),
                "type": self.type,
                "param": self.param,
                "code": self.code,
            }
        }


class InvalidRequest(GatewayError):
    status, type = 400, "invalid_request_error"


class AuthenticationFailed(GatewayError):
    status, type, code, final = 401, "authentication_error", "invalid_api_key", True


class NotFound(GatewayError):
    status, type, code = 404, "invalid_request_error", "not_found"


class ModelNotFound(NotFound):
    code = "model_not_found"


class PayloadTooLarge(GatewayError):
    status, type, code = 413, "invalid_request_error", "request_too_large"


class RateLimited(GatewayError):
    """The caller's own limit (daily requests, budget): it ends with the period, not in seconds."""

    status, type, code, final = 429, "rate_limit_exceeded", "rate_limit_exceeded", True


class BudgetExceeded(RateLimited):
    """The token spent its budget for the period; Retry-After says when the period ends."""

    code = "budget_exceeded"


class ModelNotAllowed(GatewayError):
    """The token's allow-list does not hold the model."""

    status, type, code, final = 403, "permission_error", "model_not_allowed", True


class UpstreamError(GatewayError):
    """A provider answered with an error status; its status and message are passed on.

    Its `type` is the one OpenAI pairs with the status, unless the provider named its own.
    """

    type = "upstream_error"

    def __init__(self, message: str, *, status: int, type: str | None = None, **kwargs: Any) -> None:
        super().__init__(message, status=status, type=type or status_type(status), **kwargs)

    @classmethod
    def from_body(cls, provider: str, status: int, body: Any) -> UpstreamError:
        """The provider's error from its body in any of the usual shapes (bytes, text or parsed JSON).

        Seen: OpenAI's `{"error": {"message", "type", "param", "code"}}`, a bare
        `{"error": "…"}`, xAI's flat `{"code", "error"}` and `{"type": "error", …}`,
        FastAPI's `{"detail": "…" | [{"msg"}]}`, `{"message": "…"}`, and plain text.
        """
        data = body
        if isinstance(body, (bytes, bytearray, memoryview)):
            try:
                data = orjson.loads(body)
            except orjson.JSONDecodeError:
                data = bytes(body).decode("utf-8", "replace")
        message, code, kind, param = None, None, None, None
        if isinstance(data, dict):
            error = data.get("error")
            source = error if isinstance(error, dict) else data
            message = error if isinstance(error, str) else source.get("message")
            code, kind, param = source.get("code"), source.get("type"), source.get("param")
            detail = data.get("detail")
            if not message and isinstance(detail, str):
                message = detail
            elif not message and isinstance(detail, list) and detail and isinstance(detail[0], dict):
                message = "; ".join(str(d.get("msg", d)) for d in detail)
            message = message or data.get("message")
            if not isinstance(message, str):
                message = None
        elif isinstance(data, str):
            message = data.strip()[:500]
        if not message:
            message = f"HTTP {status}"
        return cls(
            f"{provider}: {message}",
            status=status,
            code=str(code) if code is not None else None,
            # A provider's own type is kept, but not the generic ones that say only "an error".
            type=kind if isinstance(kind, str) and kind and kind != "error" else None,
            param=param if isinstance(param, str) else None,
        )


class UpstreamUnreachable(GatewayError):
    status, type, code = 502, "bad_gateway", "upstream_unreachable"


class ProviderAuthFailed(UpstreamUnreachable):
    """The provider refused the gateway's own key (its 401/403): our misconfiguration, not the caller's."""

    code, final = "provider_auth_failed", True


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


def clip(text: str, limit: int = 100) -> str:
    """A client-supplied string shortened for a message or a log line."""
    return text if len(text) <= limit else f"{text[:limit]}…(+{len(text) - limit} chars)"


def status_type(status: int) -> str:
    """The OpenAI error `type` conventionally paired with an HTTP status."""
    return _STATUS_TYPES.get(status, "server_error" if status >= 500 else "invalid_request_error")


def error_response(
    error: GatewayError, headers: dict[str, str] | None = None, body: dict[str, Any] | None = None
) -> Response:
    """The error's response: OpenAI's JSON, or `body` (another API's shape of it), with its headers."""
    merged = {**(headers or {}), **error.headers}
    if error.final:
        merged.update(NO_RETRY)
    return Response(
        orjson.dumps(error.body() if body is None else body),
        status_code=error.status,
        media_type="application/json",
        headers=merged,
    )


def sse_error_event(error: GatewayError) -> bytes:
    """The event that ends a stream which failed after its headers were sent (the SDK raises on it)."""
    return b"data: " + orjson.dumps(error.body()) + b"\n\n"
