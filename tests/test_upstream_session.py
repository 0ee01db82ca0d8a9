"""The pooled upstream session's settings, against a real local HTTP server.

No compression is asked for (a small JSON answer or a stream costs more CPU to inflate than
it saves on the wire; docs/benchmarks.md), yet an answer a provider compresses unasked is
still read correctly.
"""

from __future__ import annotations

import gzip

import orjson
import pytest
from aiohttp import web
from aiohttp.test_utils import TestServer

from llm_wrapper import upstream
from llm_wrapper.config import ProviderConfig
from llm_wrapper.providers import Provider

ANSWER = {"id": "chatcmpl-1", "object": "chat.completion", "choices": []}


@pytest.fixture
async def server():
    seen: list[dict[str, str]] = []

    async def chat(request: web.Request) -> web.Response:
        seen.append(dict(request.headers))
        body = orjson.dumps(ANSWER)
        if request.query.get("gzip"):
            return web.Response(body=gzip.compress(body), headers={
                "Content-Type": "application/json", "Content-Encoding": "gzip",
            })
        return web.Response(body=body, content_type="application/json")

    app = web.Application()
    app.router.add_post("/v1/chat/completions", chat)
    test_server = TestServer(app, host="127.0.0.1")
    await test_server.start_server()
    yield test_server, seen
    await test_server.close()


async def test_no_compression_is_asked_but_a_compressed_answer_is_read(server) -> None:
    test_server, seen = server
    base = str(test_server.make_url("/v1"))
    provider = Provider(ProviderConfig(key="p", name="Prov", base_url=base, api_key_env="K"), "sk-upstream")
    await provider.start()
    try:
        assert provider.session is not None
        for query in ("", "?gzip=1"):
            response = await upstream.post(provider.session, provider.name, provider.url("/chat/completions") + query,
                                           b"{}", key_env="K")
            assert orjson.loads(await upstream.read_whole(provider.name, response)) == ANSWER
    finally:
        await provider.close()
    assert len(seen) == 2
    for headers in seen:
        lowered = {name.lower(): value for name, value in headers.items()}
        assert "accept-encoding" not in lowered and "user-agent" not in lowered
        assert lowered["authorization"] == "Bearer sk-upstream"
