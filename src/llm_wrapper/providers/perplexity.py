"""Perplexity Sonar: streams that repeat themselves.

Each stream chunk carries the new text in `delta` and the whole text so far in
`message`, repeats `citations`/`search_results`, and has cumulative `usage`.
The client gets clean OpenAI chunks: text once, the extras on the first chunk
that has them and again, complete, on the chunk that finishes the answer
(openai-python's `stream(...).get_final_completion()` keeps top-level extras
from the first chunk only; readers of the last chunk get the whole list), and
the last usage (as the usage chunk when the client asked for
`stream_options.include_usage`).
"""

from __future__ import annotations

from typing import Any

from .base import ChunkRewriter, Exchange, Provider, chunk_shell, usage_chunk

EXTRAS = ("citations", "search_results", "images", "related_questions", "videos")


class PerplexityStream(ChunkRewriter):
    def __init__(self, exchange: Exchange) -> None:
        super().__init__(exchange)
        self.extras: dict[str, Any] = {}  # the latest value of each extra
        self.sent: dict[int, int] = {}  # characters sent so far, per choice
        self.extras_sent = False  # on the finishing chunk
        self.extras_started = False  # on the first chunk that had them

    def fix_chunk(self, chunk: dict[str, Any]) -> list[dict[str, Any]]:
        arrived = False
        for name in EXTRAS:
            if chunk.get(name):
                self.extras[name] = chunk[name]
                arrived = True
            chunk.pop(name, None)
        usage = chunk.pop("usage", None)
        if usage:
            self.exchange.usage = usage
        chunk["object"] = "chat.completion.chunk"
        finished = False
        sent = self.sent
        for choice in chunk.get("choices") or ():
            message = choice.pop("message", None)
            index = choice.get("index", 0)
            delta = choice.get("delta")
            if delta is None:
                # Older streams sent only the text so far: send what is new.
                full = (message or {}).get("content") or ""
                choice["delta"] = delta = {"content": full[sent.get(index, 0) :]}
                if "role" in (message or {}) and index not in sent:
                    delta["role"] = message["role"]
            sent[index] = sent.get(index, 0) + len(delta.get("content") or "")
            if choice.get("finish_reason"):
                finished = True
        if finished and self.extras and not self.extras_sent:
            chunk.update(self.extras)
            self.extras_sent = True
        elif arrived and not self.extras_started:
            chunk.update(self.extras)
        self.extras_started = self.extras_started or arrived
        return [chunk]

    def end_of_stream(self) -> list[dict[str, Any]]:
        exchange = self.exchange
        tail: list[dict[str, Any]] = []
        if self.extras and not self.extras_sent:
            tail.append(chunk_shell(exchange, [{"index": 0, "delta": {}, "finish_reason": "stop"}], **self.extras))
        if exchange.include_usage and exchange.usage:
            tail.append(usage_chunk(exchange, exchange.usage))
        return tail


class PerplexityProvider(Provider):
    asks_stream_usage = False  # every chunk carries usage already
    stream_rewriter = PerplexityStream
