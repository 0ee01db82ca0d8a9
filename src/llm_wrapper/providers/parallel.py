"""Parallel's chat API: OpenAI-shaped, but `id`, `model`, `finish_reason` and usage come back empty.

The gateway fills them (usage is estimated at about four characters a token,
since Parallel reports none), flattens content arrays to the plain strings
Parallel requires, and passes `basis` and `interaction_id` through.
"""

from __future__ import annotations

from typing import Any

import orjson

from .base import Call, ChunkRewriter, Exchange, Provider, chunk_shell, estimated_usage, usage_chunk


def _flatten(content: Any) -> Any:
    if isinstance(content, list):
        return "\n".join(
            part["text"]
            for part in content
            if isinstance(part, dict) and part.get("type") == "text" and isinstance(part.get("text"), str)
        )
    return content


def _fill(data: dict[str, Any], exchange: Exchange) -> None:
    data["id"] = data.get("id") or exchange.id
    data["model"] = data.get("model") or exchange.model
    if not isinstance(data.get("created"), int):
        data["created"] = exchange.created


class ParallelStream(ChunkRewriter):
    def __init__(self, exchange: Exchange) -> None:
        super().__init__(exchange)
        self.finished = False

    def fix_chunk(self, chunk: dict[str, Any]) -> list[dict[str, Any]]:
        exchange = self.exchange
        _fill(chunk, exchange)
        chunk["id"] = exchange.id  # one id for the whole stream, as OpenAI does
        chunk["object"] = "chat.completion.chunk"
        if not (chunk.get("usage") or {}).get("total_tokens"):
            chunk.pop("usage", None)
        for choice in chunk.get("choices") or ():
            exchange.completion_chars += len((choice.get("delta") or {}).get("content") or "")
            if choice.get("finish_reason"):
                self.finished = True
            else:
                choice["finish_reason"] = None
        return [chunk]

    def end_of_stream(self) -> list[dict[str, Any]]:
        exchange = self.exchange
        tail: list[dict[str, Any]] = []
        if not self.finished:
            tail.append(chunk_shell(exchange, [{"index": 0, "delta": {}, "finish_reason": "stop"}]))
        exchange.usage = exchange.usage or estimated_usage(exchange)
        if exchange.include_usage:
            tail.append(usage_chunk(exchange, exchange.usage))
        return tail


class ParallelProvider(Provider):
    asks_stream_usage = False  # it reports no usage; the gateway estimates it
    stream_rewriter = ParallelStream

    def prepare(self, body: dict[str, Any], exchange: Exchange) -> Call:
        body = self.merge_extra(body)
        messages = body.get("messages")
        if isinstance(messages, list) and any(isinstance(m, dict) and isinstance(m.get("content"), list) for m in messages):
            body = {
                **body,
                "messages": [{**m, "content": _flatten(m.get("content"))} if isinstance(m, dict) else m for m in messages],
            }
        exchange.prompt_chars = sum(
            len(m.get("content") or "") for m in body.get("messages") or () if isinstance(m, dict) and isinstance(m.get("content"), str)
        )
        return Call(self.url(self.chat_path), orjson.dumps(body))

    def fix_completion(self, data: dict[str, Any], exchange: Exchange) -> dict[str, Any]:
        _fill(data, exchange)
        data["object"] = "chat.completion"
        for choice in data.get("choices") or ():
            choice["finish_reason"] = choice.get("finish_reason") or "stop"
            exchange.completion_chars += len((choice.get("message") or {}).get("content") or "")
        if not (data.get("usage") or {}).get("total_tokens"):
            data["usage"] = estimated_usage(exchange)
        exchange.usage = data["usage"]
        return data
