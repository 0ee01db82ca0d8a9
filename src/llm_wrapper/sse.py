"""Server-sent events: splitting an upstream byte stream into events, and writing chunks.

Why by hand: the format is three rules (events end at a blank line, `data:`
lines join, `event:` names the kind) and the hot path needs it without copies.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass
from typing import Any

import orjson
from starlette.responses import Response

from .disconnect import until_disconnect

DONE = b"data: [DONE]\n\n"


@dataclass(slots=True)
class Event:
    data: bytes
    name: bytes = b""


class EventSplitter:
    """Feed bytes as they arrive; get whole events back as soon as they are complete."""

    __slots__ = ("_buffer",)

    def __init__(self) -> None:
        self._buffer = b""

    def feed(self, piece: bytes) -> Iterator[Event]:
        buffer = self._buffer + piece
        if b"\r" in buffer:
            # A final CR may be the first half of a CRLF split across pieces: keep it as it is.
            cr = b"\r" if buffer.endswith(b"\r") else b""
            buffer = buffer[: len(buffer) - len(cr)].replace(b"\r\n", b"\n").replace(b"\r", b"\n") + cr
        start = 0
        while True:
            end = buffer.find(b"\n\n", start)
            if end < 0:
                break
            event = _parse(buffer[start:end])
            start = end + 2
            if event is not None:
                yield event
        self._buffer = buffer[start:]

    def flush(self) -> Iterator[Event]:
        """What is left when the upstream closed without a final blank line."""
        rest, self._buffer = self._buffer.replace(b"\r", b"\n").strip(), b""
        if rest:
            event = _parse(rest)
            if event is not None:
                yield event


def last_boundary(data: bytes) -> int:
    """The index just past the last blank line in `data` (where an event ends); 0 if none."""
    end = data.rfind(b"\n\n")
    end = end + 2 if end >= 0 else 0
    if b"\r" in data:
        for separator in (b"\r\n\r\n", b"\r\r"):
            found = data.rfind(separator)
            if found >= 0:
                end = max(end, found + len(separator))
    return end


def first_garbage(events: bytes) -> int:
    """The offset of the first event whose data cannot be a JSON object (nor `[DONE]`), else -1.

    A check per event (its first and last byte), not a parse: it catches the
    garbage providers have sent at a cost the hot path does not notice.
    """
    if events.endswith(b"}\n\n") and events.startswith(b"data: {") and events.find(b"\n\n") == len(events) - 2:
        return -1  # the usual piece: one whole event that can be a JSON object
    at = 0
    for block in events.split(b"\n\n"):
        if block.endswith(b"}") and block.startswith(b"data: {"):
            at += len(block) + 2
            continue
        start = block.find(b"data:")
        if start >= 0:
            data = block[start + 5 :].strip()
            if data[:1] != b"{" and data != b"[DONE]" or data[:1] == b"{" and data[-1:] != b"}":
                return at
        at += len(block) + 2
    return -1


def _parse(block: bytes) -> Event | None:
    data: list[bytes] = []
    name = b""
    for line in block.split(b"\n"):
        if line.startswith(b"data:"):
            value = line[5:]
            data.append(value[1:] if value.startswith(b" ") else value)
        elif line.startswith(b"event:"):
            name = line[6:].strip()
    if not data:
        return None
    return Event(b"\n".join(data), name)


def encode(chunk: dict[str, Any]) -> bytes:
    return b"data: " + orjson.dumps(chunk) + b"\n\n"


class EventStreamResponse(Response):
    """An ASGI response that relays an async iterator of SSE bytes.

    Lighter than Starlette's StreamingResponse (no task group per stream): one
    small task waits for the client to disconnect and then cancels the relay,
    and the iterator is always closed, so the upstream request ends with it,
    even when the client leaves before the first byte.
    """

    media_type = "text/event-stream"

    def __init__(  # a Response by type; Response.__init__ is not used (it would render a body)
        self, body: AsyncIterator[bytes], headers: dict[str, str], status_code: int = 200
    ) -> None:
        self.stream = body
        self.background = None
        self.status_code = status_code
        self.raw_headers = [(b"content-type", b"text/event-stream; charset=utf-8")] + [
            (k.lower().encode("latin-1"), v.encode("latin-1")) for k, v in headers.items()
        ]

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        relay = asyncio.current_task()
        watcher = asyncio.ensure_future(until_disconnect(receive))
        left = False

        def client_left(_: asyncio.Future[None]) -> None:
            nonlocal left
            if not watcher.cancelled() and relay is not None:
                left = True
                relay.cancel()

        watcher.add_done_callback(client_left)
        try:
            await send({"type": "http.response.start", "status": self.status_code, "headers": self.raw_headers})
            async for chunk in self.stream:
                await send({"type": "http.response.body", "body": chunk, "more_body": True})
            await send({"type": "http.response.body", "body": b"", "more_body": False})
        except asyncio.CancelledError:
            if not left or relay is None:
                raise
            relay.uncancel()  # the cancel was ours: the client is gone, nothing more to do
        finally:
            watcher.remove_done_callback(client_left)
            watcher.cancel()
            await self.stream.aclose()  # type: ignore[attr-defined]

