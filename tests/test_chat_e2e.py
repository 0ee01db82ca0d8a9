"""End to end: chat completions through the real `llm-wrapper serve` process (uvicorn, a
socket, the fake providers in a thread of this process; tests/fixtures/providers.py).

Only what an in-process ASGI client cannot show is here: the bytes a real server sends
(streams relayed byte for byte, one `[DONE]`), streaming as it happens, and a client that
hangs up mid-stream, which must close the upstream. The chat and error matrices run in
process (tests/test_chat_completions.py, tests/test_chat_errors.py).
"""

from __future__ import annotations

import json
import time
import uuid

import httpx
import openai

from tests.fakes.providers import FakeProviders, Reply
from tests.fixtures.providers import MODELS
from tests.gateway_process import GatewayProcess


def ask(text: str) -> list[dict[str, str]]:
    return [{"role": "user", "content": text}]


def still_serves(client: openai.OpenAI, model: str = "gpt-test") -> None:
    text = f"again {uuid.uuid4().hex[:10]}"
    answer = client.chat.completions.create(model=model, messages=ask(text))
    assert (answer.choices[0].message.content or "").endswith(text)
    chunks = list(client.chat.completions.create(model=model, messages=ask(text), stream=True))
    assert "".join(c.delta.content or "" for chunk in chunks for c in chunk.choices).endswith(text)


def test_streams_end_with_a_single_done(gateway: GatewayProcess, token: str) -> None:
    for flavor in MODELS:
        body = {"model": MODELS[flavor], "messages": ask(f"done-{flavor}"), "stream": True}
        response = httpx.post(f"{gateway.url}/v1/chat/completions", json=body, timeout=20,
                              headers={"Authorization": f"Bearer {token}"})
        assert response.status_code == 200
        assert response.headers["content-type"].startswith("text/event-stream")
        assert response.text.endswith("data: [DONE]\n\n"), flavor
        assert response.text.count("[DONE]") == 1, flavor


def test_an_openai_stream_is_relayed_byte_for_byte(gateway: GatewayProcess, token: str) -> None:
    text = f"bytes {uuid.uuid4().hex[:10]}"
    body = {"model": MODELS["openai"], "messages": ask(text), "stream": True,
            "stream_options": {"include_usage": True}}
    response = httpx.post(f"{gateway.url}/v1/chat/completions", json=body, timeout=20,
                          headers={"Authorization": f"Bearer {token}"})
    reply = Reply("openai", MODELS["openai"], f"Hello from openai: {text}")
    sent = b"".join(b"data: " + json.dumps(chunk).encode() + b"\n\n" for chunk in reply.chunks(True))
    assert response.content == sent + b"data: [DONE]\n\n"


def test_client_going_away_closes_the_upstream(
    gateway: GatewayProcess, token: str, fake_providers: FakeProviders, client: openai.OpenAI
) -> None:
    text = f"long {uuid.uuid4().hex[:10]}"
    body = {"model": "gpt-test", "messages": ask(text), "stream": True}
    url, headers = f"{gateway.url}/v1/chat/completions", {"Authorization": f"Bearer {token}"}
    with httpx.Client(timeout=20) as http, http.stream("POST", url, json=body, headers=headers) as response:
        assert response.status_code == 200
        first = next(response.iter_bytes())  # streamed as it comes: the fake goes on for 15 s
        assert first.startswith(b"data: ")
    deadline = time.monotonic() + 8  # the fake streams for 15 s unless the gateway hangs up
    while time.monotonic() < deadline and text not in fake_providers.stream_ends:
        time.sleep(0.05)
    assert fake_providers.stream_ends.get(text) == "gone"
    still_serves(client)
