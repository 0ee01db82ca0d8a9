"""One chat request on its way through the gateway, and the chunk shapes every answer path shares."""

from __future__ import annotations

import time
import uuid
from dataclasses import dataclass, field
from typing import Any

import orjson


@dataclass(slots=True)
class Exchange:
    """One client request on its way through: what adapters may read and fill in."""

    model: str
    stream: bool
    include_usage: bool = False
    _id: str | None = None  # `id`, made when first asked for (most answers carry the provider's own)
    created: int = field(default_factory=lambda: int(time.time()))
    usage: dict[str, Any] | None = None
    prompt_chars: int = 0
    completion_chars: int = 0
    # The gateway asked upstream for the usage chunk the client did not ask for: keep it from the client.
    hide_usage: bool = False
    # Headers an adapter adds to the answer (e.g. to say a configured feature was skipped).
    headers: dict[str, str] = field(default_factory=dict)
    # The provider knows `model` by another name (`model_map`): the answer must show `model`.
    renamed: bool = False

    @property
    def id(self) -> str:
        """The completion id the gateway gives an answer that has none of its own."""
        if self._id is None:
            self._id = f"chatcmpl-{uuid.uuid4().hex}"
        return self._id

    @id.setter
    def id(self, value: str) -> None:
        self._id = value

    def again(self, model: str, renamed: bool) -> Exchange:
        """A fresh exchange for another attempt (maybe at another model): nothing the last one learnt."""
        return Exchange(model=model, stream=self.stream, include_usage=self.include_usage, renamed=renamed)


class StreamTranslator:
    """Turns upstream stream bytes into the bytes the client receives."""

    def feed(self, piece: bytes) -> bytes:
        raise NotImplementedError

    def end(self) -> bytes:
        """Bytes to send after the upstream closed normally, `[DONE]` included."""
        raise NotImplementedError


def chunk_shell(exchange: Exchange, choices: list[dict[str, Any]], **extra: Any) -> dict[str, Any]:
    """A `chat.completion.chunk` carrying this exchange's id, time and model."""
    return {
        "id": exchange.id,
        "object": "chat.completion.chunk",
        "created": exchange.created,
        "model": exchange.model,
        "choices": choices,
        **extra,
    }


def usage_chunk(exchange: Exchange, usage: dict[str, Any]) -> dict[str, Any]:
    return chunk_shell(exchange, [], usage=usage)


def estimated_usage(exchange: Exchange) -> dict[str, int]:
    """About four characters a token: for providers that report no usage at all."""
    prompt = max(1, exchange.prompt_chars // 4) if exchange.prompt_chars else 0
    completion = max(1, exchange.completion_chars // 4) if exchange.completion_chars else 0
    return {"prompt_tokens": prompt, "completion_tokens": completion, "total_tokens": prompt + completion}


def json_object_from(raw: bytes, what: str) -> dict[str, Any]:
    """`raw` parsed as a JSON object; else ValueError saying `what` (e.g. "the provider's answer") was garbage."""
    try:
        data = orjson.loads(raw)
    except orjson.JSONDecodeError:
        raise ValueError(f"{what} is not JSON") from None
    if not isinstance(data, dict):
        raise ValueError(f"{what} is not a JSON object")  # noqa: TRY004 (garbage, not a type error)
    return data
