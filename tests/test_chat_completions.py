"""`POST /v1/chat/completions` and `GET /v1/models`, in process: the openai SDK against
`create_app(settings)` through an ASGI client, and the fake providers in their own recorded wire
formats on the same event loop (tests/fixtures/inprocess.py).

The matrix runs over the adapter registry (`ADAPTERS`), and every adapter must have its recorded
shapes in `tests/fixtures/<name>/`: a new adapter cannot ship untested. The real
`llm-wrapper serve` process is exercised by tests/test_chat_e2e.py.
"""

from __future__ import annotations

import json
import uuid

import openai
import pytest

from llm_wrapper.providers import ADAPTERS
from tests.fakes import providers as fake
from tests.fakes.providers import BASIS, CITATIONS, INTERACTION_ID, SEARCH_RESULTS, FakeProviders
from tests.fixtures.inprocess import InProcessGateway
from tests.fixtures.providers import (
    ADAPTER_NAMES,
    DISABLED_KEY_ENV,
    KEY_ENV,
    KEYS,
    MODELS,
    OPENAI_EXTRA,
    PERPLEXITY_EXTRA,
)

FLAVORS = ADAPTER_NAMES


def ask(marker: str) -> list[dict[str, str]]:
    return [{"role": "system", "content": "be brief"}, {"role": "user", "content": marker}]


def expected_text(flavor: str, marker: str) -> str:
    return f"Hello from {flavor}: {marker}"


@pytest.mark.parametrize("name", sorted(ADAPTERS))
def test_every_adapter_has_recorded_shapes_and_is_served(name: str) -> None:
    """Adding an adapter means recording its wire shapes; the fake then serves it as a flavor."""
    folder = fake.FIXTURES / name
    missing = [part for part in fake.PARTS if not (folder / part).is_file()]
    assert not missing, f"record {name}'s wire shapes: tests/fixtures/{name}/ lacks {', '.join(missing)}"
    assert name in fake.FLAVORS and name in MODELS
    shapes = fake.recorded(name)
    assert {"head", "piece", "tail", "done"} <= set(shapes.chunks), f"tests/fixtures/{name}/chunks.json"
    reply = fake.Reply(name, "m", "one two three four")
    assert "one two three four" in json.dumps(reply.completion()), f"tests/fixtures/{name}/completion.json"
    assert len(reply.chunks(True)) >= 4


def test_every_recorded_flavor_is_an_adapter() -> None:
    assert set(fake.FLAVORS) == set(ADAPTERS), "a folder in tests/fixtures/ for no adapter, or the reverse"


@pytest.mark.parametrize("flavor", FLAVORS)
async def test_non_streaming_through_every_adapter(sdk: openai.AsyncOpenAI, fakes: FakeProviders, flavor: str) -> None:
    marker = f"plain-{flavor}-{uuid.uuid4().hex[:8]}"
    answer = await sdk.chat.completions.create(model=MODELS[flavor], messages=ask(marker))
    assert answer.object == "chat.completion"
    assert answer.model == MODELS[flavor]
    assert answer.id and isinstance(answer.created, int)
    assert len(answer.choices) == 1
    assert answer.choices[0].message.content == expected_text(flavor, marker)
    assert answer.choices[0].finish_reason == "stop"
    assert answer.usage is not None and answer.usage.total_tokens > 0
    extra = answer.model_extra or {}
    if flavor == "perplexity":
        assert extra["citations"] == CITATIONS and extra["search_results"] == SEARCH_RESULTS
    if flavor == "parallel":
        assert answer.id.startswith("chatcmpl-")
        assert extra["basis"] == BASIS and extra["interaction_id"] == INTERACTION_ID
    received = fakes.one(marker)
    assert received.flavor == flavor
    assert received.path == f"/{flavor}/chat/completions"


@pytest.mark.parametrize("flavor", FLAVORS)
@pytest.mark.parametrize("include_usage", [True, False])
async def test_streaming_through_every_adapter(
    sdk: openai.AsyncOpenAI, fakes: FakeProviders, flavor: str, include_usage: bool
) -> None:
    marker = f"stream-{flavor}-{include_usage}-{uuid.uuid4().hex[:8]}"
    options = {"stream_options": {"include_usage": True}} if include_usage else {}
    stream = await sdk.chat.completions.create(model=MODELS[flavor], messages=ask(marker), stream=True, **options)
    chunks = [chunk async for chunk in stream]
    assert chunks, "no chunks"
    text = "".join(c.delta.content or "" for chunk in chunks for c in chunk.choices)
    assert text == expected_text(flavor, marker)  # exactly once: never the cumulative `message` too
    assert {chunk.object for chunk in chunks} == {"chat.completion.chunk"}
    assert len({chunk.id for chunk in chunks}) == 1 and chunks[0].id
    assert {chunk.model for chunk in chunks} == {MODELS[flavor]}
    assert all(isinstance(chunk.created, int) for chunk in chunks)
    reasons = [c.finish_reason for chunk in chunks for c in chunk.choices if c.finish_reason]
    assert reasons == ["stop"]
    usages = [chunk.usage for chunk in chunks if chunk.usage is not None]
    if include_usage or flavor == "together":  # Together reports usage on its last chunk regardless
        assert len(usages) == 1 and usages[0].total_tokens > 0
    else:
        assert usages == []
    if flavor == "perplexity":
        extras = [chunk.model_extra for chunk in chunks if chunk.model_extra and "citations" in chunk.model_extra]
        assert len(extras) == 2  # the first chunk that has them, and the finishing one
        for extra in extras:
            assert extra["citations"] == CITATIONS and extra["search_results"] == SEARCH_RESULTS
        assert not any("message" in (c.model_extra or {}) for chunk in chunks for c in chunk.choices)
        if include_usage:  # the last cumulative usage, once
            assert usages[0].completion_tokens == len(expected_text(flavor, marker).split(" "))
    if flavor == "parallel":
        assert chunks[0].id.startswith("chatcmpl-")
        assert (chunks[0].model_extra or {}).get("interaction_id") == INTERACTION_ID
        assert "basis" in (chunks[0].model_extra or {})
    received = fakes.one(marker)
    assert received.body["stream"] is True


@pytest.mark.parametrize("flavor", FLAVORS)
async def test_stream_request_answered_with_one_json_body(sdk: openai.AsyncOpenAI, flavor: str) -> None:
    marker = f"whole {flavor}-{uuid.uuid4().hex[:8]}"
    stream = await sdk.chat.completions.create(
        model=MODELS[flavor], messages=ask(marker), stream=True, stream_options={"include_usage": True}
    )
    chunks = [chunk async for chunk in stream]
    assert "".join(c.delta.content or "" for chunk in chunks for c in chunk.choices) == expected_text(flavor, marker)
    assert [c.finish_reason for chunk in chunks for c in chunk.choices] == ["stop"]
    assert {chunk.object for chunk in chunks} == {"chat.completion.chunk"} and len({c.id for c in chunks}) == 1
    assert chunks[-1].choices == [] and chunks[-1].usage is not None and chunks[-1].usage.total_tokens > 0
    if flavor == "perplexity":
        assert (chunks[0].model_extra or {})["citations"] == CITATIONS


@pytest.mark.parametrize("flavor", FLAVORS)
async def test_streams_end_with_a_single_done(inproc: InProcessGateway, flavor: str) -> None:
    body = {"model": MODELS[flavor], "messages": ask(f"done-{flavor}"), "stream": True}
    response = await inproc.http.post(
        "/v1/chat/completions", json=body, headers={"Authorization": f"Bearer {inproc.token}"}
    )
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/event-stream")
    assert response.text.endswith("data: [DONE]\n\n"), flavor
    assert response.text.count("[DONE]") == 1, flavor


@pytest.mark.parametrize("flavor", FLAVORS)
async def test_forwarded_request(
    sdk: openai.AsyncOpenAI, fakes: FakeProviders, inproc: InProcessGateway, flavor: str
) -> None:
    marker = f"forward-{flavor}-{uuid.uuid4().hex[:8]}"
    await sdk.chat.completions.create(model=MODELS[flavor], messages=ask(marker), temperature=0.9, max_tokens=50)
    received = fakes.one(marker)
    assert received.headers["Authorization"] == f"Bearer {KEYS[KEY_ENV[flavor]]}"
    assert received.headers["Content-Type"] == "application/json"
    body = received.body
    assert body["model"] == MODELS[flavor] and body["messages"] == ask(marker)
    assert body["max_tokens"] == 50
    if flavor == "openai":  # configured extras merged; the configuration wins a clash
        assert body["temperature"] == OPENAI_EXTRA["temperature"]
        assert body["metadata"] == OPENAI_EXTRA["metadata"]
    else:
        assert body["temperature"] == 0.9
    if flavor == "perplexity":
        assert body["search_mode"] == PERPLEXITY_EXTRA["search_mode"]
    # Nothing of the caller's credentials goes upstream.
    everything = json.dumps(received.headers) + received.raw.decode()
    assert inproc.token not in everything and "llmw_" not in everything
    for name, key in KEYS.items():
        if name != KEY_ENV[flavor]:
            assert key not in everything


async def test_models_lists_the_enabled_providers_models(sdk: openai.AsyncOpenAI) -> None:
    models = {m.id: m async for m in sdk.models.list()}
    assert set(MODELS.values()) | {"speed", "gpt-slow", "gpt-down"} == set(models)
    assert "together-off" not in models
    assert models["gpt-test"].owned_by == "openai" and models["gpt-test"].object == "model"


async def test_unknown_model_is_404_model_not_found(sdk: openai.AsyncOpenAI) -> None:
    with pytest.raises(openai.NotFoundError) as caught:
        await sdk.chat.completions.create(model="no-such-model", messages=ask("x"))
    assert caught.value.status_code == 404
    assert caught.value.code == "model_not_found"
    assert "no-such-model" in caught.value.message


async def test_disabled_provider_is_503_naming_its_variable(sdk: openai.AsyncOpenAI, fakes: FakeProviders) -> None:
    marker = f"disabled-{uuid.uuid4().hex[:8]}"
    with pytest.raises(openai.InternalServerError) as caught:
        await sdk.chat.completions.create(model="together-off", messages=ask(marker))
    assert caught.value.status_code == 503
    assert DISABLED_KEY_ENV in caught.value.message
    assert fakes.received(marker) == []


async def test_overhead_and_ratelimit_headers_on_answers(sdk: openai.AsyncOpenAI) -> None:
    raw = await sdk.chat.completions.with_raw_response.create(model="gpt-test", messages=ask("headers"))
    assert float(raw.headers["x-llm-wrapper-overhead-ms"]) >= 0
    assert int(raw.headers["x-ratelimit-limit-requests"]) == 100000
    assert raw.headers["x-ratelimit-reset-requests"].endswith("s")
    async with sdk.chat.completions.with_streaming_response.create(
        model="sonar-test", messages=ask("headers"), stream=True
    ) as streamed:
        assert float(streamed.headers["x-llm-wrapper-overhead-ms"]) >= 0
        assert "x-ratelimit-remaining-requests" in streamed.headers
        chunks = [c async for c in await streamed.parse()]
        assert "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)


async def test_ratelimit_remaining_counts_down_then_429(inproc: InProcessGateway) -> None:
    token = await inproc.add_token("carol", rate_limit=3)
    headers = {"Authorization": f"Bearer {token}"}
    body = {"model": "gpt-test", "messages": ask("count")}
    seen = []
    for _ in range(3):
        response = await inproc.http.post("/v1/chat/completions", json=body, headers=headers)
        assert response.status_code == 200
        assert response.headers["x-ratelimit-limit-requests"] == "3"
        seen.append(response.headers["x-ratelimit-remaining-requests"])
    assert seen == ["2", "1", "0"]
    refused = await inproc.http.post("/v1/chat/completions", json=body, headers=headers)
    assert refused.status_code == 429
    assert int(refused.headers["retry-after"]) > 0
    assert refused.headers["x-ratelimit-remaining-requests"] == "0"
    assert set(refused.json()["error"]) == {"message", "type", "param", "code"}
    # Listing models is not a chat completion: not counted, still answered.
    listed = await inproc.http.get("/v1/models", headers=headers)
    assert listed.status_code == 200 and listed.headers["x-ratelimit-remaining-requests"] == "0"


async def test_missing_or_bad_token_is_401(inproc: InProcessGateway) -> None:
    body = {"model": "gpt-test", "messages": ask("who")}
    for headers in ({}, {"Authorization": "Bearer llmw_not-a-real-token"}, {"Authorization": "Basic abc"}):
        response = await inproc.http.post("/v1/chat/completions", json=body, headers=headers)
        assert response.status_code == 401
        assert set(response.json()["error"]) == {"message", "type", "param", "code"}
