"""The smallest OpenAI-compatible upstream: `POST /v1/chat/completions` gives a fixed answer.

fake = ThreadedServer(minimal_openai_app()).start()
config = minimal_openai_config(fake.url)   # a provider config serving MODEL
...
fake.app[CALLS]                             # how many requests reached the provider
"""

from __future__ import annotations

import time
from typing import Any

from aiohttp import web

MODEL = "gpt-4o-mini"
KEY_ENV = "OPENAI_API_KEY"
CALLS: web.AppKey[list[int]] = web.AppKey("calls", list)


def minimal_openai_app() -> web.Application:
    app = web.Application()
    app[CALLS] = [0]

    async def completions(request: web.Request) -> web.Response:
        body = await request.json()
        app[CALLS][0] += 1
        return web.json_response(
            {
                "id": "chatcmpl-fake",
                "object": "chat.completion",
                "created": int(time.time()),
                "model": body.get("model", MODEL),
                "choices": [
                    {
                        "index": 0,
                        "message": {"role": "assistant", "content": "pong"},
                        "finish_reason": "stop",
                    }
                ],
                "usage": {"prompt_tokens": 1, "completion_tokens": 1, "total_tokens": 2},
            }
        )

    app.router.add_post("/v1/chat/completions", completions)
    return app


def minimal_openai_config(url: str) -> dict[str, Any]:
    """A `config.json` with one provider at the fake serving MODEL; set `KEY_ENV` to enable it."""
    return {
        "openai": {
            "name": "OpenAI",
            "base_url": f"{url}/v1",
            "api_key_env": KEY_ENV,
            "supported_models": [MODEL],
            "payload_extra_parameters": {},
        }
    }
