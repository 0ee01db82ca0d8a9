"""Model allow-lists: a token may be limited to some models, by exact name or `*` pattern.

A list is stored as JSON text on the token and comes back with every admitted
request; it is compiled once per distinct text (a bounded cache), so checking
a model is a dict lookup and, with patterns, one regular-expression match.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from typing import Any

import orjson

MAX_MODELS = 100
MAX_NAME = 200
_compiled: dict[str, tuple[frozenset[str], re.Pattern[str] | None]] = {}
_CACHE_SIZE = 1024


class AllowListError(ValueError):
    """A `models` value that cannot be an allow-list."""


def check_models(value: Any) -> list[str] | None:
    """`value` (a list of names or patterns, or None for all models) checked; AllowListError if unusable."""
    if value is None:
        return None
    if not isinstance(value, list) or not value:
        raise AllowListError("must be a non-empty list of model names (or null for all models)")
    if len(value) > MAX_MODELS:
        raise AllowListError(f"may hold at most {MAX_MODELS} names")
    for name in value:
        if not isinstance(name, str) or not name.strip():
            raise AllowListError("every model name must be a non-empty string")
        if len(name) > MAX_NAME or "\x00" in name:
            raise AllowListError(f"a model name must be at most {MAX_NAME} characters, without NUL")
    return [name.strip() for name in value]


def split(text: str | None) -> list[str] | None:
    """A comma-separated list as the command line takes it (`--models a,b*`)."""
    return None if text is None else [part.strip() for part in text.split(",")]


def to_text(models: list[str] | None) -> str | None:
    return None if models is None else orjson.dumps(models).decode()


def from_text(text: str | None) -> list[str] | None:
    if text is None:
        return None
    try:
        value = orjson.loads(text)
    except orjson.JSONDecodeError:
        return []  # unreadable: allows nothing rather than everything
    return [m for m in value if isinstance(m, str)] if isinstance(value, list) else []


def allows(text: str | None, model: str) -> bool:
    """Whether the allow-list stored as `text` (None: every model) lets a request use `model`."""
    if text is None:
        return True
    compiled = _compiled.get(text)
    if compiled is None:
        compiled = _compile(from_text(text) or [])
        if len(_compiled) >= _CACHE_SIZE:
            _compiled.clear()
        _compiled[text] = compiled
    exact, pattern = compiled
    return model in exact or (pattern is not None and pattern.fullmatch(model) is not None)


def _compile(names: Iterable[str]) -> tuple[frozenset[str], re.Pattern[str] | None]:
    names = list(names)
    patterns = [".*".join(re.escape(part) for part in n.split("*")) for n in names if "*" in n]
    return frozenset(n for n in names if "*" not in n), re.compile("|".join(patterns)) if patterns else None
