"""A fake xAI: Chat Completions, and the Responses API with its search tools, as xAI answers them.

Like the real service since Live Search was removed, it answers HTTP 410 when
`search_parameters` reaches `/chat/completions` or `/responses`. `/responses`
answers in the Responses wire format recorded in tests/fixtures/xai/: `responses.json`
(`output` items: a `reasoning` summary, a `web_search_call`, then a `message` whose `output_text` carries
`url_citation` annotations; top-level `citations`; `usage` in input/output tokens) and,
streamed, `responses_stream.json` as `event:`/`data:` SSE ending with `response.completed`.
A prompt containing FAIL_MIDSTREAM gets some text and then the recorded `error` event.
Every request body is kept in `requests`.
"""

from __future__ import annotations

import json
from typing import Any

from aiohttp import web

from .providers import FIXTURES, fill

GONE = {
    "error": "Live search is deprecated. Please switch to the Agent Tools API: "
    "https://docs.x.ai/docs/guides/tools/overview"
}
ANSWER = ["Grok ", "read ", "the ", "news."]
RESPONSE = json.loads((FIXTURES / "xai" / "responses.json").read_text())
STREAM = json.loads((FIXTURES / "xai" / "responses_stream.json").read_text())
CITATIONS = RESPONSE["citations"]
MESSAGE = next(item for item in RESPONSE["output"] if item["type"] == "message")
ANNOTATED = MESSAGE["content"][0]["annotations"][1]["url"]
REASONING = next(item for item in RESPONSE["output"] if item["type"] == "reasoning")["summary"][0]["text"]
USAGE = RESPONSE["usage"]
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
    values = {"model": body["model"], "text": text, "tools": body.get("tools"), "store": body.get("store", True)}
    return fill(RESPONSE, values)


def stream_events(body: dict[str, Any]) -> list[dict[str, Any]]:
    values: dict[str, Any] = {"model": body["model"]}
    events = fill(STREAM["head"], values) + [fill(STREAM["piece"], {"piece": piece}) for piece in ANSWER]
    if FAIL in json.dumps(body.get("input")):
        return [*events, STREAM["failure"]]
    return events + fill(STREAM["tail"], {"response": response_object(body, "".join(ANSWER))})
