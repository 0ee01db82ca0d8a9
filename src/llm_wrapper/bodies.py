"""Request bodies: a JSON object, or a 400 that says what is wrong."""

from __future__ import annotations

from typing import Any

import orjson

from .errors import InvalidRequest


def json_object(raw: bytes) -> dict[str, Any]:
    try:
        body = orjson.loads(raw)
    except orjson.JSONDecodeError:
        raise InvalidRequest("The request body is not valid JSON.") from None
    if not isinstance(body, dict):
        raise InvalidRequest("The request body must be a JSON object.")
    return body
