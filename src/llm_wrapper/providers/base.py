"""The OpenAI-compatible provider every adapter starts from.

A provider holds one pooled aiohttp session (opened at start-up, closed at
shutdown) and the request/response mapping for its wire format. Subclasses
override only the hooks where their provider differs from OpenAI:

- `auth_headers()`: how the key is sent;
- `prepare(body, exchange)`: the upstream URL and body;
- `fix_completion(data, exchange)`: a non-streaming answer into an OpenAI `chat.completion`;
- `fix_chunk(chunk, exchange)` / `end_of_stream(exchange)`: stream chunks, when
  `rewrites_stream` is true (otherwise bytes pass through untouched);
- `stream_translator(call, exchange)`: for wire formats that are not Chat Completions SSE.
"""

from __future__ import annotations

import time
import uuid
from dataclasses import dataclass, field
from typing import Any, Iterable

import aiohttp
import orjson

from ..config import ProviderConfig
from ..sse import DONE, EventSplitter, encode


@dataclass(slots=True)
class Exchange:
    """One client request on its way through: what adapters may read and fill in."""

    model: str
    stream: bool
    include_usage: bool = False
    id: str = field(default_factory=lambda: f"chatcmpl-{uuid.uuid4().hex}")
    created: int = field(default_factory=lambda: int(time.time()))
    usage: dict[str, Any] | None = None
    prompt_chars: int = 0
    completion_chars: int = 0
    state: dict[str, Any] = field(default_factory=dict)


@dataclass(slots=True)
class Call:
    """The upstream request a provider decided on."""

    url: str
    payload: bytes
    kind: str = "chat"


class StreamTranslator:
    """Turns upstream stream bytes into the bytes the client receives."""

    def feed(self, piece: bytes) -> bytes:
        raise NotImplementedError

    def end(self) -> bytes:
        """Bytes to send after the upstream closed normally, `[DONE]` included."""
        raise NotImplementedError


class Passthrough(StreamTranslator):
    """Forwards bytes as they arrive; only reads the tail for usage and `[DONE]`."""

    __slots__ = ("_exchange", "_tail")
    TAIL = 16384

    def __init__(self, exchange: Exchange) -> None:
        self._exchange = exchange
        self._tail = b""

    def feed(self, piece: bytes) -> bytes:
        tail = self._tail + piece
        self._tail = tail[-self.TAIL :] if len(tail) > self.TAIL else tail
        return piece

    def end(self) -> bytes:
        tail = self._tail
        if b'"usage"' in tail:
            for event in EventSplitter().feed(tail[tail.find(b"data:") :] + b"\n\n"):
                if b'"usage"' in event.data and event.data[:1] == b"{":
                    try:
                        usage = orjson.loads(event.data).get("usage")
                    except orjson.JSONDecodeError:
                        continue
                    if usage:
                        self._exchange.usage = usage
        if tail.rstrip().endswith(b"[DONE]"):
            return b""
        return (b"\n\n" if tail and not tail.endswith(b"\n\n") else b"") + DONE


class ChunkRewriter(StreamTranslator):
    """Parses each SSE event and lets the provider rewrite the chunk."""

    def __init__(self, provider: "Provider", exchange: Exchange) -> None:
        self._provider = provider
        self._exchange = exchange
        self._events = EventSplitter()

    def _emit(self, events: Iterable[Any]) -> bytes:
        out: list[bytes] = []
        for event in events:
            data = event.data
            if data == b"[DONE]":
                continue
            try:
                chunk = orjson.loads(data)
            except orjson.JSONDecodeError:
                raise ValueError("the provider sent a stream event that is not JSON") from None
            if isinstance(chunk, dict) and "error" in chunk and "choices" not in chunk:
                out.append(encode(chunk))
                continue
            for fixed in self._provider.fix_chunk(chunk, self._exchange):
                out.append(encode(fixed))
        return b"".join(out)

    def feed(self, piece: bytes) -> bytes:
        return self._emit(self._events.feed(piece))

    def end(self) -> bytes:
        rest = self._emit(self._events.flush())
        tail = b"".join(encode(c) for c in self._provider.end_of_stream(self._exchange))
        return rest + tail + DONE


class Provider:
    """An OpenAI-compatible Chat Completions provider."""

    chat_path = "/chat/completions"
    rewrites_stream = False
    rewrites_response = False
    max_connections = 256

    def __init__(self, config: ProviderConfig, api_key: str | None) -> None:
        self.config = config
        self.key = config.key
        self.name = config.name
        self.models = tuple(config.supported_models)
        self._api_key = api_key
        self._extra = dict(config.payload_extra_parameters)
        self.session: aiohttp.ClientSession | None = None

    def __repr__(self) -> str:  # never shows the key
        return f"<{type(self).__name__} {self.key} enabled={self.enabled}>"

    @property
    def enabled(self) -> bool:
        return bool(self._api_key)

    # lifecycle ---------------------------------------------------------

    async def start(self) -> None:
        if not self.enabled or self.session is not None:
            return
        timeout = aiohttp.ClientTimeout(
            total=self.config.timeout,
            sock_connect=self.config.connect_timeout,
            sock_read=self.config.read_timeout,
        )
        connector = aiohttp.TCPConnector(limit=self.max_connections, ttl_dns_cache=300)
        self.session = aiohttp.ClientSession(
            connector=connector,
            timeout=timeout,
            headers={**self.auth_headers(), "Content-Type": "application/json"},
            auto_decompress=True,
            skip_auto_headers=("User-Agent",),
        )

    async def close(self) -> None:
        if self.session is not None:
            await self.session.close()
            self.session = None

    # mapping hooks -----------------------------------------------------

    def auth_headers(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {self._api_key}"}

    def url(self, path: str) -> str:
        return self.config.base_url.rstrip("/") + path

    def merge_extra(self, body: dict[str, Any]) -> dict[str, Any]:
        """The configured `payload_extra_parameters` win over the client's fields of the same name."""
        return {**body, **self._extra} if self._extra else body

    def prepare(self, body: dict[str, Any], exchange: Exchange) -> Call:
        return Call(self.url(self.chat_path), orjson.dumps(self.merge_extra(body)))

    def fix_completion(self, data: dict[str, Any], exchange: Exchange) -> dict[str, Any]:
        return data

    def fix_chunk(self, chunk: dict[str, Any], exchange: Exchange) -> list[dict[str, Any]]:
        usage = chunk.get("usage")
        if usage:
            exchange.usage = usage
        return [chunk]

    def end_of_stream(self, exchange: Exchange) -> list[dict[str, Any]]:
        return []

    def stream_translator(self, call: Call, exchange: Exchange) -> StreamTranslator:
        if self.rewrites_stream:
            return ChunkRewriter(self, exchange)
        return Passthrough(exchange)

    def translate_completion(self, call: Call, raw: bytes, exchange: Exchange) -> bytes:
        """The client's response body from the provider's; raises ValueError on garbage."""
        try:
            data = orjson.loads(raw)
        except orjson.JSONDecodeError:
            raise ValueError("the provider's answer is not JSON") from None
        if not isinstance(data, dict):
            raise ValueError("the provider's answer is not a JSON object")
        usage = data.get("usage")
        if usage:
            exchange.usage = usage
        if not self.rewrites_response:
            return raw
        return orjson.dumps(self.fix_completion(data, exchange))


def chunk_shell(exchange: Exchange, choices: list[dict[str, Any]], **extra: Any) -> dict[str, Any]:
    """A `chat.completion.chunk` carrying this exchange's id, time and model."""
    return {
        "id": exchange.id,
        "object": "chat.completion.chunk",
        "created": exchange.created,
        "model": exchange.model,
        "choices": choices,
        **extra,
    }


def usage_chunk(exchange: Exchange, usage: dict[str, Any]) -> dict[str, Any]:
    return chunk_shell(exchange, [], usage=usage)


def estimated_usage(exchange: Exchange) -> dict[str, int]:
    """About four characters a token: for providers that report no usage at all."""
    prompt = max(1, exchange.prompt_chars // 4) if exchange.prompt_chars else 0
    completion = max(1, exchange.completion_chars // 4) if exchange.completion_chars else 0
    return {"prompt_tokens": prompt, "completion_tokens": completion, "total_tokens": prompt + completion}
