"""A fake of every chat provider, speaking each one's wire format as recorded in its folder
`tests/fixtures/<flavor>/` (a flavor is a folder with these files; `POST /{flavor}/chat/completions`
serves it, non-streaming and SSE):

    completion.json   the non-streaming answer
    chunks.json       the stream: the `head` chunks, one `piece` chunk per piece of the answer
                      (`last_piece`, when given, for the last one), the `tail` chunks, the
                      `usage` chunk (sent only when the request asks for
                      `stream_options.include_usage`), and `done`: whether `data: [DONE]` ends it
    error.json        the body of an error answer

String values may hold placeholders, filled in by `fill`: a value that is exactly `"{name}"`
becomes the value itself (so a count stays a number); otherwise `{name}` is replaced in the text.

    {model}                  the model the request named
    {text}                   the whole answer
    {piece} {so_far} {n}     in a piece chunk: its piece, the answer up to it, its number (from 1)
    {completion_tokens}      the pieces so far (the whole answer's, outside a piece chunk)
    {total_tokens}           PROMPT_TOKENS + completion_tokens
    {message} {type} {status}  in error.json: the fake's message, OpenAI's error type, the status

The last user message chooses a behaviour by its first word (anything else is
a normal answer: `Hello from <flavor>: <the message>`, in pieces):

    fail:NNN   that status, with an error body in the provider's shape
    slow       sleep `SLOW_SECONDS` before answering (past the gateway's timeout)
    stall      stream two chunks, then sleep `SLOW_SECONDS`
    cut        stream two chunks and half of a third, then drop the connection
               (non-streaming: a body shorter than its Content-Length)
    badjson    200 with a body that is not JSON (streaming: one event that is not JSON)
    whole      answer a stream request with one JSON completion, as if `stream` were false
    tool       when the request has `tools` and its last message is not a `tool` result: call the
               first tool with `TOOL_ARGUMENTS` (in OpenAI's shape, whatever the flavor)
    error      stream two chunks, then a `data: {"error": ...}` event
    long       stream a chunk every 50 ms for `LONG_SECONDS`; `stream_ends[message]`
               says whether it "completed" or saw the client go away ("gone")

`POST /{flavor}/responses` answers as OpenAI's Responses API does (for a provider that speaks it):
a `response` object with the fake's own `resp_fake…` id whose text is the chat answer's, echoing
`instructions`, `tools`, `text`, `store` and `previous_response_id`, or, streamed, the events of
one output text message ending with `response.completed`; usage `PROMPT_TOKENS` in and one token
per piece out (`fail:NNN` fails like chat's, and `long` streams like chat's; `cut` streams the
head and one delta, then drops the connection).

`POST /{flavor}/embeddings` answers OpenAI's embeddings shape: one vector of `EMBEDDING_SIZE` per
input (the n-th all 0.25 n; base64 when asked), `EMBEDDING_TOKENS` prompt tokens per input (an input `fail:NNN` fails like chat's).

Every request is recorded in `requests` (path, flavor, headers, body).
"""

from __future__ import annotations

import asyncio
import base64
import functools
import json
import re
import struct
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from aiohttp import web

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures"
PARTS = ("completion.json", "chunks.json", "error.json")
FLAVORS = tuple(sorted(path.parent.name for path in FIXTURES.glob("*/completion.json")))
SLOW_SECONDS = 6.0
LONG_SECONDS = 15.0
PROMPT_TOKENS = 11
TOOL_ARGUMENTS = {"city": "Paris"}
EMBEDDING_SIZE = 4
EMBEDDING_TOKENS = 3
DONE = b"data: [DONE]\n\n"


@dataclass(frozen=True)
class Recorded:
    """One provider's wire shapes, as recorded in `tests/fixtures/<flavor>/`."""

    completion: dict[str, Any]
    chunks: dict[str, Any]
    error: dict[str, Any]


@functools.cache
def recorded(flavor: str) -> Recorded:
    folder = FIXTURES / flavor
    return Recorded(*(json.loads((folder / part).read_text()) for part in PARTS))


def fill(template: Any, values: dict[str, Any]) -> Any:
    """The template with its `{name}` placeholders filled in from `values` (in one pass)."""
    if isinstance(template, dict):
        return {key: fill(value, values) for key, value in template.items()}
    if isinstance(template, list):
        return [fill(value, values) for value in template]
    if not isinstance(template, str):
        return template
    whole = re.fullmatch(r"\{(\w+)\}", template)
    if whole and whole[1] in values:
        return values[whole[1]]
    return re.sub(r"\{(\w+)\}", lambda m: str(values[m[1]]) if m[1] in values else m[0], template)


# What the tests compare answers with, as the recordings have them.
CITATIONS = recorded("perplexity").completion["citations"]
SEARCH_RESULTS = recorded("perplexity").completion["search_results"]
BASIS = recorded("parallel").completion["basis"]
INTERACTION_ID = recorded("parallel").completion["interaction_id"]


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
    url: str = ""  # where it listens, once started
    requests: list[Received] = field(default_factory=list)
    stream_ends: dict[str, str] = field(default_factory=dict)

    def app(self) -> web.Application:
        app = web.Application()
        app.router.add_post("/{flavor}/chat/completions", self.chat)
        app.router.add_post("/{flavor}/embeddings", self.embeddings)
        app.router.add_post("/{flavor}/responses", self.responses)
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
        if command == "tool" and body.get("tools") and body["messages"][-1].get("role") != "tool":
            return await tool_call(request, body, stream)
        reply = Reply(flavor, model, f"Hello from {flavor}: {text}")
        if not stream or command == "whole":
            return await self._complete(request, reply, command)
        options = body.get("stream_options") or {}
        return await self._stream(request, reply, command, options.get("include_usage") is True, text)

    async def embeddings(self, request: web.Request) -> web.StreamResponse:
        flavor = request.match_info["flavor"]
        raw = await request.read()
        body = json.loads(raw)
        self.requests.append(Received(flavor, request.path, dict(request.headers), body, raw))
        inputs = body["input"] if isinstance(body["input"], list) else [body["input"]]
        first = inputs[0] if isinstance(inputs[0], str) else ""
        if first.startswith("fail:"):
            return error_response(flavor, int(first[5:]))
        vectors = [[0.25 * (i + 1)] * EMBEDDING_SIZE for i in range(len(inputs))]
        if body.get("encoding_format") == "base64":  # what the openai SDK asks for: little-endian float32
            vectors = [base64.b64encode(struct.pack(f"<{len(v)}f", *v)).decode() for v in vectors]
        data = [{"object": "embedding", "index": i, "embedding": v} for i, v in enumerate(vectors)]
        tokens = EMBEDDING_TOKENS * len(inputs)
        return web.json_response({"object": "list", "data": data, "model": body["model"],
                                  "usage": {"prompt_tokens": tokens, "total_tokens": tokens}})

    async def responses(self, request: web.Request) -> web.StreamResponse:
        flavor = request.match_info["flavor"]
        raw = await request.read()
        body = json.loads(raw)
        self.requests.append(Received(flavor, request.path, dict(request.headers), body, raw))
        text = last_user_text(body)
        if text.startswith("fail:"):
            return error_response(flavor, int(text[5:].split(" ", 1)[0]))
        answer = response_object(body, f"resp_fake{len(self.requests)}", f"Hello from {flavor}: {text}")
        if body.get("stream") is not True:
            return web.json_response(answer)
        response = web.StreamResponse(headers={"Content-Type": "text/event-stream"})
        await response.prepare(request)
        events = [f"event: {e['type']}\ndata: {json.dumps({**e, 'sequence_number': n})}\n\n".encode()
                  for n, e in enumerate(response_events(answer))]
        if text.startswith("long"):  # the head, then its first delta every 50 ms, as chat's `long`
            return await self._long(request, response, events[3], text, events[:3])
        for piece in events[:4] if text.startswith("cut") else events:
            await response.write(piece)
        if text.startswith("cut"):  # the head and one delta, then the connection drops
            request.transport.close()
            return response
        await response.write_eof()
        return response

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
        events = reply.events(include_usage)
        if command in ("cut", "stall", "error", "badjson"):
            for piece in events[:2]:
                await response.write(piece)
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
                await response.write(event(failure))
                return response
            elif command == "badjson":
                await response.write(b"data: {this is not json\n\n" + DONE)
                return response
        if command == "long":
            return await self._long(request, response, reply.events(False)[0], text)
        for piece in events:
            await response.write(piece)
        await response.write_eof()
        return response

    async def _long(
        self, request: web.Request, response: web.StreamResponse, first: bytes, text: str, head: Any = ()
    ) -> web.StreamResponse:
        loop = asyncio.get_running_loop()
        deadline = loop.time() + LONG_SECONDS
        try:
            for piece in head:
                await response.write(piece)
            while loop.time() < deadline:
                await response.write(first)
                await asyncio.sleep(0.05)
        except (ConnectionError, asyncio.CancelledError):
            self.stream_ends[text] = "gone"
            raise
        self.stream_ends[text] = "completed"
        await response.write_eof()
        return response


async def tool_call(request: web.Request, body: dict[str, Any], stream: bool) -> web.StreamResponse:
    """A call of the request's first tool, as a completion or as a stream of two chunks."""
    name = body["tools"][0]["function"]["name"]
    arguments = json.dumps(TOOL_ARGUMENTS)
    shell = {"id": "chatcmpl-tool", "created": 1, "model": body.get("model", "")}
    usage = {"prompt_tokens": PROMPT_TOKENS, "completion_tokens": 5, "total_tokens": PROMPT_TOKENS + 5}
    call = {"id": "call_fake1", "type": "function", "function": {"name": name, "arguments": arguments}}
    if not stream:
        message = {"role": "assistant", "content": None, "tool_calls": [call]}
        choice = {"index": 0, "message": message, "finish_reason": "tool_calls"}
        return web.json_response({**shell, "object": "chat.completion", "choices": [choice], "usage": usage})
    response = web.StreamResponse(headers={"Content-Type": "text/event-stream"})
    await response.prepare(request)
    half = len(arguments) // 2
    first = {**call, "index": 0, "function": {"name": name, "arguments": arguments[:half]}}
    chunks = [
        {"role": "assistant", "tool_calls": [first]},
        {"tool_calls": [{"index": 0, "function": {"arguments": arguments[half:]}}]},
    ]
    for n, delta in enumerate(chunks):
        finish = "tool_calls" if n == len(chunks) - 1 else None
        choice = {"index": 0, "delta": delta, "finish_reason": finish}
        await response.write(event({**shell, "object": "chat.completion.chunk", "choices": [choice]}))
    if (body.get("stream_options") or {}).get("include_usage"):
        await response.write(event({**shell, "object": "chat.completion.chunk", "choices": [], "usage": usage}))
    await response.write(DONE)
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
    """The last user message's text, in a chat body (`messages`) or a Responses body (`input`)."""
    if isinstance(body, dict) and isinstance(body.get("input"), str):
        return str(body["input"])
    messages = body.get("messages", body.get("input")) if isinstance(body, dict) else None
    if not isinstance(messages, list):
        return ""
    for message in reversed(messages):
        if isinstance(message, dict) and message.get("role") == "user":
            content = message.get("content")
            if isinstance(content, list):
                return " ".join(p.get("text", "") for p in content if isinstance(p, dict))
            return content if isinstance(content, str) else ""
    return ""


def response_object(body: dict[str, Any], response_id: str, text: str) -> dict[str, Any]:
    """A completed Responses API `response` answering `body` with `text`."""
    tokens = len(split_reply(text))
    message = {"id": f"msg_{response_id}", "type": "message", "status": "completed", "role": "assistant",
               "content": [{"type": "output_text", "text": text, "annotations": []}]}
    return {
        "id": response_id, "object": "response", "created_at": 1_700_000_000, "status": "completed",
        "model": body.get("model"), "output": [message], "parallel_tool_calls": True, "tool_choice": "auto",
        "instructions": body.get("instructions"), "tools": body.get("tools") or [], "text": body.get("text"),
        "store": body.get("store", True), "previous_response_id": body.get("previous_response_id"),
        "error": None, "incomplete_details": None, "metadata": {},
        "usage": {"input_tokens": PROMPT_TOKENS, "output_tokens": tokens, "total_tokens": PROMPT_TOKENS + tokens,
                  "input_tokens_details": {"cached_tokens": 0}, "output_tokens_details": {"reasoning_tokens": 0}},
    }


def response_events(answer: dict[str, Any]) -> list[dict[str, Any]]:
    """The Responses stream of `answer`: created, the message's item and part, text deltas, completed."""
    [message] = answer["output"]
    text = message["content"][0]["text"]
    at = {"item_id": message["id"], "output_index": 0, "content_index": 0}
    started = {**answer, "status": "in_progress", "output": [], "usage": None}
    return [
        {"type": "response.created", "response": started},
        {"type": "response.output_item.added", "output_index": 0,
         "item": {**message, "status": "in_progress", "content": []}},
        {"type": "response.content_part.added", **at, "part": {"type": "output_text", "text": "", "annotations": []}},
        *({"type": "response.output_text.delta", **at, "delta": piece} for piece in split_reply(text)),
        {"type": "response.output_text.done", **at, "text": text},
        {"type": "response.content_part.done", **at, "part": message["content"][0]},
        {"type": "response.output_item.done", "output_index": 0, "item": message},
        {"type": "response.completed", "response": answer},
    ]


def split_reply(text: str) -> list[str]:
    """The answer in at least four pieces, so streams have several content chunks."""
    words = text.split(" ")
    pieces = [w + " " for w in words[:-1]] + [words[-1]]
    while len(pieces) < 4:
        pieces.append(".")
    return pieces


def event(chunk: dict[str, Any]) -> bytes:
    return b"data: " + json.dumps(chunk).encode() + b"\n\n"


def error_response(flavor: str, status: int) -> web.Response:
    kind = {400: "invalid_request_error", 429: "rate_limit_exceeded"}.get(status, "server_error")
    values = {"message": f"fake {flavor} says {status}", "type": kind, "status": status}
    headers = {"Retry-After": "7"} if status == 429 else None
    return web.json_response(fill(recorded(flavor).error, values), status=status, headers=headers)


@dataclass
class Reply:
    """One answer, rendered in a provider's recorded shapes."""

    flavor: str
    model: str
    text: str

    @property
    def pieces(self) -> list[str]:
        return split_reply(self.text)

    def _values(self, completion_tokens: int, **more: Any) -> dict[str, Any]:
        return {
            "model": self.model,
            "text": self.text,
            "completion_tokens": completion_tokens,
            "total_tokens": PROMPT_TOKENS + completion_tokens,
            **more,
        }

    def usage(self, completion_tokens: int) -> dict[str, Any]:
        """The usage the provider reports after `completion_tokens` pieces."""
        return fill(recorded(self.flavor).completion["usage"], self._values(completion_tokens))

    def completion(self) -> dict[str, Any]:
        return fill(recorded(self.flavor).completion, self._values(len(self.pieces)))

    def chunks(self, include_usage: bool) -> list[dict[str, Any]]:
        stream = recorded(self.flavor).chunks
        pieces = self.pieces
        whole = self._values(len(pieces))
        chunks = [fill(chunk, whole) for chunk in stream["head"]]
        so_far = ""
        for n, piece in enumerate(pieces, 1):
            so_far += piece
            template = stream.get("last_piece", stream["piece"]) if n == len(pieces) else stream["piece"]
            chunks.append(fill(template, self._values(n, n=n, piece=piece, so_far=so_far)))
        chunks += [fill(chunk, whole) for chunk in stream["tail"]]
        if include_usage and stream.get("usage"):
            chunks.append(fill(stream["usage"], whole))
        return chunks

    def events(self, include_usage: bool) -> list[bytes]:
        """The stream as SSE events, `[DONE]` included when the provider sends it."""
        events = [event(chunk) for chunk in self.chunks(include_usage)]
        return events + [DONE] if recorded(self.flavor).chunks["done"] else events
