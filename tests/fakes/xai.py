"""A fake xAI: Chat Completions, and the Responses API with its search tools, as xAI answers them.

Like the real service since Live Search was removed, it answers HTTP 410 when
`search_parameters` reaches `/chat/completions` or `/responses`. `/responses`
answers in the Responses wire format: `output` items (a `web_search_call`, then
a `message` whose `output_text` carries `url_citation` annotations), top-level
`citations` and `usage` in input/output tokens; streamed, as `event:`/`data:`
SSE ending with `response.completed`. A prompt containing FAIL_MIDSTREAM gets
some text and then an `error` event. Every request body is kept in `requests`.
"""

from __future__ import annotations

import json
from typing import Any

from aiohttp import web

GONE = {
    "error": "Live search is deprecated. Please switch to the Agent Tools API: "
    "https://docs.x.ai/docs/guides/tools/overview"
}
ANSWER = ["Grok ", "read ", "the ", "news."]
CITATIONS = ["https://news.example.com/story", "https://x.com/i/status/1"]
ANNOTATED = "https://news.example.com/annotated"
USAGE = {
    "input_tokens": 12,
    "input_tokens_details": {"cached_tokens": 2},
    "output_tokens": 4,
    "output_tokens_details": {"reasoning_tokens": 1},
    "total_tokens": 16,
    "num_sources_used": 0,
    "num_server_side_tools_used": 1,
}
FAIL = "FAIL_MIDSTREAM"


class FakeXAI:
    def __init__(self) -> None:
        self.requests: list[tuple[str, dict[str, Any]]] = []
        self.app = web.Application()
        self.app.router.add_post("/v1/chat/completions", self.chat)
        self.app.router.add_post("/v1/responses", self.responses)

    def bodies(self, path: str) -> list[dict[str, Any]]:
        return [body for seen, body in self.requests if seen == path]

    async def _read(self, request: web.Request) -> dict[str, Any] | web.Response:
        body = await request.json()
        self.requests.append((request.path, body))
        if request.headers.get("Authorization") != "Bearer xai-test-key":
            return web.json_response({"error": "bad key"}, status=401)
        if "search_parameters" in body:
            return web.json_response(GONE, status=410)
        return body

    async def chat(self, request: web.Request) -> web.StreamResponse:
        body = await self._read(request)
        if isinstance(body, web.Response):
            return body
        return web.json_response(
            {
                "id": "xai-chat-1",
                "object": "chat.completion",
                "created": 1_700_000_000,
                "model": body["model"],
                "choices": [
                    {
                        "index": 0,
                        "message": {"role": "assistant", "content": "plain answer"},
                        "finish_reason": "stop",
                    }
                ],
                "usage": {"prompt_tokens": 3, "completion_tokens": 2, "total_tokens": 5},
            }
        )

    async def responses(self, request: web.Request) -> web.StreamResponse:
        body = await self._read(request)
        if isinstance(body, web.Response):
            return body
        if not body.get("stream"):
            return web.json_response(response_object(body, "".join(ANSWER)))
        stream = web.StreamResponse(headers={"Content-Type": "text/event-stream"})
        await stream.prepare(request)
        for event in stream_events(body):
            name = event["type"]
            await stream.write(f"event: {name}\ndata: {json.dumps(event)}\n\n".encode())
        await stream.write_eof()
        return stream


def response_object(body: dict[str, Any], text: str) -> dict[str, Any]:
    msg = "msg_fake_1"
    return {
        "id": "resp_fake_1",
        "object": "response",
        "created_at": 1_700_000_000,
        "model": body["model"],
        "status": "completed",
        "output": [
            {
                "type": "web_search_call",
                "id": "ws_fake_1",
                "name": "web_search",
                "arguments": '{"query":"news"}',
                "call_id": "",
                "status": "completed",
            },
            {
                "type": "message",
                "id": msg,
                "role": "assistant",
                "status": "completed",
                "content": [
                    {
                        "type": "output_text",
                        "text": text,
                        "logprobs": [],
                        "annotations": [
                            {"type": "url_citation", "url": CITATIONS[0], "title": "1"},
                            {"type": "url_citation", "url": ANNOTATED, "title": "2"},
                        ],
                    }
                ],
            },
        ],
        "citations": CITATIONS,
        "tools": body.get("tools"),
        "usage": USAGE,
        "store": body.get("store", True),
    }


def stream_events(body: dict[str, Any]) -> list[dict[str, Any]]:
    msg = "msg_fake_1"
    shell = {"id": "resp_fake_1", "object": "response", "model": body["model"], "output": []}
    events: list[dict[str, Any]] = [
        {"type": "response.created", "response": {**shell, "status": "in_progress"}},
        {"type": "response.in_progress", "response": {**shell, "status": "in_progress"}},
        {"type": "response.web_search_call.searching", "item_id": "ws_fake_1", "output_index": 0},
        {
            "type": "response.output_item.added",
            "output_index": 1,
            "item": {
                "type": "message",
                "id": msg,
                "role": "assistant",
                "content": [],
                "status": "in_progress",
            },
        },
    ]
    for piece in ANSWER:
        events.append(
            {
                "type": "response.output_text.delta",
                "item_id": msg,
                "output_index": 1,
                "content_index": 0,
                "delta": piece,
            }
        )
    prompt = json.dumps(body.get("input"))
    if FAIL in prompt:
        events.append(
            {
                "type": "error",
                "code": "upstream_overloaded",
                "message": "search backend overloaded",
                "param": None,
            }
        )
        return events
    events.append(
        {
            "type": "response.output_text.annotation.added",
            "item_id": msg,
            "output_index": 1,
            "content_index": 0,
            "annotation_index": 0,
            "annotation": {"type": "url_citation", "url": ANNOTATED},
        }
    )
    events.append(
        {"type": "response.completed", "response": response_object(body, "".join(ANSWER))}
    )
    return events
