"""The OpenAI-compatible provider every adapter starts from.

A provider holds one pooled aiohttp session (opened at start-up, closed at
shutdown) and the request/response mapping for its wire format. Subclasses
state only where their provider differs from OpenAI:

- `auth_headers()`: how the key is sent;
- `prepare(body, exchange)`: the upstream URL and body;
- `fix_completion(data, exchange)`: a non-streaming answer into an OpenAI
  `chat.completion` (overriding it is what makes the answer be parsed and rewritten);
- `stream_rewriter`: a `ChunkRewriter` subclass whose `fix_chunk`/`end_of_stream`
  rewrite stream chunks, keeping their per-stream state on itself (unset: the
  bytes pass through untouched);
- `stream_translator(call, exchange)`: for wire formats that are not Chat Completions SSE;
- `speaks_responses` / `responses_call(body, exchange)`: a provider that takes OpenAI's
  Responses API itself, which `/v1/responses` then passes through instead of translating.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

import aiohttp
import orjson

from ..config import ProviderConfig
from ..exchange import (
    Exchange,
    StreamTranslator,
    chunk_shell,
    estimated_usage,
    json_object_from,
    usage_chunk,
)
from ..sse import DONE, EventSplitter, encode, first_garbage, last_boundary

__all__ = [
    "Call",
    "ResponsesCall",
    "ChunkRewriter",
    "Exchange",
    "Passthrough",
    "Provider",
    "StreamTranslator",
    "chunk_shell",
    "estimated_usage",
    "usage_chunk",
]


@dataclass(slots=True)
class Call:
    """The upstream request a provider decided on."""

    url: str
    payload: bytes


@dataclass(slots=True)
class ResponsesCall(Call):
    """A `/v1/responses` request sent as it is to the provider's own `/responses`."""


class Passthrough(StreamTranslator):
    """Forwards the upstream bytes untouched, event by event; reads only the tail for usage.

    An event's bytes are held back until its blank line arrives, so the client
    only ever sees whole events: if the upstream breaks off, the error event
    that follows is read as an event of its own. An event that cannot be JSON
    ends the stream with an error event (raised after the events before it went
    out) rather than reaching the client's JSON parser. When the gateway asked
    for usage on the client's behalf, the usage chunk and the `"usage": null`
    that providers then add to every chunk are kept from the client.
    """

    __slots__ = ("_error", "_exchange", "_held", "_hide_usage", "_last", "_previous")

    def __init__(self, exchange: Exchange) -> None:
        self._exchange = exchange
        self._hide_usage = exchange.hide_usage
        self._held = b""
        self._error: ValueError | None = None
        # The last two whole-event runs sent: the usage event is the last before [DONE].
        self._previous = b""
        self._last = b""

    def feed(self, piece: bytes) -> bytes:
        if self._error is not None:
            raise self._error
        data = self._held + piece if self._held else piece
        end = last_boundary(data)
        self._held = data[end:]
        out = data[:end] if end < len(data) else data
        if out:
            bad = first_garbage(out)
            if bad >= 0:
                self._error = ValueError("the provider sent a stream event that is not JSON")
                self._held, out = b"", out[:bad]
                if not out:
                    raise self._error
            if self._hide_usage and b'"usage"' in out:
                out = out.replace(b',"usage":null', b"")
                if b'"usage"' in out:  # spaced nulls, or the usage chunk itself
                    out = out.replace(b', "usage": null', b"")
                    if b'"choices":[]' in out or b'"choices": []' in out:
                        out = self._without_usage_chunk(out)
            self._previous, self._last = self._last, out
        return out

    def _without_usage_chunk(self, out: bytes) -> bytes:
        """Drop the usage-only chunk we asked for on the client's behalf, keeping its usage."""
        kept = []
        for block in out.split(b"\n\n"):
            if not block:
                continue
            if b'"usage"' in block:
                events = list(EventSplitter().feed(block + b"\n\n"))
                if len(events) == 1 and events[0].data[:1] == b"{":
                    try:
                        chunk = orjson.loads(events[0].data)
                    except orjson.JSONDecodeError:
                        chunk = None
                    if isinstance(chunk, dict) and chunk.get("choices") == [] and chunk.get("usage"):
                        self._exchange.usage = chunk["usage"]
                        continue
            kept.append(block + b"\n\n")
        return b"".join(kept)

    def end(self) -> bytes:
        if self._error is not None:
            raise self._error
        rest, self._held = self._held.strip(), b""
        if rest and first_garbage(rest) >= 0:
            raise ValueError("the provider sent a stream event that is not JSON")
        closing = rest + b"\n\n" if rest else b""
        tail = self._previous + self._last + closing
        if b'"usage"' in tail:
            self._read_usage(tail)
        if tail.rstrip().endswith(b"[DONE]"):
            return closing
        return closing + DONE

    def _read_usage(self, tail: bytes) -> None:
        """Parse only the last event that mentions usage (searching backwards from the end)."""
        at = tail.rfind(b'"usage"')
        while at >= 0:
            start = tail.rfind(b"data:", 0, at)
            stop = tail.find(b"\n\n", at)
            for event in EventSplitter().feed(tail[max(start, 0) : stop + 2 if stop >= 0 else len(tail)] + b"\n\n"):
                if event.data[:1] != b"{":
                    continue
                try:
                    usage = orjson.loads(event.data).get("usage")
                except orjson.JSONDecodeError:
                    continue
                if usage:
                    self._exchange.usage = usage
                    return
            at = tail.rfind(b'"usage"', 0, max(start, 0))


class ChunkRewriter(StreamTranslator):
    """Parses each SSE event and rewrites the chunk; a provider subclasses it for its fixes.

    `fix_chunk` and `end_of_stream` are the hooks; per-stream state lives on the
    instance, one per stream.
    """

    def __init__(self, exchange: Exchange) -> None:
        self.exchange = exchange
        self._events = EventSplitter()
        self._first = True
        self._rename = exchange.model if exchange.renamed else None  # `model_map`: the public name

    def fix_chunk(self, chunk: dict[str, Any]) -> list[dict[str, Any]]:
        """The chunks to send for one upstream chunk (none, it, or several)."""
        usage = chunk.get("usage")
        if usage:
            self.exchange.usage = usage
            if chunk.get("choices") == [] and self.exchange.hide_usage:
                return []  # the usage chunk we asked for on the client's behalf
        return [chunk]

    def end_of_stream(self) -> list[dict[str, Any]]:
        """Chunks to add after the upstream's last one, before `[DONE]`."""
        return []

    def _adopt(self, chunk: dict[str, Any]) -> None:
        """Chunks the gateway adds carry the upstream stream's own id and time, as OpenAI's all do."""
        self._first = False
        if isinstance(chunk.get("id"), str) and chunk["id"]:
            self.exchange.id = chunk["id"]
        created = chunk.get("created")
        if isinstance(created, (int, float)) and not isinstance(created, bool) and created > 0:
            self.exchange.created = int(created)

    def _emit(self, events: Iterable[Any]) -> bytes:
        out: list[bytes] = []
        for event in events:
            data = event.data
            if data == b"[DONE]":
                continue
            chunk = json_object_from(data, "a stream event the provider sent")
            if "error" in chunk and "choices" not in chunk:
                out.append(encode(chunk))
                continue
            if self._first:
                self._adopt(chunk)
            for fixed in self.fix_chunk(chunk):
                if self._rename is not None:
                    fixed["model"] = self._rename
                out.append(encode(fixed))
        return b"".join(out)

    def feed(self, piece: bytes) -> bytes:
        return self._emit(self._events.feed(piece))

    def end(self) -> bytes:
        rest = self._emit(self._events.flush())
        tail = b"".join(encode(c) for c in self.end_of_stream())
        return rest + tail + DONE


class Provider:
    """An OpenAI-compatible Chat Completions provider."""

    chat_path = "/chat/completions"
    stream_rewriter: type[ChunkRewriter] | None = None
    rewrites_response = False  # derived: true when the subclass overrides `fix_completion`
    max_connections = 256
    # Ask for `stream_options.include_usage` on every stream, so usage is recorded even when the
    # client did not ask; the extra usage-only chunk is then kept from the client.
    asks_stream_usage = True
    # Takes OpenAI's Responses API at `{base_url}/responses`: `/v1/responses` is passed through.
    speaks_responses = False

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        cls.rewrites_response = cls.fix_completion is not Provider.fix_completion
        for hook in ("fix_chunk", "end_of_stream"):
            if hook in cls.__dict__:
                raise TypeError(f"{cls.__name__}.{hook}: stream fixes belong on a ChunkRewriter (`stream_rewriter`)")

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
            auto_decompress=True,  # only when a provider compresses unasked: none is asked (below)
            skip_auto_headers=("User-Agent", "Accept-Encoding"),
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
        return Call(self.url(self.chat_path), orjson.dumps(self.with_stream_usage(self.merge_extra(body), exchange)))

    def responses_call(self, body: dict[str, Any], exchange: Exchange) -> ResponsesCall:
        """A client's Responses API body for `/responses`, with the configured extra parameters."""
        return ResponsesCall(self.url("/responses"), orjson.dumps(self.merge_extra(body)))

    def with_stream_usage(self, body: dict[str, Any], exchange: Exchange) -> dict[str, Any]:
        if not (exchange.stream and self.asks_stream_usage) or exchange.include_usage:
            return body
        exchange.hide_usage = True
        options = body.get("stream_options")
        return {**body, "stream_options": {**(options if isinstance(options, dict) else {}), "include_usage": True}}

    def fix_completion(self, data: dict[str, Any], exchange: Exchange) -> dict[str, Any]:
        return data

    def stream_translator(self, call: Call, exchange: Exchange) -> StreamTranslator:
        if self.stream_rewriter is not None:
            return self.stream_rewriter(exchange)
        if exchange.renamed:  # every chunk's `model` is rewritten: parsed, not patched as bytes
            return ChunkRewriter(exchange)
        return Passthrough(exchange)

    def translate_completion(self, call: Call, raw: bytes, exchange: Exchange) -> bytes:
        """The client's response body from the provider's; raises ValueError on garbage."""
        data = json_object_from(raw, "the provider's answer")
        usage = data.get("usage")
        if usage:
            exchange.usage = usage
        if not (self.rewrites_response or exchange.renamed):
            return raw
        data = self.fix_completion(data, exchange)
        if exchange.renamed:
            data["model"] = exchange.model
        return orjson.dumps(data)
