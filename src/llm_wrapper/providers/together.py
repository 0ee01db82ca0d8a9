"""Together AI: OpenAI-compatible, but a finished answer may say `finish_reason: "eos"`."""

from __future__ import annotations

from typing import Any

from .base import ChunkRewriter, Exchange, Provider


def _fix_finish(choices: list[dict[str, Any]] | None) -> None:
    for choice in choices or ():
        if choice.get("finish_reason") == "eos":
            choice["finish_reason"] = "stop"


class TogetherStream(ChunkRewriter):
    def fix_chunk(self, chunk: dict[str, Any]) -> list[dict[str, Any]]:
        _fix_finish(chunk.get("choices"))
        return super().fix_chunk(chunk)


class TogetherProvider(Provider):
    asks_stream_usage = False  # usage comes on the last chunk anyway, and its API lists no stream_options
    stream_rewriter = TogetherStream

    def fix_completion(self, data: dict[str, Any], exchange: Exchange) -> dict[str, Any]:
        _fix_finish(data.get("choices"))
        return data
