"""End to end: `/v1/messages` and `/v1/responses` streams through the real `llm-wrapper serve`
process, with the SDKs over a socket (the in-process tests are tests/test_dialects_gateway.py).

What only a real server shows: the events (translated, or passed through from a provider that
speaks the Responses API) arrive as a stream, and a client that hangs up mid-stream closes the
upstream through either.
"""

from __future__ import annotations

import time
import uuid

import anthropic
import httpx
import openai
import pytest

from tests.fakes.providers import FakeProviders
from tests.fixtures.providers import MODELS
from tests.gateway_process import GatewayProcess

GPT = MODELS["openai"]


def test_the_anthropic_sdk_streams_over_http(gateway: GatewayProcess, token: str) -> None:
    text = f"claude {uuid.uuid4().hex[:8]}"
    with anthropic.Anthropic(base_url=gateway.url, api_key=token, max_retries=0, timeout=20) as client:
        with client.messages.stream(model=GPT, max_tokens=50, system="Be brief.",
                                    messages=[{"role": "user", "content": text}]) as stream:
            said = "".join(stream.text_stream)
            final = stream.get_final_message()
    assert said == f"Hello from openai: {text}" and final.stop_reason == "end_turn"


def test_the_openai_sdk_streams_responses_over_http(client: openai.OpenAI) -> None:
    text = f"responses {uuid.uuid4().hex[:8]}"
    with client.responses.stream(model=GPT, input=text, instructions="Be brief.") as stream:
        deltas = [e.delta for e in stream if e.type == "response.output_text.delta"]
        final = stream.get_final_response()
    assert "".join(deltas) == final.output_text == f"Hello from openai: {text}"
    assert final.id.startswith("resp_fake")  # the provider's own: passed through


@pytest.mark.parametrize(("path", "model"), [
    ("/v1/messages", GPT),
    ("/v1/responses", GPT),  # passed through: OpenAI speaks the Responses API
    ("/v1/responses", MODELS["together"]),  # translated through Chat Completions
])
def test_client_going_away_closes_the_upstream(
    gateway: GatewayProcess, token: str, fake_providers: FakeProviders, path: str, model: str
) -> None:
    text = f"long {uuid.uuid4().hex[:10]}"
    body: dict = {"model": model, "stream": True}
    body.update({"max_tokens": 50, "messages": [{"role": "user", "content": text}]} if path == "/v1/messages"
                else {"input": text})
    with httpx.Client(timeout=20) as http, http.stream(
        "POST", gateway.url + path, json=body, headers={"Authorization": f"Bearer {token}"}
    ) as response:
        assert response.status_code == 200
        first = next(response.iter_bytes())  # streamed as it comes: the fake goes on for 15 s
        assert first.startswith(b"event: ")
    deadline = time.monotonic() + 8
    while time.monotonic() < deadline and text not in fake_providers.stream_ends:
        time.sleep(0.05)
    assert fake_providers.stream_ends.get(text) == "gone"
