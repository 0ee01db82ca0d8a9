"""The other APIs a client may speak, served through the chat request path.

A translating dialect (`path` None) turns its request body into a Chat
Completions body before the gateway checks it (`request`), and the gateway's
finished answer back into its own shape (`answer` for a whole JSON answer,
`stream` for a translator of the chat SSE the gateway would have sent, its
error events included). Between the two, everything is chat's: admission and
counting, the allow-list, answerers, routing with its retries and fallbacks,
usage, cost and the analytics line (which names the dialect's `api`).

A dialect with a `path` (embeddings) is not chat at all: its checked body is
sent as it is to that path of the deployment the router picks, and the
provider's JSON answer comes back as it is (its usage recorded). It shares the
same admission, routing, usage and log; answerers (chat-only) are skipped.

A Responses request is translated only for a provider that does not speak the
Responses API itself: per upstream attempt, `native_call` gives the client's
own body for one that does (`Provider.speaks_responses`), and `passed` then
says the answer is already in the dialect's shape. So a request may fail over
between a provider that speaks it and one that is translated to.

One dialect object serves one request: `request` keeps what the answer needs
(the model the client asked for, the request a Responses object repeats).
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from typing import Any, Protocol

import orjson
from starlette.responses import Response

from .errors import InvalidRequest
from .exchange import Exchange, StreamTranslator
from .providers import Call, Provider
from .sse import EventStreamResponse
from .translation import anthropic, responses


class Dialect(Protocol):
    api: str  # the analytics line's `api`
    path: str | None  # None: translated to chat; else the provider path the body is sent to as it is
    passed: bool  # the last attempt sent the client's own body (`native_call`): its answer is as it is

    def request(self, body: dict[str, Any]) -> dict[str, Any]:
        """The body to route (a chat body unless `path`); InvalidRequest (400, counted like chat's)."""

    def native_call(self, provider: Provider, model: str, exchange: Exchange) -> Call | None:
        """The client's own body for `provider` (under the provider's name for the model) if it
        speaks this API, else None (the chat body is translated). Sets `passed`."""

    def answer(self, completion: bytes) -> bytes:
        """A whole `chat.completion` (JSON bytes) in this API's shape."""

    def stream(self) -> StreamTranslator:
        """A translator of the chat stream (`chat.completion.chunk` SSE) into this API's events."""


class Messages:
    """Anthropic's Messages API (`/v1/messages`)."""

    api: str = "messages"
    path: str | None = None
    passed = False

    def __init__(self) -> None:
        self.model = ""

    def native_call(self, provider: Provider, model: str, exchange: Exchange) -> Call | None:
        return None

    def request(self, body: dict[str, Any]) -> dict[str, Any]:
        chat = anthropic.chat_request(body)
        self.model = chat["model"]
        return chat

    def answer(self, completion: bytes) -> bytes:
        return orjson.dumps(anthropic.message(_object(completion), self.model))

    def stream(self) -> StreamTranslator:
        return anthropic.MessagesStream(self.model)


class Responses:
    """OpenAI's Responses API (`/v1/responses`): passed through to a provider that speaks it,
    else translated through Chat Completions.

    `speaks(model)` (the router's `speaks_responses`): every deployment the model can
    reach speaks it, so what the translation cannot carry (`previous_response_id`,
    `store: true`, built-in tools, `input_file`) is allowed.
    """

    api: str = "responses"
    path: str | None = None

    def __init__(self, speaks: Callable[[str], bool] = lambda model: False) -> None:
        self.shape: responses.ResponseShape | None = None
        self.speaks = speaks
        self.body: dict[str, Any] = {}
        self.passed = False

    def request(self, body: dict[str, Any]) -> dict[str, Any]:
        model = body.get("model")
        chat = responses.chat_body(body, native=isinstance(model, str) and self.speaks(model))
        self.shape = responses.ResponseShape(body, chat["model"])
        self.body = body
        return chat

    def native_call(self, provider: Provider, model: str, exchange: Exchange) -> Call | None:
        self.passed = provider.speaks_responses
        if not self.passed:
            return None
        body = self.body if self.body["model"] == model else {**self.body, "model": model}
        return provider.responses_call(body, exchange)

    def answer(self, completion: bytes) -> bytes:
        assert self.shape is not None, "request comes first"
        return orjson.dumps(responses.response_object(_object(completion), self.shape))

    def stream(self) -> StreamTranslator:
        assert self.shape is not None, "request comes first"
        return responses.ChatToResponsesStream(self.shape)


class Embeddings:
    """OpenAI's `/v1/embeddings`, passed on to the provider's own `/embeddings`."""

    api: str = "embeddings"
    path: str | None = "/embeddings"
    passed = False

    def native_call(self, provider: Provider, model: str, exchange: Exchange) -> Call | None:
        return None

    def request(self, body: dict[str, Any]) -> dict[str, Any]:
        """The fields OpenAI's embeddings endpoint takes, checked; others are not passed on."""
        model = body.get("model")
        if not isinstance(model, str) or not model:
            raise InvalidRequest("'model' is required and must be a string.", param="model")
        if not _embedding_input(body.get("input")):
            raise InvalidRequest(
                f"'input' must be a non-empty string, or an array of at most {MAX_EMBEDDING_INPUTS} strings "
                "or of token arrays.", param="input",
            )
        out = {"model": model, "input": body["input"]}
        for name, kind in (("encoding_format", str), ("dimensions", int), ("user", str)):
            value = body.get(name)
            if value is None:
                continue
            if not isinstance(value, kind) or isinstance(value, bool):
                raise InvalidRequest(f"'{name}' must be a {kind.__name__ if kind is str else 'integer'}.",
                                     param=name)
            out[name] = value
        return out

    def answer(self, completion: bytes) -> bytes:
        return completion

    def stream(self) -> StreamTranslator:
        raise AssertionError("embeddings are never streamed")


MAX_EMBEDDING_INPUTS = 2048  # OpenAI's own limit per request


def _embedding_input(value: Any) -> bool:
    if isinstance(value, str):
        return bool(value)
    if not isinstance(value, list) or not value or len(value) > MAX_EMBEDDING_INPUTS:
        return False
    if all(isinstance(v, str) for v in value):
        return True
    if all(_token(v) for v in value):
        return True
    return all(isinstance(v, list) and v and all(_token(t) for t in v) for v in value)


def _token(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool) and value >= 0


def spoken(response: Response, dialect: Dialect) -> Response:
    """The gateway's chat response (JSON, a whole stream, or a relayed stream) in the dialect.

    Its status and headers (rate limits, request id, attempts) stay as they are.
    """
    if isinstance(response, EventStreamResponse):
        response.stream = _translated(response.stream, dialect.stream())
        return response
    if response.status_code != 200:
        return response  # 499: the client is gone, there is no body to translate
    headers = {k: v for k, v in response.headers.items() if k not in ("content-length", "content-type")}
    body = bytes(response.body)
    if response.headers.get("content-type", "").startswith("text/event-stream"):
        translator = dialect.stream()
        return Response(translator.feed(body) + translator.end(), media_type="text/event-stream", headers=headers)
    return Response(dialect.answer(body), media_type="application/json", headers=headers)


async def _translated(chat: AsyncIterator[bytes], translator: StreamTranslator) -> AsyncIterator[bytes]:
    try:
        async for piece in chat:
            out = translator.feed(piece)
            if out:
                yield out
        tail = translator.end()
        if tail:
            yield tail
    finally:
        await chat.aclose()  # type: ignore[attr-defined]  # the relay's own cleanup: logging, give-back


def _object(raw: bytes) -> dict[str, Any]:
    data = orjson.loads(raw)
    return data if isinstance(data, dict) else {}
