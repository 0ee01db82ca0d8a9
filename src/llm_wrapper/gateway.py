"""The request path, start to finish, in one place.

    read the body  ->  authorise and count (one statement)  ->  check the body
    ->  an answerer that serves the model locally (`answerers`, e.g. `speed`
    updates), or the routing plan's deployment (`routing.py`)  ->  forward on
    its provider's pooled session; a retryable failure before the first byte
    goes to the plan's next deployment  ->  translate the answer or relay the
    stream  ->  one analytics line, with every attempt.

The other APIs (`/v1/messages`, `/v1/responses`, `/v1/embeddings`) take the same
path with a `Dialect` (dialects.py): its body becomes a chat body before the
checks, and the finished answer is put back into its shape at the very end
(unless the attempt that answered sent the client's own body to a provider
that speaks its API: `/v1/responses` to OpenAI or xAI, passed through).

Errors are raised as `GatewayError`s carrying the caller's rate-limit headers;
the web layer turns them into responses. Once a stream has started, a failure
becomes a final `data: {"error": …}` event. A client that leaves before its
answer cancels the upstream call (or the wait before a retry) and is logged 499.
"""

from __future__ import annotations

import asyncio
import logging
import secrets
import time
from collections.abc import AsyncIterable, AsyncIterator, Callable, Iterable
from dataclasses import dataclass
from typing import Any, Protocol

import aiohttp
import orjson
from starlette.responses import Response

from . import allowlist, metrics, upstream
from .analytics import AnalyticsLog
from .auth import Authorizer
from .bodies import json_object, read_body
from .dialects import Dialect, spoken
from .disconnect import ClientWatch, Receive
from .errors import (
    GatewayError,
    InvalidRequest,
    ModelNotAllowed,
    PayloadTooLarge,
    UpstreamUnreachable,
    clip,
    sse_error_event,
)
from .exchange import Exchange, StreamTranslator, estimated_usage, json_object_from
from .pricing import PriceTable
from .providers import Call, ProviderRegistry, ResponsesCall
from .routing import Deployment, Router
from .sse import DONE, EventStreamResponse, encode
from .tokens import Grant, bearer_token
from .translation.responses import ResponsesRelay, chat_usage
from .upstream import upstream_failures
from .usage import UsageRecorder

log = logging.getLogger(__name__)

OVERHEAD_HEADER = "x-llm-wrapper-overhead-ms"
REQUEST_ID = "x-request-id"
ATTEMPTS_HEADER = "x-llm-wrapper-attempts"
PROVIDER_HEADER = "x-llm-wrapper-provider"
CLIENT_CLOSED = 499  # nginx's status for a client that closed the connection before the answer

_requests = metrics.children(metrics.REQUESTS)
_latency = metrics.children(metrics.LATENCY)
_ttfb = metrics.children(metrics.TTFB)
_upstream_errors = metrics.children(metrics.UPSTREAM_ERRORS)
_upstream_attempts = metrics.children(metrics.UPSTREAM_ATTEMPTS)


class Answerer(Protocol):
    """Serves some models in the gateway itself, before (or instead of) a provider."""

    models: tuple[str, ...]  # the models it may answer, listed by /v1/models
    title: str  # how the pages name it

    async def __call__(self, body: dict[str, Any], grant: Grant, exchange: Exchange) -> Response | None:
        """The answer, or None: not this request (it then goes to the model's provider)."""


@dataclass(frozen=True, slots=True)
class ModelListing:
    id: str
    owned_by: str  # the provider key, or "llm-wrapper" for a model answered here
    title: str  # the provider's name, or the answerer's title


@dataclass(slots=True)
class Incoming:
    """One request as it arrived: its Authorization header and its body, not yet read."""

    authorization: str | None
    body: AsyncIterable[bytes]
    content_length: str | None
    started: float
    # The ASGI `receive` once the body is read: its next message says when the client leaves.
    receive: Receive | None = None


class Gateway:
    def __init__(
        self,
        *,
        registry: ProviderRegistry,
        router: Router,
        auth: Authorizer,
        analytics: AnalyticsLog,
        answerers: Iterable[Answerer] = (),
        max_body_bytes: int,
        prices: PriceTable | None = None,
        usage: UsageRecorder | None = None,
    ) -> None:
        self.registry = registry
        self.router = router
        self.auth = auth
        self.analytics = analytics
        self.answerers = tuple(answerers)
        self.max_body_bytes = max_body_bytes
        self._answered = {model for answerer in self.answerers for model in answerer.models}
        self.prices = prices or PriceTable({})
        self.usage = usage

    def models(self, allowed: str | None = None) -> list[ModelListing]:
        """Every model a caller can use now: the enabled providers' and the answerers', those of
        them the allow-list `allowed` (as stored on the token; None: all) lets through."""
        listed = {m: ModelListing(m, p.key, p.name) for m, p in self.registry.enabled_models()}
        for answerer in self.answerers:
            for model in answerer.models:
                listed.setdefault(model, ModelListing(model, "llm-wrapper", answerer.title))
        return [m for m in listed.values() if allowlist.allows(allowed, m.id)]

    async def chat(self, incoming: Incoming, dialect: Dialect | None = None) -> Response:
        """Answer one chat completion request (or, with a `dialect`, one in another API's shape,
        translated to chat on the way in and back at the very end: see dialects.py).

        The body is read before the caller is admitted and counted, so an upload
        that never arrives costs nothing; a body over the limit is still counted
        (a refusal of the caller's own making), and a missing or malformed
        Authorization header is refused before any of it is read. However many
        upstream attempts it takes, an admitted request counts once.
        """
        token = bearer_token(incoming.authorization)  # 401 before any of the body is read
        try:
            raw = await read_body(incoming.body, incoming.content_length, self.max_body_bytes)
        except PayloadTooLarge as error:
            grant = await self.auth.admit(token)
            refused = {"user": grant.username, "model": None, "provider": None, "stream": False, "grant": grant}
            self._log(refused, error.status, incoming.started, None)
            error.headers = {**self.auth.headers_for(grant), ATTEMPTS_HEADER: "0", PROVIDER_HEADER: "none", **error.headers}
            raise
        grant = await self.auth.admit(token)
        entry: dict[str, Any] = {
            "user": grant.username, "model": None, "provider": None, "stream": False, "request_id": new_request_id(),
            "attempts": [],
            "grant": grant,
        }
        try:
            with ClientWatch(incoming.receive) as watch:
                try:
                    if dialect is None:
                        return await self._chat(raw, incoming.started, token, grant, entry)
                    entry["api"] = dialect.api
                    answer = await self._chat(raw, incoming.started, token, grant, entry, dialect)
                    return answer if dialect.path or dialect.passed else spoken(answer, dialect)
                except asyncio.CancelledError:
                    if not watch.left:
                        raise
            # The client is gone (the request still counts: leaving is the caller's choice).
            return Response(status_code=CLIENT_CLOSED)
        except GatewayError as error:
            # No answer through no fault of the caller, or a model the token may not use: not counted.
            if error.status >= 500 or isinstance(error, ModelNotAllowed):
                grant = await self.auth.give_back(token, grant)
            error.headers = {
                **self.auth.headers_for(grant), REQUEST_ID: str(entry["request_id"]),
                ATTEMPTS_HEADER: str(len(entry["attempts"])), PROVIDER_HEADER: entry["provider"] or "none",
                **error.headers,
            }
            raise
        except Exception:
            await self.auth.give_back(token, grant)
            raise

    async def _chat(
        self, raw: bytes, started: float, token: str, grant: Grant, entry: dict[str, Any],
        dialect: Dialect | None = None,
    ) -> Response:
        exchange: Exchange | None = None
        try:
            if dialect is None:
                body = parse_chat_body(raw)
            else:
                body = dialect.request(json_object(raw))
                if dialect.path is None:
                    body = checked_chat_body(body)
            model: str = body["model"]
            if grant.models is not None and not allowlist.allows(grant.models, model):
                entry["grant"] = None  # not counted: given back, and no usage recorded
                raise ModelNotAllowed(f"This token may not use the model '{clip(model)}'.", param="model")
            stream = body.get("stream") is True
            options = body.get("stream_options")
            exchange = Exchange(
                model=model,
                stream=stream,
                include_usage=stream and isinstance(options, dict) and options.get("include_usage") is True,
            )
            exchange.prompt_chars = len(raw)  # for an estimate if no usage comes back; adapters may refine it
            entry.update(model=model, stream=stream)
            if model in self._answered and (dialect is None or dialect.path is None):
                for answerer in self.answerers:
                    answered = await answerer(body, grant, exchange)
                    if answered is not None:
                        entry["provider"] = "local"
                        answered.headers.update(self.auth.headers_for(grant))
                        answered.headers[REQUEST_ID] = entry["request_id"]
                        answered.headers[ATTEMPTS_HEADER] = "0"
                        answered.headers[PROVIDER_HEADER] = "local"
                        self._log(entry, answered.status_code, started, exchange)
                        return answered
            plan = self.router.plan(model)
            deployment = plan.deployment
            exchange.renamed = deployment.renamed
            while True:
                try:
                    return await self._forward(deployment, body, exchange, started, grant, entry, token, dialect)
                except GatewayError as error:
                    wait = plan.next(error)
                    if wait is None:
                        raise
                if wait:
                    await asyncio.sleep(wait)  # cancelled with the request when the client leaves
                deployment = plan.deployment
                exchange = exchange.again(deployment.model, deployment.renamed)
        except GatewayError as error:
            self._log(entry, error.status, started, exchange)
            raise
        except asyncio.CancelledError:
            self._log(entry, CLIENT_CLOSED, started, exchange)
            raise

    async def _forward(
        self,
        deployment: Deployment,
        body: dict[str, Any],
        exchange: Exchange,
        started: float,
        grant: Grant,
        entry: dict[str, Any],
        token: str,
        dialect: Dialect | None = None,
    ) -> Response:
        """One upstream attempt: the client's response, or the attempt's error (recorded in `entry`)."""
        provider = deployment.provider
        entry["provider"] = provider.key
        if body["model"] != deployment.upstream_model:  # renamed (`model_map`), or a fallback model
            body = {**body, "model": deployment.upstream_model}
        path = dialect.path if dialect is not None else None
        if dialect is None:
            call = provider.prepare(body, exchange)
        elif path is not None:
            call = Call(provider.url(path), orjson.dumps(body))
        else:  # the client's own body to a provider that speaks its API, else the chat body
            call = dialect.native_call(provider, deployment.upstream_model, exchange) or provider.prepare(body, exchange)
        native = isinstance(call, ResponsesCall)  # a Responses answer: passed on as it is
        sent = time.perf_counter()
        assert provider.session is not None, "providers are started with the app"
        deployment.in_flight += 1
        try:
            response = await upstream.post(
                provider.session, provider.name, call.url, call.payload, key_env=provider.config.api_key_env
            )
            # The provider's own request id when it sends one (what its support asks for), else ours.
            entry["request_id"] = response.headers.get(REQUEST_ID) or entry["request_id"]
            # A provider may answer a stream request with one JSON body: it is re-sent as a stream.
            whole = not exchange.stream or (not native and response.content_type == "application/json")
            if not whole:
                first = await upstream.first_bytes(provider.name, response)  # failing here may still fail over
                _attempted(entry, deployment, 200, sent)
                headers = {
                    **self.auth.headers_for(grant), OVERHEAD_HEADER: _ms(sent - started),
                    REQUEST_ID: entry["request_id"], ATTEMPTS_HEADER: str(len(entry["attempts"])),
                    PROVIDER_HEADER: provider.key, **exchange.headers,
                }
                return EventStreamResponse(
                    self._relay(deployment, call, response, first, exchange, entry, started, (token, grant)),
                    headers={**headers, "Cache-Control": "no-cache", "X-Accel-Buffering": "no"},
                )
            answer = await upstream.read_whole(provider.name, response)
        except GatewayError as error:
            _attempted(entry, deployment, error.status, sent)
            raise
        except asyncio.CancelledError:
            _attempted(entry, deployment, CLIENT_CLOSED, sent)
            raise
        finally:
            deployment.in_flight -= 1
        _attempted(entry, deployment, 200, sent)
        back = time.perf_counter()
        try:
            if path is None and not native:
                out = provider.translate_completion(call, answer, exchange)
            else:
                out = passed_on(answer, exchange, chat_usage if native else None)
            if exchange.stream:
                out = completion_as_stream(orjson.loads(out), exchange)
        except ValueError as exc:
            raise UpstreamUnreachable(
                f"{provider.name} answered garbage: {exc}.", code="bad_upstream_response", final=True
            ) from None
        headers = self.auth.headers_for(grant)
        headers[OVERHEAD_HEADER] = _ms(sent - started + time.perf_counter() - back)
        headers[REQUEST_ID] = entry["request_id"]
        headers[ATTEMPTS_HEADER] = str(len(entry["attempts"]))
        headers[PROVIDER_HEADER] = provider.key
        if exchange.headers:
            headers.update(exchange.headers)
        self._log(entry, 200, started, exchange)
        return Response(out, media_type="text/event-stream" if exchange.stream else "application/json", headers=headers)

    async def _relay(
        self,
        deployment: Deployment,
        call: Call,
        response: aiohttp.ClientResponse,
        first_piece: bytes,
        exchange: Exchange,
        entry: dict[str, Any],
        started: float,
        caller: tuple[str, Grant],
    ) -> AsyncIterator[bytes]:
        """The client's stream. One that fails before any of the answer was sent is given back."""
        provider = deployment.provider
        if isinstance(call, ResponsesCall):
            translator: StreamTranslator = ResponsesRelay(exchange)
        else:
            translator = provider.stream_translator(call, exchange)
        status, first, clean = 200, None, False
        metrics.STREAMS_IN_FLIGHT.inc()
        deployment.in_flight += 1
        try:
            with upstream_failures(
                provider.name, "broke off the stream", late="stopped sending before the answer was complete"
            ):
                out = translator.feed(first_piece)
                if out:
                    first = time.perf_counter()
                    yield out
                async for piece in response.content.iter_any():
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
        except ValueError as exc:
            status = 502
            yield sse_error_event(UpstreamUnreachable(f"{provider.name} sent garbage: {exc}."))
        except (asyncio.CancelledError, GeneratorExit):
            status = CLIENT_CLOSED  # the client went away; closing the upstream below stops the provider
            raise
        except Exception:
            # Headers are sent: the only way left to say so is an error event.
            log.exception("stream from %s failed", provider.key)
            status = 500
            yield sse_error_event(GatewayError("Internal error in the gateway while streaming."))
        finally:
            metrics.STREAMS_IN_FLIGHT.dec()
            deployment.in_flight -= 1
            if clean:
                response.release()
            else:
                response.close()
            self._log(entry, status, started, exchange, first)
            if status >= 500 and first is None:
                await self.auth.give_back(*caller)

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
        grant: Grant | None = record.pop("grant", None)
        if first is not None:
            record["ttfb_ms"] = round((first - started) * 1000, 2)
        usage = exchange.usage if exchange is not None else None
        if not usage and exchange is not None and status == 200:
            # No usage from the provider: estimate it (about four characters a token) rather than bill 0.
            usage = exchange.usage = estimated_usage(exchange)
            record["usage_estimated"] = True
        if usage:
            record["usage"] = usage
        model = entry["model"] if entry["provider"] else "unknown"
        # Priced as the deployment that answered charges (the last attempt's provider and model name).
        answered = entry["attempts"][-1] if entry.get("attempts") else None
        cost, priced = self.prices.cost(
            model, usage, answered["provider"] if answered else None, answered["model"] if answered else None
        )
        record["cost_usd"] = round(cost, 9)
        if usage and not priced:
            record["unpriced"] = True
        self.analytics.record(**record)
        if grant is not None and self.usage is not None:
            self.usage.add(grant.token_hash, grant.username, model, failed=status >= 400, usage=usage,
                           cost=cost, priced=priced)
        provider = entry["provider"] or "none"
        # Only configured model names become labels (and usage rows): a client's typo must not grow them.
        _requests(model, provider, str(status)).inc()
        _latency(provider).observe(now - started)
        if first is not None:
            _ttfb(provider).observe(first - started)
        if status >= 400 and entry["provider"] not in (None, "local"):
            _upstream_errors(provider, metrics.error_kind(status)).inc()


def parse_chat_body(raw: bytes) -> dict[str, Any]:
    """The request body as a dict with a string `model`, a list of message objects with a string
    `role`, and a boolean `stream` if any; else 400 naming the field."""
    return checked_chat_body(json_object(raw))


def checked_chat_body(body: dict[str, Any]) -> dict[str, Any]:
    """`body` if it passes `parse_chat_body`'s checks (also what a dialect made of its own body)."""
    model = body.get("model")
    if not isinstance(model, str) or not model:
        raise InvalidRequest("'model' is required and must be a string.", param="model")
    messages = body.get("messages")
    if not isinstance(messages, list) or not messages:
        raise InvalidRequest("'messages' is required and must be a non-empty array.", param="messages")
    for i, message in enumerate(messages):
        if not isinstance(message, dict) or not isinstance(message.get("role"), str):
            raise InvalidRequest(f"messages[{i}] must be an object with a string 'role'.", param=f"messages[{i}]")
    if body.get("stream") is not None and not isinstance(body["stream"], bool):
        raise InvalidRequest("'stream' must be true or false.", param="stream")
    if body.get("stream_options") is not None and not isinstance(body["stream_options"], dict):
        raise InvalidRequest("'stream_options' must be an object.", param="stream_options")
    return body


def passed_on(
    raw: bytes, exchange: Exchange, usage: Callable[[Any], dict[str, Any] | None] | None = None
) -> bytes:
    """A provider's answer that is not a chat completion (embeddings, a Responses object), as it
    is but for its usage (recorded, in chat names by `usage` if given) and its model (the client's
    name for it); ValueError on garbage."""
    data = json_object_from(raw, "the provider's answer")
    if isinstance(data.get("usage"), dict):
        exchange.usage = data["usage"] if usage is None else usage(data["usage"])
    if not exchange.renamed:
        return raw
    return orjson.dumps({**data, "model": exchange.model})


def _attempted(entry: dict[str, Any], deployment: Deployment, status: int, sent: float) -> None:
    """One upstream call, for the analytics line, the attempts counter and the deployment's health."""
    ms = round((time.perf_counter() - sent) * 1000, 2)
    entry["attempts"].append({"provider": deployment.key, "model": deployment.upstream_model, "status": status, "ms": ms})
    if status != CLIENT_CLOSED:  # a client that left says nothing about the provider
        deployment.health.record(ms, status != 200)
    if status == 200:
        deployment.fails = 0
        deployment.ok.inc()
    else:
        _upstream_attempts(deployment.key, metrics.attempt_outcome(status)).inc()


def new_request_id() -> str:
    return "req_" + secrets.token_hex(12)


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


def _ms(seconds: float) -> str:
    return f"{seconds * 1000:.2f}"
