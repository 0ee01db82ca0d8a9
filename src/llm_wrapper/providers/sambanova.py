"""SambaNova Cloud: OpenAI-compatible, but `created` is a float (OpenAI's is an integer)."""

from __future__ import annotations

from typing import Any

from .base import Exchange, Provider


def _int_created(data: dict[str, Any]) -> dict[str, Any]:
    created = data.get("created")
    if isinstance(created, float):
        data["created"] = int(created)
    return data


class SambaNovaProvider(Provider):
    rewrites_stream = True
    rewrites_response = True

    def fix_completion(self, data: dict[str, Any], exchange: Exchange) -> dict[str, Any]:
        return _int_created(data)

    def fix_chunk(self, chunk: dict[str, Any], exchange: Exchange) -> list[dict[str, Any]]:
        return super().fix_chunk(_int_created(chunk), exchange)
