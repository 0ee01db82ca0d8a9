"""SambaNova Cloud: OpenAI-compatible, but `created` is a float (OpenAI's is an integer)."""

from __future__ import annotations

from typing import Any

from .base import ChunkRewriter, Exchange, Provider


def _int_created(data: dict[str, Any]) -> dict[str, Any]:
    created = data.get("created")
    if isinstance(created, float):
        data["created"] = int(created)
    return data


class SambaNovaStream(ChunkRewriter):
    def fix_chunk(self, chunk: dict[str, Any]) -> list[dict[str, Any]]:
        return super().fix_chunk(_int_created(chunk))


class SambaNovaProvider(Provider):
    stream_rewriter = SambaNovaStream

    def fix_completion(self, data: dict[str, Any], exchange: Exchange) -> dict[str, Any]:
        return _int_created(data)
