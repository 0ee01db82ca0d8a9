"""Graceful shutdown: on SIGTERM the gateway stops accepting, lets a stream in flight finish, and exits."""

from __future__ import annotations

import asyncio
import json
import signal
import threading
import time

import httpx
from aiohttp import web

from .fakes.server import ThreadedServer
from .gateway_process import GatewayProcess

CHUNKS = 20


def slow_stream_app() -> web.Application:
    """An OpenAI-style stream of CHUNKS chunks, one every 100 ms."""

    async def completions(request: web.Request) -> web.StreamResponse:
        await request.read()
        response = web.StreamResponse(headers={"Content-Type": "text/event-stream"})
        await response.prepare(request)
        for i in range(CHUNKS):
            chunk = {"id": "chatcmpl-slow", "object": "chat.completion.chunk", "created": 1, "model": "gpt-slow",
                     "choices": [{"index": 0, "delta": {"content": f"{i} "}, "finish_reason": None}]}
            await response.write(b"data: " + json.dumps(chunk).encode() + b"\n\n")
            await asyncio.sleep(0.1)
        await response.write(b"data: [DONE]\n\n")
        await response.write_eof()
        return response

    app = web.Application()
    app.router.add_post("/v1/chat/completions", completions)
    return app


def test_sigterm_lets_a_stream_in_flight_finish(tmp_path):
    upstream = ThreadedServer(slow_stream_app()).start()
    config = {"openai": {"name": "OpenAI", "base_url": f"{upstream.url}/v1", "api_key_env": "OPENAI_API_KEY",
                         "supported_models": ["gpt-slow"], "payload_extra_parameters": {}}}
    gateway = GatewayProcess(tmp_path, {"OPENAI_API_KEY": "sk-test"}, config=config)
    token = gateway.add_token("patient")
    gateway.start()
    received: list[str] = []
    first = threading.Event()

    def stream() -> None:
        body = {"model": "gpt-slow", "stream": True, "messages": [{"role": "user", "content": "count"}]}
        with httpx.stream("POST", f"{gateway.url}/v1/chat/completions", json=body,
                          headers={"Authorization": f"Bearer {token}"}, timeout=30) as response:
            for line in response.iter_lines():
                if line.startswith("data: "):
                    received.append(line[6:])
                    first.set()

    reader = threading.Thread(target=stream)
    try:
        reader.start()
        assert first.wait(10), "the stream did not start"
        assert gateway.proc is not None
        gateway.proc.send_signal(signal.SIGTERM)
        time.sleep(0.3)
        refused = False
        try:
            httpx.get(f"{gateway.url}/healthz", timeout=2)
        except httpx.HTTPError:
            refused = True
        assert refused, "a new connection was accepted after SIGTERM"
        reader.join(30)
        assert received[-1] == "[DONE]"
        contents = [json.loads(r)["choices"][0]["delta"].get("content") for r in received[:-1]]
        assert contents == [f"{i} " for i in range(CHUNKS)]
        # uvicorn re-raises the signal once it has shut down cleanly, as systemd expects.
        assert gateway.proc.wait(30) in (0, -signal.SIGTERM)
        assert "Traceback" not in gateway.logs()
    finally:
        gateway.stop()
        upstream.stop()
