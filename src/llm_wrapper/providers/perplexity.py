"""Perplexity Sonar: streams that repeat themselves.

Each stream chunk carries the new text in `delta` and the whole text so far in
`message`, repeats `citations`/`search_results`, and has cumulative `usage`.
The client gets clean OpenAI chunks: text once, the extras once (on the
chunk that finishes the answer), and the last usage (as the usage chunk when
the client asked for `stream_options.include_usage`).
"""

from __future__ import annotations

from typing import Any

from .base import Exchange, Provider, chunk_shell, usage_chunk

EXTRAS = ("citations", "search_results", "images", "related_questions", "videos")


class PerplexityProvider(Provider):
    asks_stream_usage = False  # every chunk carries usage already
    rewrites_stream = True

    def fix_chunk(self, chunk: dict[str, Any], exchange: Exchange) -> list[dict[str, Any]]:
        state = exchange.state
        extras = state.setdefault("extras", {})
        for name in EXTRAS:
            if chunk.get(name):
                extras[name] = chunk[name]
            chunk.pop(name, None)
        usage = chunk.pop("usage", None)
        if usage:
            exchange.usage = usage
        chunk["object"] = "chat.completion.chunk"
        finished = False
        sent = state.setdefault("sent", {})
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
        if finished and extras and not state.get("extras_sent"):
            chunk.update(extras)
            state["extras_sent"] = True
        return [chunk]

    def end_of_stream(self, exchange: Exchange) -> list[dict[str, Any]]:
        state = exchange.state
        tail: list[dict[str, Any]] = []
        extras = state.get("extras")
        if extras and not state.get("extras_sent"):
            tail.append(chunk_shell(exchange, [{"index": 0, "delta": {}, "finish_reason": "stop"}], **extras))
        if exchange.include_usage and exchange.usage:
            tail.append(usage_chunk(exchange, exchange.usage))
        return tail
