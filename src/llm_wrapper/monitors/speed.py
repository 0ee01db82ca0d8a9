"""The `speed` update answer: "any updates?" is answered from the user's monitor events.

One of the gateway's answerers (registered where the app is assembled). For model `speed` whose last user message
contains an update keyword (whole words or phrases, any case), it claims the
user's fetched, undelivered event groups atomically (so two concurrent
questions never both get one), and answers with each event's date, text and
sources as a `chat.completion`, or as SSE chunks ending in `[DONE]` when
`stream` is true. Nothing new: a short answer saying so, and since when. Any
other `speed` question returns None and goes to Parallel's chat API.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from datetime import datetime
from typing import TYPE_CHECKING, Any

import orjson
from starlette.responses import Response

from ..exchange import Exchange, chunk_shell, estimated_usage, usage_chunk
from ..sse import DONE, encode
from .records import EventGroup

if TYPE_CHECKING:
    from ..tokens import Grant
    from .service import MonitorService

MODEL = "speed"


def keyword_pattern(keywords: Iterable[str]) -> re.Pattern[str] | None:
    """One regex matching any keyword as a whole word or phrase (any spacing, any case)."""
    parts = [r"\s+".join(re.escape(word) for word in k.split()) for k in keywords if k.strip()]
    if not parts:
        return None
    return re.compile(r"(?<!\w)(?:" + "|".join(sorted(parts, key=len, reverse=True)) + r")(?!\w)", re.IGNORECASE)


def last_user_text(body: dict[str, Any]) -> str:
    for message in reversed(body.get("messages") or ()):
        if isinstance(message, dict) and message.get("role") == "user":
            content = message.get("content")
            if isinstance(content, list):
                content = " ".join(p["text"] for p in content if isinstance(p, dict) and isinstance(p.get("text"), str))
            return str(content or "").replace("\u2019", "'")
    return ""


class SpeedUpdates:
    """The gateway's `Answerer` for `speed`: `(body, grant, exchange) -> Response | None`."""

    models: tuple[str, ...] = (MODEL,)
    title = "Monitor updates"

    def __init__(self, service: MonitorService, keywords: Iterable[str]) -> None:
        self.service = service
        self.pattern = keyword_pattern(keywords)

    def wants_updates(self, body: dict[str, Any]) -> bool:
        return body.get("model") == MODEL and self.pattern is not None and bool(self.pattern.search(last_user_text(body)))

    async def __call__(self, body: dict[str, Any], grant: Grant, exchange: Exchange) -> Response | None:
        if not self.wants_updates(body):
            return None
        text = await self.answer(grant.username)
        exchange.prompt_chars = sum(
            len(m["content"]) for m in body.get("messages") or () if isinstance(m, dict) and isinstance(m.get("content"), str)
        )
        exchange.completion_chars = len(text)
        exchange.usage = estimated_usage(exchange)
        if exchange.stream:
            return Response(stream_body(exchange, text), media_type="text/event-stream",
                            headers={"Cache-Control": "no-cache"})
        return Response(orjson.dumps(completion(exchange, text)), media_type="application/json")

    async def answer(self, username: str) -> str:
        """The answer text; claims (marks processed) exactly the event groups it reports."""
        store = self.service.store
        groups = await store.claim_updates(username, self.service.clock())
        if groups:
            monitors = {m.monitor_id: m for m in await store.list_monitors(username)}
            return format_updates(groups, {k: m.query for k, m in monitors.items()})
        since = await store.last_processed_at(username)
        if since is None:
            monitor = await self.service.active_monitor(username)
            if monitor is None:
                return (
                    "No new updates: you have no active monitor. Create one on the create-monitor page "
                    "or with `llm-wrapper monitors create`."
                )
            since = monitor.created_at
        return f"No new updates since {_when(since)}."


def format_updates(groups: list[EventGroup], queries: dict[str, str]) -> str:
    count = sum(len(g.events) for g in groups)
    topics = list(dict.fromkeys(queries[g.monitor_id] for g in groups if g.monitor_id in queries))
    about = f" on “{'”, “'.join(topics)}”" if topics else ""
    lines = [f"{count} new update{'s' if count != 1 else ''}{about}:"]
    for group in groups:
        for event in group.events:
            body = event.get("text")
            if body is None:
                body = orjson.dumps(event.get("json"), option=orjson.OPT_INDENT_2).decode()
            date = event.get("event_date") or (group.fetched_at and group.fetched_at.date().isoformat())
            lines.append("")
            lines.append(f"**{date}**: {body}" if date else body)
            urls = event.get("source_urls") or []
            if urls:
                lines.append("Sources: " + ", ".join(urls))
    return "\n".join(lines)


def _when(moment: datetime) -> str:
    return moment.strftime("%Y-%m-%d %H:%M UTC")


def completion(exchange: Exchange, text: str) -> dict[str, Any]:
    return {
        "id": exchange.id,
        "object": "chat.completion",
        "created": exchange.created,
        "model": exchange.model,
        "choices": [{"index": 0, "message": {"role": "assistant", "content": text}, "logprobs": None, "finish_reason": "stop"}],
        "usage": exchange.usage,
    }


def stream_body(exchange: Exchange, text: str) -> bytes:
    chunks = [
        chunk_shell(exchange, [{"index": 0, "delta": {"role": "assistant", "content": ""}, "finish_reason": None}]),
        *(
            chunk_shell(exchange, [{"index": 0, "delta": {"content": piece}, "finish_reason": None}])
            for piece in re.split(r"(?<=\n\n)", text) if piece
        ),
        chunk_shell(exchange, [{"index": 0, "delta": {}, "finish_reason": "stop"}]),
    ]
    if exchange.include_usage and exchange.usage:
        chunks.append(usage_chunk(exchange, exchange.usage))
    return b"".join(encode(c) for c in chunks) + DONE
