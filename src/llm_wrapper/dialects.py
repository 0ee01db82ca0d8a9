"""The other APIs a client may speak, served through the chat request path.

A dialect turns its request body into a Chat Completions body before the
gateway checks it (`to_chat`), and the gateway's finished answer back into
its own shape (`answer` for a whole JSON answer, `stream` for a translator of
the chat SSE the gateway would have sent, its error events included). Between
the two, everything is chat's: admission and counting, the allow-list,
answerers, routing with its retries and fallbacks, usage, cost and the
analytics line (which names the dialect's `api`).

One dialect object serves one request: `to_chat` keeps what the answer needs
(the model the client asked for, the request a Responses object repeats).
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any, Protocol

import orjson
from starlette.responses import Response

from .sse import EventStreamResponse
from .translation import anthropic, responses


class StreamTranslator(Protocol):
    def feed(self, piece: bytes) -> bytes: ...

    def end(self) -> bytes: ...


class Dialect(Protocol):
    api: str  # the analytics line's `api`

    def to_chat(self, body: dict[str, Any]) -> dict[str, Any]:
        """The Chat Completions body; InvalidRequest (400, counted like chat's) when malformed."""

    def answer(self, completion: bytes) -> bytes:
        """A whole `chat.completion` (JSON bytes) in this API's shape."""

    def stream(self) -> StreamTranslator:
        """A translator of the chat stream (`chat.completion.chunk` SSE) into this API's events."""


class Messages:
    """Anthropic's Messages API (`/v1/messages`)."""

    api = "messages"

    def __init__(self) -> None:
        self.model = ""

    def to_chat(self, body: dict[str, Any]) -> dict[str, Any]:
        chat = anthropic.chat_request(body)
        self.model = chat["model"]
        return chat

    def answer(self, completion: bytes) -> bytes:
        return orjson.dumps(anthropic.message(_object(completion), self.model))

    def stream(self) -> StreamTranslator:
        return anthropic.MessagesStream(self.model)


class Responses:
    """OpenAI's Responses API (`/v1/responses`), translated through Chat Completions."""

    api = "responses"

    def __init__(self) -> None:
        self.shape: responses.ResponseShape | None = None

    def to_chat(self, body: dict[str, Any]) -> dict[str, Any]:
        chat = responses.chat_body(body)
        self.shape = responses.ResponseShape(body, chat["model"])
        return chat

    def answer(self, completion: bytes) -> bytes:
        assert self.shape is not None, "to_chat comes first"
        return orjson.dumps(responses.response_object(_object(completion), self.shape))

    def stream(self) -> StreamTranslator:
        assert self.shape is not None, "to_chat comes first"
        return responses.ChatToResponsesStream(self.shape)


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
