"""A fake OpenAI-compatible provider whose every answer is scripted, per deployment.

Each deployment is a path prefix: `{url}/{name}/v1` is deployment `name`'s base URL.
`script(name, *steps)` queues what its next requests get; with nothing queued a
request is answered normally (JSON, or a three-chunk stream when `stream` is true).
A refused connection is not scripted here: point a deployment at a closed port.

Steps:
    OK                      the normal answer
    Status(503, "2")        that status with an OpenAI error body (and `Retry-After`)
    Slow(12)                wait that long before the headers (the wait ends early when the
                            caller closes the connection; `closed_early` records when)
    BREAK_AFTER_FIRST       stream: the first chunk, then the connection is cut
    BREAK_BEFORE_FIRST      stream: the headers, then the connection is cut before any chunk

`calls` lists (deployment, model asked for, stream) for every request received.
"""

from __future__ import annotations

import asyncio
import time
from collections import defaultdict, deque
from dataclasses import dataclass
from typing import Any

import orjson
from aiohttp import web

OK = "ok"
BREAK_AFTER_FIRST = "break-after-first"
BREAK_BEFORE_FIRST = "break-before-first"


@dataclass(frozen=True)
class Status:
    code: int
    retry_after: str | None = None


@dataclass(frozen=True)
class Slow:
    seconds: float


class ScriptedProvider:
    def __init__(self) -> None:
        self.url = ""
        self.steps: dict[str, deque[Any]] = defaultdict(deque)
        self.calls: list[tuple[str, str, bool]] = []
        self.closed_early: list[float] = []  # seconds into a Slow wait at which the caller hung up

    def script(self, name: str, *steps: Any) -> None:
        self.steps[name].extend(steps)

    def base_url(self, name: str) -> str:
        return f"{self.url}/{name}/v1"

    def count(self, name: str) -> int:
        return sum(1 for deployment, _, _ in self.calls if deployment == name)

    def app(self) -> web.Application:
        app = web.Application()
        app.router.add_post("/{name}/v1/chat/completions", self.chat)
        return app

    async def chat(self, request: web.Request) -> web.StreamResponse:
        name = request.match_info["name"]
        body = await request.json()
        stream = body.get("stream") is True
        self.calls.append((name, body["model"], stream))
        step = self.steps[name].popleft() if self.steps[name] else OK
        if isinstance(step, Status):
            headers = {"Retry-After": step.retry_after} if step.retry_after else {}
            error = {"error": {"message": f"{name} says {step.code}", "type": "server_error", "param": None,
                               "code": None}}
            return web.json_response(error, status=step.code, headers=headers)
        if isinstance(step, Slow):
            started = time.monotonic()
            while time.monotonic() - started < step.seconds:
                if request.transport is None or request.transport.is_closing():
                    self.closed_early.append(time.monotonic() - started)
                    raise asyncio.CancelledError
                await asyncio.sleep(0.02)
        if not stream:
            return web.json_response(completion(name, body["model"]))
        response = web.StreamResponse(headers={"Content-Type": "text/event-stream"})
        await response.prepare(request)
        if step == BREAK_BEFORE_FIRST:
            assert request.transport is not None
            request.transport.close()
            return response
        for i, chunk in enumerate(chunks(name, body["model"])):
            await response.write(b"data: " + orjson.dumps(chunk) + b"\n\n")
            if step == BREAK_AFTER_FIRST and i == 0:
                await asyncio.sleep(0.05)
                assert request.transport is not None
                request.transport.close()
                return response
        await response.write(b"data: [DONE]\n\n")
        await response.write_eof()
        return response


def completion(name: str, model: str) -> dict[str, Any]:
    return {
        "id": f"chatcmpl-{name}", "object": "chat.completion", "created": 1700000000, "model": model,
        "choices": [{"index": 0, "message": {"role": "assistant", "content": f"hello from {name}"},
                     "finish_reason": "stop"}],
        "usage": {"prompt_tokens": 3, "completion_tokens": 3, "total_tokens": 6},
    }


def chunks(name: str, model: str) -> list[dict[str, Any]]:
    shell = {"id": f"chatcmpl-{name}", "object": "chat.completion.chunk", "created": 1700000000, "model": model}
    return [
        {**shell, "choices": [{"index": 0, "delta": {"role": "assistant", "content": "hello "}, "finish_reason": None}]},
        {**shell, "choices": [{"index": 0, "delta": {"content": f"from {name}"}, "finish_reason": None}]},
        {**shell, "choices": [{"index": 0, "delta": {}, "finish_reason": "stop"}],
         "usage": {"prompt_tokens": 3, "completion_tokens": 3, "total_tokens": 6}},
    ]
