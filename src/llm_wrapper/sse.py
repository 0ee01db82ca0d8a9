"""Server-sent events: splitting an upstream byte stream into events, and writing chunks.

Why by hand: the format is three rules (events end at a blank line, `data:`
lines join, `event:` names the kind) and the hot path needs it without copies.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import orjson

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
