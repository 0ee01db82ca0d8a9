"""The request path, start to finish, in one place.

    authorise and count (one statement)  ->  parse the body  ->  an answerer
    (the `speed` update answer) or the provider for the model  ->  forward on
    the provider's pooled session  ->  translate the answer or relay the stream
    ->  one analytics line.

Errors are raised as `GatewayError`s; the web layer turns them into responses.
Once a stream has started, a failure becomes a final `data: {"error": …}` event.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from datetime import datetime
from typing import Any

import aiohttp
import orjson
from starlette.responses import Response

from . import metrics
from .analytics import AnalyticsLog
from .bodies import json_object
from .errors import (
    GatewayError,
    InvalidRequest,
    RateLimited,
    UpstreamError,
    UpstreamTimeout,
    UpstreamUnreachable,
    sse_error_event,
    status_type,
)
from .providers import Call, Exchange, Provider, ProviderRegistry
from .sse import DONE, EventStreamResponse, encode
from .store import Store
from .tokens import Grant, TokenRecord, admit, bearer_token, identify, ratelimit_headers, utc_now

log = logging.getLogger(__name__)

OVERHEAD_HEADER = "x-llm-wrapper-overhead-ms"

# An answerer may take a request instead of a provider (None: not mine).
Answerer = Callable[[dict[str, Any], Grant, Exchange], Awaitable[Response | None]]


class Gateway:
    def __init__(
        self,
        *,
        registry: ProviderRegistry,
        store: Store,
        analytics: AnalyticsLog,
        clock: Callable[[], datetime] = utc_now,
    ) -> None:
        self.registry = registry
        self.store = store
        self.analytics = analytics
        self.clock = clock
        self.answerers: list[Answerer] = []

    async def authorize(self, authorization: str | None) -> Grant:
        try:
            return await admit(self.store, bearer_token(authorization), self.clock())
        except RateLimited:
            metrics.RATE_LIMITED.inc()
            raise

    async def identify(self, authorization: str | None) -> TokenRecord:
        return await identify(self.store, bearer_token(authorization), self.clock())

    def headers_for(self, grant: Grant | TokenRecord) -> dict[str, str]:
        return ratelimit_headers(grant, self.clock())

    async def chat(self, raw: bytes, grant: Grant, started: float) -> Response:
        """Answer one chat completion request for an admitted caller."""
        entry: dict[str, Any] = {"user": grant.username, "model": None, "provider": None, "stream": False}
        exchange: Exchange | None = None
        try:
            body = parse_chat_body(raw)
            model: str = body["model"]
            stream = body.get("stream") is True
            options = body.get("stream_options")
            exchange = Exchange(
                model=model,
                stream=stream,
                include_usage=stream and isinstance(options, dict) and options.get("include_usage") is True,
            )
            entry.update(model=model, stream=stream)
            for answerer in self.answerers:
                answered = await answerer(body, grant, exchange)
                if answered is not None:
                    entry["provider"] = "local"
                    self._log(entry, answered.status_code, started, exchange)
                    return answered
            provider = self.registry.resolve(model)
            entry["provider"] = provider.key
            call = provider.prepare(body, exchange)
            sent = time.perf_counter()
            upstream = await open_upstream(provider, call)
            # A provider may answer a stream request with one JSON body: it is re-sent as a stream.
            whole = not stream or upstream.content_type == "application/json"
            if not whole:
                headers = {**self.headers_for(grant), OVERHEAD_HEADER: _ms(sent - started)}
                return EventStreamResponse(
                    self._relay(provider, call, upstream, exchange, entry, started),
                    headers={**headers, "Cache-Control": "no-cache", "X-Accel-Buffering": "no"},
                )
            answer = await read_answer(provider, upstream)
            back = time.perf_counter()
            try:
                out = provider.translate_completion(call, answer, exchange)
                if stream:
                    out = completion_as_stream(orjson.loads(out), exchange)
            except ValueError as exc:
                raise UpstreamUnreachable(f"{provider.name} answered garbage: {exc}.", code="bad_upstream_response") from None
            headers = self.headers_for(grant)
            headers[OVERHEAD_HEADER] = _ms(sent - started + time.perf_counter() - back)
            self._log(entry, 200, started, exchange)
            return Response(out, media_type="text/event-stream" if stream else "application/json", headers=headers)
        except GatewayError as error:
            self._log(entry, error.status, started, exchange)
            raise

    def refused(self, grant: Grant, error: GatewayError, started: float) -> None:
        """Record an admitted request refused before its body could be read (413)."""
        entry = {"user": grant.username, "model": None, "provider": None, "stream": False}
        self._log(entry, error.status, started, None)

    async def _relay(
        self,
        provider: Provider,
        call: Call,
        upstream: aiohttp.ClientResponse,
        exchange: Exchange,
        entry: dict[str, Any],
        started: float,
    ) -> AsyncIterator[bytes]:
        translator = provider.stream_translator(call, exchange)
        status, first, clean = 200, None, False
        metrics.STREAMS_IN_FLIGHT.inc()
        try:
            async for piece in upstream.content.iter_any():
                out = translator.feed(piece)
                if out:
                    if first is None:
                        first = time.perf_counter()
                    yield out
            tail = translator.end()
            clean = True
            if tail:
                yield tail
        except GatewayError as error:
            status = error.status
            yield sse_error_event(error)
        except TimeoutError:
            status = 504
            yield sse_error_event(UpstreamTimeout(f"{provider.name} stopped sending before the answer was complete."))
        except aiohttp.ClientError as exc:
            status = 502
            yield sse_error_event(
                UpstreamUnreachable(f"{provider.name}: the stream broke off ({type(exc).__name__}).")
            )
        except ValueError as exc:
            status = 502
            yield sse_error_event(UpstreamUnreachable(f"{provider.name} sent garbage: {exc}."))
        except (asyncio.CancelledError, GeneratorExit):
            status = 499  # the client went away; closing the upstream below stops the provider
            raise
        except Exception:
            # Headers are sent: the only way left to say so is an error event.
            log.exception("stream from %s failed", provider.key)
            status = 500
            yield sse_error_event(GatewayError("Internal error in the gateway while streaming."))
        finally:
            metrics.STREAMS_IN_FLIGHT.dec()
            if clean:
                upstream.release()
            else:
                upstream.close()
            self._log(entry, status, started, exchange, first)

    def _log(
        self,
        entry: dict[str, Any],
        status: int,
        started: float,
        exchange: Exchange | None,
        first: float | None = None,
    ) -> None:
        now = time.perf_counter()
        record = {**entry, "status": status, "latency_ms": round((now - started) * 1000, 2)}
        if first is not None:
            record["ttfb_ms"] = round((first - started) * 1000, 2)
        if exchange is not None and exchange.usage:
            record["usage"] = exchange.usage
        self.analytics.record(**record)
        provider = entry["provider"] or "none"
        # Only configured model names become labels: a client's typo must not grow the series.
        model = entry["model"] if entry["provider"] else "unknown"
        metrics.REQUESTS.labels(model, provider, str(status)).inc()
        metrics.LATENCY.labels(provider).observe(now - started)
        if first is not None:
            metrics.TTFB.labels(provider).observe(first - started)
        if status >= 400 and entry["provider"] not in (None, "local"):
            metrics.UPSTREAM_ERRORS.labels(provider, metrics.error_kind(status)).inc()


def parse_chat_body(raw: bytes) -> dict[str, Any]:
    """The request body as a dict with a string `model` and a list of `messages`; else 400."""
    body = json_object(raw)
    model = body.get("model")
    if not isinstance(model, str) or not model:
        raise InvalidRequest("'model' is required and must be a string.", param="model")
    messages = body.get("messages")
    if not isinstance(messages, list) or not messages:
        raise InvalidRequest("'messages' is required and must be a non-empty array.", param="messages")
    return body


async def open_upstream(provider: Provider, call: Call) -> aiohttp.ClientResponse:
    """POST the call; returns a 2xx response with its body unread, or raises the mapped error."""
    assert provider.session is not None, "providers are started with the app"
    try:
        response = await provider.session.post(call.url, data=call.payload)
    except TimeoutError:
        raise UpstreamTimeout(f"{provider.name} did not answer in time.") from None
    except aiohttp.ClientError as exc:
        raise UpstreamUnreachable(f"{provider.name} is unreachable ({type(exc).__name__}).") from None
    if response.status < 400:
        return response
    try:
        body = await response.read()
    except (TimeoutError, aiohttp.ClientError):
        body = b""
    finally:
        response.release()
    error = upstream_error(provider, response.status, body)
    if "Retry-After" in response.headers:
        error.headers["Retry-After"] = response.headers["Retry-After"]
    raise error


async def read_answer(provider: Provider, upstream: aiohttp.ClientResponse) -> bytes:
    """The whole body of a 2xx answer; raises the mapped error if it does not arrive in time or whole."""
    try:
        return await upstream.read()
    except TimeoutError:
        raise UpstreamTimeout(f"{provider.name} did not answer in time.") from None
    except aiohttp.ClientError as exc:
        raise UpstreamUnreachable(f"{provider.name}: the answer broke off ({type(exc).__name__}).") from None
    finally:
        upstream.release()


def completion_as_stream(data: dict[str, Any], exchange: Exchange) -> bytes:
    """A whole `chat.completion` as the stream the client asked for: one chunk per choice, usage, [DONE]."""
    shell = {
        "id": data.get("id") or exchange.id,
        "object": "chat.completion.chunk",
        "created": data.get("created") or exchange.created,
        "model": data.get("model") or exchange.model,
    }
    extras = {k: v for k, v in data.items() if k not in shell and k not in ("choices", "usage")}
    events: list[bytes] = []
    for choice in data.get("choices") or ():
        message = choice.get("message") or {}
        delta = {k: v for k, v in message.items() if v is not None}
        finish = choice.get("finish_reason") or "stop"
        chunk = {**shell, "choices": [{"index": choice.get("index", 0), "delta": delta, "finish_reason": finish}]}
        events.append(encode({**chunk, **extras} if not events else chunk))  # extras once, as streams carry them
    if exchange.include_usage and data.get("usage"):
        events.append(encode({**shell, "choices": [], "usage": data["usage"]}))
    return b"".join(events) + DONE


def upstream_error(provider: Provider, status: int, body: bytes) -> UpstreamError:
    """The provider's own error, its status kept and its message found in any of the usual shapes."""
    message, code = None, None
    try:
        data = orjson.loads(body)
    except orjson.JSONDecodeError:
        data = None
    if isinstance(data, dict):
        error = data.get("error")
        if isinstance(error, dict):
            message, code = error.get("message"), error.get("code")
        elif isinstance(error, str):
            message = error
        detail = data.get("detail")
        if message is None and isinstance(detail, str):
            message = detail
        elif message is None and isinstance(detail, list) and detail and isinstance(detail[0], dict):
            message = "; ".join(str(d.get("msg", d)) for d in detail)
        message = message or data.get("message")
    if not message:
        text = body.decode("utf-8", "replace").strip()
        message = text[:500] if text else f"HTTP {status}"
    error = UpstreamError(
        f"{provider.name}: {message}", status=status, code=str(code) if code is not None else None
    )
    error.type = status_type(status)
    return error


def _ms(seconds: float) -> str:
    return f"{seconds * 1000:.2f}"
