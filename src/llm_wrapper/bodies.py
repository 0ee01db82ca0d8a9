"""Request bodies: read within a size bound (else 413), and a JSON object (else a 400 that says what is wrong)."""

from __future__ import annotations

from collections.abc import AsyncIterable
from typing import Any

import orjson

from .errors import InvalidRequest, PayloadTooLarge


def json_object(raw: bytes) -> dict[str, Any]:
    try:
        body = orjson.loads(raw)
    except orjson.JSONDecodeError:
        raise InvalidRequest("The request body is not valid JSON.") from None
    if not isinstance(body, dict):
        raise InvalidRequest("The request body must be a JSON object.")
    return body


async def read_body(chunks: AsyncIterable[bytes], content_length: str | None, limit: int) -> bytes:
    """The whole body, refusing (413) anything over `limit` bytes before reading it all."""
    if content_length is not None and content_length.isdigit() and int(content_length) > limit:
        raise PayloadTooLarge(f"The request body is larger than {limit} bytes.")
    parts: list[bytes] = []
    size = 0
    async for chunk in chunks:
        size += len(chunk)
        if size > limit:
            raise PayloadTooLarge(f"The request body is larger than {limit} bytes.")
        parts.append(chunk)
    return b"".join(parts)
