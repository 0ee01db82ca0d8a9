"""Reading the gateway's own chat stream, for translators that speak another API's events.

`ChatStreamReader` splits `chat.completion.chunk` SSE into events and calls one
hook per thing that happened: the first chunk (`_start`), text and tool-call
deltas of the first choice, its finish reason, the usage chunk, the gateway's
`data: {"error": …}` event (`_failed`), and the end (`_finish`, at `[DONE]` or
when the upstream closed). A subclass writes its own events from those hooks.
"""

from __future__ import annotations

from typing import Any

import orjson

from ..exchange import StreamTranslator
from ..sse import EventSplitter


class ChatStreamReader(StreamTranslator):
    def __init__(self) -> None:
        self._events = EventSplitter()
        self._started = False
        self._finished = False

    def feed(self, piece: bytes) -> bytes:
        return b"".join(self._read(event.data) for event in self._events.feed(piece))

    def end(self) -> bytes:
        out = b"".join(self._read(event.data) for event in self._events.flush())
        return out + self._end()

    def _read(self, data: bytes) -> bytes:
        if self._finished:
            return b""
        if data == b"[DONE]":
            return self._end()
        chunk = orjson.loads(data)
        if not isinstance(chunk, dict):
            return b""
        out = [self._begin(chunk)]
        if "error" in chunk and "choices" not in chunk:
            failed = chunk["error"] if isinstance(chunk["error"], dict) else {}
            message = failed.get("message")
            self._finished = True
            return out[0] + self._failed(message if isinstance(message, str) else "The stream failed.")
        if chunk.get("usage"):
            self._usage(chunk["usage"])
        for choice in chunk.get("choices") or ():
            if not isinstance(choice, dict) or choice.get("index", 0) != 0:
                continue  # the other APIs have one answer: the first choice
            delta = choice.get("delta") or {}
            if isinstance(delta.get("content"), str) and delta["content"]:
                out.append(self._text(delta["content"]))
            for call in delta.get("tool_calls") or ():
                if isinstance(call, dict):
                    out.append(self._tool(call))
            if choice.get("finish_reason"):
                self._finish_reason(choice["finish_reason"])
        return b"".join(out)

    def _begin(self, chunk: dict[str, Any]) -> bytes:
        if self._started:
            return b""
        self._started = True
        return self._start(chunk)

    def _end(self) -> bytes:
        if self._finished:
            return b""
        self._finished = True
        return self._begin({}) + self._finish()

    # hooks ------------------------------------------------------------------

    def _start(self, chunk: dict[str, Any]) -> bytes:
        """The opening events, once, from the first chunk (`{}` if the stream had none)."""
        raise NotImplementedError

    def _text(self, text: str) -> bytes:
        raise NotImplementedError

    def _tool(self, call: dict[str, Any]) -> bytes:
        raise NotImplementedError

    def _finish_reason(self, reason: str) -> None:
        raise NotImplementedError

    def _usage(self, usage: dict[str, Any]) -> None:
        raise NotImplementedError

    def _failed(self, message: str) -> bytes:
        """The events for the gateway's error event mid-stream (the stream ends there)."""
        raise NotImplementedError

    def _finish(self) -> bytes:
        """The closing events."""
        raise NotImplementedError
