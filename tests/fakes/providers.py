"""A fake of every chat provider, speaking each one's own wire format.

`POST /{flavor}/chat/completions` for the flavors openai, xai (plain OpenAI),
perplexity, sambanova, together and parallel, non-streaming and SSE:

- perplexity: chunks carry the text so far in `message` beside `delta`, a
  cumulative `usage`, and `citations`/`search_results` on every chunk;
- sambanova: `created` is a float; with `include_usage`, a usage-only chunk
  with `choices: []` and SambaNova's extra usage keys;
- together: `finish_reason: "eos"`, `token_id` in deltas, usage on the last
  content chunk and null before it;
- parallel: empty `id`, `object`, `model`, `finish_reason` and usage, plus
  `basis` and `interaction_id`; no `[DONE]`.

The last user message chooses a behaviour by its first word (anything else is
a normal answer: `Hello from <flavor>: <the message>`, in pieces):

    fail:NNN   that status, with an error body in the provider's shape
    slow       sleep `SLOW_SECONDS` before answering (past the gateway's timeout)
    stall      stream two chunks, then sleep `SLOW_SECONDS`
    cut        stream two chunks and half of a third, then drop the connection
               (non-streaming: a body shorter than its Content-Length)
    badjson    200 with a body that is not JSON (streaming: one event that is not JSON)
    whole      answer a stream request with one JSON completion, as if `stream` were false
    error      stream one chunk, then a `data: {"error": ...}` event
    long       stream a chunk every 50 ms for `LONG_SECONDS`; `stream_ends[message]`
               says whether it "completed" or saw the client go away ("gone")

Every request is recorded in `requests` (path, flavor, headers, body).
"""

from __future__ import annotations

import asyncio
import json
from dataclasses import dataclass, field
from typing import Any

from aiohttp import web

FLAVORS = ("openai", "xai", "perplexity", "sambanova", "together", "parallel")
SLOW_SECONDS = 6.0
LONG_SECONDS = 15.0
CREATED = 1_760_000_000
CITATIONS = ["https://example.org/a", "https://example.org/b"]
SEARCH_RESULTS = [
    {"title": "A", "url": "https://example.org/a", "date": "2026-01-01", "snippet": "first"},
    {"title": "B", "url": "https://example.org/b", "date": None, "snippet": "second"},
]
BASIS = [
    {
        "field": "content",
        "citations": [{"url": "https://example.org/p", "title": "P", "excerpts": ["x"]}],
        "reasoning": "because",
        "confidence": "high",
    }
]
INTERACTION_ID = "pi_fake_interaction"


@dataclass
class Received:
    flavor: str
    path: str
    headers: dict[str, str]
    body: Any
    raw: bytes

    @property
    def text(self) -> str:
        return last_user_text(self.body)


@dataclass
class FakeProviders:
    requests: list[Received] = field(default_factory=list)
    stream_ends: dict[str, str] = field(default_factory=dict)

    def app(self) -> web.Application:
        app = web.Application()
        app.router.add_post("/{flavor}/chat/completions", self.chat)
        return app

    def received(self, marker: str) -> list[Received]:
        """The requests whose last user message contains `marker`."""
        return [r for r in list(self.requests) if marker in r.text]

    def one(self, marker: str) -> Received:
        found = self.received(marker)
        assert len(found) == 1, f"expected one request with {marker!r}, got {len(found)}"
        return found[0]

    async def chat(self, request: web.Request) -> web.StreamResponse:
        flavor = request.match_info["flavor"]
        if flavor not in FLAVORS:
            raise web.HTTPNotFound()
        raw = await request.read()
        try:
            body = json.loads(raw)
        except ValueError:
            body = None
        self.requests.append(Received(flavor, request.path, dict(request.headers), body, raw))
        text = last_user_text(body)
        command = text.split(" ", 1)[0] if text else ""
        stream = isinstance(body, dict) and body.get("stream") is True
        model = body.get("model", "") if isinstance(body, dict) else ""
        if command.startswith("fail:"):
            return error_response(flavor, int(command[5:]))
        if command == "slow":
            await pause(request, SLOW_SECONDS)
        reply = Reply(flavor, model, f"Hello from {flavor}: {text}")
        if not stream or command == "whole":
            return await self._complete(request, reply, command)
        options = body.get("stream_options") or {}
        return await self._stream(request, reply, command, options.get("include_usage") is True, text)

    async def _complete(self, request: web.Request, reply: Reply, command: str) -> web.StreamResponse:
        if command == "badjson":
            return web.Response(text="<html>upstream proxy error</html>", content_type="application/json")
        data = json.dumps(reply.completion()).encode()
        if command == "cut":
            response = web.StreamResponse(headers={"Content-Type": "application/json"})
            response.content_length = len(data)
            await response.prepare(request)
            await response.write(data[: len(data) // 2])
            request.transport.close()
            return response
        return web.Response(body=data, content_type="application/json")

    async def _stream(
        self, request: web.Request, reply: Reply, command: str, include_usage: bool, text: str
    ) -> web.StreamResponse:
        response = web.StreamResponse(headers={"Content-Type": "text/event-stream"})
        await response.prepare(request)
        events = [b"data: " + json.dumps(c).encode() + b"\n\n" for c in reply.chunks(include_usage)]
        if reply.flavor != "parallel":
            events.append(b"data: [DONE]\n\n")
        if command in ("cut", "stall", "error", "badjson"):
            for event in events[:2]:
                await response.write(event)
            await asyncio.sleep(0.05)
            if command == "cut":
                await response.write(events[2][: len(events[2]) // 2])
                await asyncio.sleep(0.05)
                request.transport.close()
                return response
            if command == "stall":
                await pause(request, SLOW_SECONDS)
            elif command == "error":
                failure = {"error": {"message": "fake upstream broke", "type": "server_error", "code": None}}
                await response.write(b"data: " + json.dumps(failure).encode() + b"\n\n")
                return response
            elif command == "badjson":
                await response.write(b"data: {this is not json\n\n")
                await response.write(b"data: [DONE]\n\n")
                return response
        if command == "long":
            return await self._long(request, response, reply, text)
        for event in events:
            await response.write(event)
        await response.write_eof()
        return response

    async def _long(
        self, request: web.Request, response: web.StreamResponse, reply: Reply, text: str
    ) -> web.StreamResponse:
        loop = asyncio.get_running_loop()
        deadline = loop.time() + LONG_SECONDS
        chunk = reply.chunks(False)[0]
        try:
            while loop.time() < deadline:
                await response.write(b"data: " + json.dumps(chunk).encode() + b"\n\n")
                await asyncio.sleep(0.05)
        except (ConnectionError, asyncio.CancelledError):
            self.stream_ends[text] = "gone"
            raise
        self.stream_ends[text] = "completed"
        await response.write_eof()
        return response


async def pause(request: web.Request, seconds: float) -> None:
    """Sleep, but stop as soon as the client hangs up (so no handler outlives the test)."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + seconds
    while loop.time() < deadline:
        if request.transport is None or request.transport.is_closing():
            return
        await asyncio.sleep(0.05)


def last_user_text(body: Any) -> str:
    if not isinstance(body, dict) or not isinstance(body.get("messages"), list):
        return ""
    for message in reversed(body["messages"]):
        if isinstance(message, dict) and message.get("role") == "user":
            content = message.get("content")
            if isinstance(content, list):
                return " ".join(p.get("text", "") for p in content if isinstance(p, dict))
            return content if isinstance(content, str) else ""
    return ""


def split_reply(text: str) -> list[str]:
    """The answer in at least four pieces, so streams have several content chunks."""
    words = text.split(" ")
    pieces = [w + " " for w in words[:-1]] + [words[-1]]
    while len(pieces) < 4:
        pieces.append(".")
    return pieces


def error_response(flavor: str, status: int) -> web.Response:
    message = f"fake {flavor} says {status}"
    if flavor == "parallel":
        body: dict[str, Any] = {"type": "error", "error": {"ref_id": "ref_fake", "message": message}}
    else:
        kind = {400: "invalid_request_error", 429: "rate_limit_exceeded"}.get(status, "server_error")
        body = {"error": {"message": message, "type": kind, "param": None, "code": f"fake_{status}"}}
    headers = {"Retry-After": "7"} if status == 429 else None
    return web.json_response(body, status=status, headers=headers)


@dataclass
class Reply:
    """One answer, rendered in a provider's shapes."""

    flavor: str
    model: str
    text: str
    prompt_tokens: int = 11

    @property
    def pieces(self) -> list[str]:
        return split_reply(self.text)

    def usage(self, completion_tokens: int) -> dict[str, Any]:
        usage: dict[str, Any] = {
            "prompt_tokens": self.prompt_tokens,
            "completion_tokens": completion_tokens,
            "total_tokens": self.prompt_tokens + completion_tokens,
        }
        if self.flavor == "perplexity":
            usage |= {"citation_tokens": 3, "num_search_queries": 1, "search_context_size": "low"}
        elif self.flavor == "sambanova":
            usage |= {"time_to_first_token": 0.01, "total_latency": 0.2, "is_last_response": True}
        return usage

    def completion(self) -> dict[str, Any]:
        message = {"role": "assistant", "content": self.text}
        if self.flavor == "parallel":
            return {
                "id": "", "object": "", "created": CREATED, "model": "",
                "choices": [{"index": 0, "message": message, "finish_reason": None}],
                "usage": {"prompt_tokens": 0, "completion_tokens": 0, "total_tokens": 0},
                "basis": BASIS, "interaction_id": INTERACTION_ID,
            }
        data: dict[str, Any] = {
            "id": f"{self.flavor}-cmpl-1", "object": "chat.completion", "created": CREATED,
            "model": self.model,
            "choices": [{"index": 0, "message": message, "logprobs": None, "finish_reason": "stop"}],
            "usage": self.usage(len(self.pieces)),
        }
        if self.flavor == "perplexity":
            data |= {"citations": CITATIONS, "search_results": SEARCH_RESULTS}
        elif self.flavor == "sambanova":
            data |= {"created": CREATED + 0.625, "system_fingerprint": "fastcoe"}
        elif self.flavor == "together":
            data["choices"][0]["finish_reason"] = "eos"
            data |= {"prompt": [], "warnings": []}
        return data

    def chunks(self, include_usage: bool) -> list[dict[str, Any]]:
        return getattr(self, f"_chunks_{self.flavor}", self._chunks_openai)(include_usage)

    def _shell(self, choices: list[dict[str, Any]], **extra: Any) -> dict[str, Any]:
        return {
            "id": f"{self.flavor}-chunk-1", "object": "chat.completion.chunk", "created": CREATED,
            "model": self.model, "choices": choices, **extra,
        }

    def _chunks_openai(self, include_usage: bool) -> list[dict[str, Any]]:
        null_usage = {"usage": None} if include_usage else {}
        deltas = [{"role": "assistant", "content": ""}] + [{"content": p} for p in self.pieces]
        chunks = [
            self._shell([{"index": 0, "delta": d, "logprobs": None, "finish_reason": None}], **null_usage)
            for d in deltas
        ]
        chunks.append(self._shell([{"index": 0, "delta": {}, "logprobs": None, "finish_reason": "stop"}], **null_usage))
        if include_usage:
            chunks.append(self._shell([], usage=self.usage(len(self.pieces))))
        return chunks

    def _chunks_perplexity(self, include_usage: bool) -> list[dict[str, Any]]:
        chunks, so_far = [], ""
        pieces = self.pieces
        for n, piece in enumerate(pieces, 1):
            so_far += piece
            choice = {
                "index": 0,
                "delta": {"role": "assistant", "content": piece},
                "message": {"role": "assistant", "content": so_far},
                "finish_reason": "stop" if n == len(pieces) else None,
            }
            chunks.append(self._shell(
                [choice], usage=self.usage(n), citations=CITATIONS, search_results=SEARCH_RESULTS
            ))
        return chunks

    def _chunks_sambanova(self, include_usage: bool) -> list[dict[str, Any]]:
        chunks = self._chunks_openai(include_usage)
        for chunk in chunks:
            chunk["created"] = CREATED + 0.625
            chunk["system_fingerprint"] = "fastcoe"
            if chunk["choices"]:
                chunk.pop("usage", None)
        return chunks

    def _chunks_together(self, include_usage: bool) -> list[dict[str, Any]]:
        pieces = self.pieces
        chunks = []
        for n, piece in enumerate(pieces, 1):
            last = n == len(pieces)
            choice = {
                "index": 0,
                "delta": {"token_id": 100 + n, "role": "assistant", "content": piece},
                "logprobs": None,
                "finish_reason": "eos" if last else None,
            }
            chunks.append(self._shell([choice], usage=self.usage(n) if last else None))
        return chunks

    def _chunks_parallel(self, include_usage: bool) -> list[dict[str, Any]]:
        return [
            {
                "id": "", "object": "", "created": CREATED, "model": "",
                "choices": [{"index": 0, "delta": {"role": "assistant", "content": p}, "finish_reason": None}],
                "usage": None, "basis": [], "interaction_id": INTERACTION_ID,
            }
            for p in self.pieces
        ]
