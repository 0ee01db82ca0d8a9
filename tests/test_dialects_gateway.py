"""`/v1/messages` (the `anthropic` SDK), `/v1/responses` (the `openai` SDK's Responses API) and
`/v1/embeddings` through the gateway in process, against the fake providers: translation both ways,
tools, errors in each API's shape, and the chat request path they share (counting, usage and cost,
routing, the log).
"""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from datetime import timedelta
from pathlib import Path
from typing import Any

import anthropic
import httpx2
import openai
import pytest

from .fakes.providers import (
    EMBEDDING_SIZE,
    EMBEDDING_TOKENS,
    PROMPT_TOKENS,
    TOOL_ARGUMENTS,
    FakeProviders,
)
from .fakes.server import free_port
from .fixtures.inprocess import BASE_URL, InProcessGateway, inprocess_settings, running
from .fixtures.providers import ADAPTER_NAMES, MODELS, OPENAI_EXTRA, gateway_env, provider_config

GPT = MODELS["openai"]
FLAKY = "gpt-flaky"  # first on a closed port, then on the fake
# The OpenAI fake behind an adapter that does not speak the Responses API: `/v1/responses` is translated.
TRANSLATED = "gpt-translated"
MIXED = "gpt-mixed"  # a native (OpenAI) deployment on a closed port, then a translated one on the fake
MIXED_BACK = "gpt-mixed-back"  # a translated deployment on a closed port, then a native one on the fake
EMBED = "text-embedding-3-small"  # at its shipped price
PRICE = {"input_per_mtok": 1.0, "output_per_mtok": 2.0}
WEATHER_TOOL = {
    "name": "get_weather", "description": "The weather in a city.",
    "input_schema": {"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]},
}
RESPONSES_TOOL = {"type": "function", "name": "get_weather", "description": "The weather in a city.",
                  "parameters": WEATHER_TOOL["input_schema"]}


@pytest.fixture
async def gw(tmp_path: Path, fakes: FakeProviders) -> AsyncIterator[InProcessGateway]:
    config = provider_config(fakes.url, f"http://127.0.0.1:{free_port()}/v1")
    config["openai"]["pricing"] = {GPT: PRICE}
    config["openai"]["supported_models"].append(EMBED)
    config["flaky_down"] = {
        **config["openai"], "name": "Flaky down", "base_url": f"http://127.0.0.1:{free_port()}/v1",
        "supported_models": [FLAKY], "priority": 0,
    }
    config["flaky_up"] = {**config["openai"], "name": "Flaky up", "supported_models": [], "priority": 1,
                          "model_map": {FLAKY: GPT}}
    closed = f"http://127.0.0.1:{free_port()}/v1"
    config["translated"] = {**config["openai"], "name": "Translated", "adapter": "together", "priority": 1,
                            "supported_models": [TRANSLATED], "model_map": {MIXED: GPT}}
    config["native_down"] = {**config["openai"], "name": "Native down", "base_url": closed,
                             "supported_models": [MIXED], "priority": 0}
    config["translated_down"] = {**config["translated"], "name": "Translated down", "base_url": closed,
                                 "supported_models": [MIXED_BACK], "model_map": {}, "priority": 0}
    config["native_up"] = {**config["openai"], "name": "Native up", "supported_models": [], "priority": 1,
                           "model_map": {MIXED_BACK: GPT}}
    async with running(inprocess_settings(tmp_path, gateway_env(fakes.url), config), rate_limit=1000) as gateway:
        yield gateway


def claude(gw: InProcessGateway, token: str | None = None) -> anthropic.AsyncAnthropic:
    """The anthropic SDK on the app (it sends the token as `x-api-key`)."""
    return anthropic.AsyncAnthropic(
        base_url=BASE_URL, api_key=token or gw.token, max_retries=0, timeout=20,
        http_client=httpx2.AsyncClient(transport=httpx2.ASGITransport(app=gw.app)),
    )


def log_lines(gw: InProcessGateway) -> list[dict[str, Any]]:
    gw.services.analytics.flush()
    return [json.loads(line) for line in gw.settings.llm_wrapper_log_file.read_text().splitlines()]


async def rows(gw: InProcessGateway, username: str) -> list[dict[str, Any]]:
    await gw.services.usage.flush()
    today = gw.services.auth.clock().date()
    found = await gw.services.store.usage.usage(today - timedelta(days=1), today + timedelta(days=1), username)
    return [r.to_json() for r in found]


async def requests_today(gw: InProcessGateway, token: str) -> int:
    me = await gw.http.get("/v1/me", headers={"Authorization": f"Bearer {token}"})
    return me.json()["requests_today"]


# /v1/messages -------------------------------------------------------------------------------


async def test_messages_create_translates_the_system_prompt_and_answers_a_message(
    gw: InProcessGateway, fakes: FakeProviders
) -> None:
    answer = await claude(gw).messages.create(
        model=GPT, max_tokens=50, system="Be brief.", messages=[{"role": "user", "content": "hi there"}],
    )
    assert answer.model == GPT and answer.role == "assistant" and answer.stop_reason == "end_turn"
    assert [b.type for b in answer.content] == ["text"]
    assert answer.content[0].text == "Hello from openai: hi there"
    assert answer.usage.input_tokens == PROMPT_TOKENS and answer.usage.output_tokens > 0
    sent = fakes.one("hi there").body
    assert sent["messages"][0] == {"role": "system", "content": "Be brief."}
    assert sent["max_tokens"] == 50
    [line] = [x for x in log_lines(gw) if x.get("api") == "messages"]
    assert (line["model"], line["status"], line["provider"]) == (GPT, 200, "openai")


async def test_messages_stream_gives_text_and_the_final_message(gw: InProcessGateway) -> None:
    async with claude(gw).messages.stream(
        model=GPT, max_tokens=50, system="Be brief.", messages=[{"role": "user", "content": "stream me"}],
    ) as stream:
        text = "".join([piece async for piece in stream.text_stream])
        final = await stream.get_final_message()
    assert text == "Hello from openai: stream me"
    assert final.content[0].text == text and final.model == GPT and final.stop_reason == "end_turn"
    assert final.usage.output_tokens > 0


@pytest.mark.parametrize("stream", [False, True])
async def test_a_tool_use_round_trip(gw: InProcessGateway, fakes: FakeProviders, stream: bool) -> None:
    client = claude(gw)
    ask = [{"role": "user", "content": f"tool weather in Paris {stream}"}]
    if stream:
        async with client.messages.stream(model=GPT, max_tokens=50, tools=[WEATHER_TOOL], messages=ask) as s:
            first = await s.get_final_message()
    else:
        first = await client.messages.create(model=GPT, max_tokens=50, tools=[WEATHER_TOOL], messages=ask)
    assert first.stop_reason == "tool_use"
    [call] = first.content
    assert (call.type, call.name, call.input) == ("tool_use", "get_weather", TOOL_ARGUMENTS)
    result = {"type": "tool_result", "tool_use_id": call.id, "content": "Sunny, 21 C"}
    second = await client.messages.create(
        model=GPT, max_tokens=50, tools=[WEATHER_TOOL],
        messages=[*ask, {"role": "assistant", "content": [call.model_dump()]}, {"role": "user", "content": [result]}],
    )
    assert second.stop_reason == "end_turn" and second.content[0].text.startswith("Hello from openai")
    sent = fakes.requests[-1].body["messages"]
    assert sent[-2]["tool_calls"][0]["function"]["name"] == "get_weather"
    assert sent[-1] == {"role": "tool", "tool_call_id": call.id, "content": "Sunny, 21 C"}


async def test_messages_errors_are_anthropic_shaped_with_the_gateway_headers(gw: InProcessGateway) -> None:
    with pytest.raises(anthropic.AuthenticationError):
        await claude(gw, "sk-not-a-token-0000000000").messages.create(
            model=GPT, max_tokens=5, messages=[{"role": "user", "content": "x"}])
    with pytest.raises(anthropic.BadRequestError) as bad:
        await claude(gw).messages.create(model=GPT, max_tokens=5, messages=[{"role": "robot", "content": "x"}])
    assert bad.value.body == {"type": "error", "error": {
        "type": "invalid_request_error", "message": "messages.0 must be an object with role 'user' or 'assistant'."}}
    once = await gw.add_token("once", rate_limit=1)
    await claude(gw, once).messages.create(model=GPT, max_tokens=5, messages=[{"role": "user", "content": "x"}])
    with pytest.raises(anthropic.RateLimitError) as limited:
        await claude(gw, once).messages.create(model=GPT, max_tokens=5, messages=[{"role": "user", "content": "x"}])
    headers = limited.value.response.headers
    assert limited.value.body["error"]["type"] == "rate_limit_error"
    assert headers["x-ratelimit-remaining-requests"] == "0" and headers["x-should-retry"] == "false"
    assert "retry-after" in headers
    # The bearer token works too; an upstream failure keeps its status, in Anthropic's shape.
    failed = await gw.http.post("/v1/messages", headers={"Authorization": f"Bearer {gw.token}"}, json={
        "model": GPT, "max_tokens": 5, "messages": [{"role": "user", "content": "fail:400"}]})
    assert failed.status_code == 400 and failed.json()["type"] == "error"
    assert failed.json()["error"]["type"] == "invalid_request_error"
    assert "x-ratelimit-remaining-requests" in failed.headers


async def test_a_stream_that_breaks_ends_with_an_anthropic_error_event(gw: InProcessGateway) -> None:
    answer = await gw.http.post("/v1/messages", headers={"x-api-key": gw.token}, json={
        "model": GPT, "max_tokens": 5, "stream": True, "messages": [{"role": "user", "content": "error now"}]})
    events = [line.removeprefix("event: ") for line in answer.text.splitlines() if line.startswith("event: ")]
    assert events[0] == "message_start" and events[-1] == "error" and events.count("message_start") == 1


async def test_count_tokens_answers_an_estimate_without_counting(gw: InProcessGateway) -> None:
    before = await requests_today(gw, gw.token)
    counted = await claude(gw).messages.count_tokens(
        model=GPT, system="Be brief.", messages=[{"role": "user", "content": "how many tokens is this?"}])
    assert counted.input_tokens > 0
    assert await requests_today(gw, gw.token) == before
    with pytest.raises(anthropic.AuthenticationError):
        await claude(gw, "sk-nope-000000000000").messages.count_tokens(
            model=GPT, messages=[{"role": "user", "content": "x"}])


@pytest.mark.parametrize("flavor", ADAPTER_NAMES)
async def test_every_provider_flavour_answers_both_sdks_json_and_streamed(
    gw: InProcessGateway, fakes: FakeProviders, flavor: str
) -> None:
    """Each adapter behind the fakes, through the anthropic SDK and the openai SDK's Responses API
    (passed through where the provider speaks it, translated elsewhere), whole and streamed."""
    model, expected = MODELS[flavor], f"Hello from {flavor}: "
    message = await claude(gw).messages.create(
        model=model, max_tokens=50, messages=[{"role": "user", "content": f"{flavor} messages"}]
    )
    assert message.model == model and message.content[0].text.startswith(expected)
    async with claude(gw).messages.stream(
        model=model, max_tokens=50, messages=[{"role": "user", "content": f"{flavor} messages stream"}]
    ) as stream:
        text = "".join([piece async for piece in stream.text_stream])
    assert text.startswith(expected) and "messages stream" in text
    answer = await gw.sdk().responses.create(model=model, input=f"{flavor} responses")
    assert answer.model == model and answer.output_text.startswith(expected)
    async with gw.sdk().responses.stream(model=model, input=f"{flavor} responses stream") as helper:
        final = await helper.get_final_response()
    assert final.output_text.startswith(expected) and "responses stream" in final.output_text
    assert await requests_today(gw, gw.token) == 4


# /v1/responses ------------------------------------------------------------------------------


async def test_responses_create_with_instructions(gw: InProcessGateway, fakes: FakeProviders) -> None:
    answer = await gw.sdk().responses.create(model=TRANSLATED, instructions="Be brief.", input="respond please",
                                             max_output_tokens=40)
    assert answer.output_text == "Hello from openai: respond please"
    assert answer.status == "completed" and answer.model == TRANSLATED
    assert answer.usage.input_tokens == PROMPT_TOKENS and answer.usage.output_tokens > 0
    sent = fakes.one("respond please").body
    assert sent["messages"][0] == {"role": "system", "content": "Be brief."} and sent["max_tokens"] == 40


async def test_responses_stream_events_and_the_stream_helper(gw: InProcessGateway, fakes: FakeProviders) -> None:
    stream = await gw.sdk().responses.create(model=TRANSLATED, input="stream it", stream=True)
    events = [event async for event in stream]
    assert events[0].type == "response.created" and events[-1].type == "response.completed"
    text = "".join(e.delta for e in events if e.type == "response.output_text.delta")
    assert text == "Hello from openai: stream it"
    assert events[-1].response.usage.output_tokens > 0
    async with gw.sdk().responses.stream(model=TRANSLATED, input="helper stream") as helper:
        final = await helper.get_final_response()
    assert final.output_text == "Hello from openai: helper stream"
    assert {r.path for r in fakes.requests} == {"/openai/chat/completions"}


@pytest.mark.parametrize("stream", [False, True])
async def test_a_function_tool_round_trip(gw: InProcessGateway, fakes: FakeProviders, stream: bool) -> None:
    client = gw.sdk()
    ask: list[Any] = [{"role": "user", "content": f"tool weather {stream}"}]
    if stream:
        async with client.responses.stream(model=TRANSLATED, input=ask, tools=[RESPONSES_TOOL]) as s:
            first = await s.get_final_response()
    else:
        first = await client.responses.create(model=TRANSLATED, input=ask, tools=[RESPONSES_TOOL])
    [call] = first.output
    assert (call.type, call.name, json.loads(call.arguments)) == ("function_call", "get_weather", TOOL_ARGUMENTS)
    second = await client.responses.create(model=TRANSLATED, tools=[RESPONSES_TOOL], input=[
        *ask, {"type": "function_call", "call_id": call.call_id, "name": call.name, "arguments": call.arguments},
        {"type": "function_call_output", "call_id": call.call_id, "output": "Sunny"},
    ])
    assert second.output_text.startswith("Hello from openai")
    assert fakes.requests[-1].body["messages"][-1] == {"role": "tool", "tool_call_id": call.call_id,
                                                       "content": "Sunny"}


@pytest.mark.parametrize("model", [TRANSLATED, MIXED, MIXED_BACK])
async def test_stateful_requests_are_refused_unless_every_deployment_speaks_responses(
    gw: InProcessGateway, fakes: FakeProviders, model: str
) -> None:
    """MIXED and MIXED_BACK could each be answered by a translated deployment: refused too."""
    with pytest.raises(openai.BadRequestError) as refused:
        await gw.sdk().responses.create(model=model, input="x", previous_response_id="resp_123")
    assert refused.value.body["param"] == "previous_response_id"
    with pytest.raises(openai.BadRequestError):
        await gw.sdk().responses.create(model=model, input="x", store=True)
    with pytest.raises(openai.BadRequestError) as built_in:
        await gw.sdk().responses.create(model=model, input="x", tools=[{"type": "web_search"}])
    assert built_in.value.body["param"] == "tools[0]"
    with pytest.raises(openai.AuthenticationError):
        await gw.sdk("sk-nope-000000000000").responses.create(model=model, input="x")
    assert fakes.requests == []


# /v1/responses passed through to a provider that speaks it ----------------------------------------


async def test_responses_pass_through_unchanged_with_usage_and_cost_counted_once(
    gw: InProcessGateway, fakes: FakeProviders
) -> None:
    secret = await gw.add_token("dave", rate_limit=10)
    client = gw.sdk(secret)
    fmt = {"type": "json_schema", "name": "answer", "schema": {"type": "object"}, "strict": False}
    asked: dict[str, Any] = {
        "model": GPT, "instructions": "Be brief.", "input": [{"role": "user", "content": "pass me through"}],
        "tools": [RESPONSES_TOOL, {"type": "web_search"}], "text": {"format": fmt},
        "previous_response_id": "resp_earlier", "store": True, "max_output_tokens": 40,
    }
    answer = await client.responses.create(**asked)
    [sent] = fakes.requests
    assert sent.path == "/openai/responses" and sent.body == {**asked, **OPENAI_EXTRA}
    # What the translation would not make: the provider's id, the echoed state.
    assert answer.id == "resp_fake1" and answer.previous_response_id == "resp_earlier" and answer.store is True
    assert answer.output_text == "Hello from openai: pass me through" and answer.model == GPT
    assert answer.usage.input_tokens == PROMPT_TOKENS
    stream = await client.responses.create(**asked, stream=True)
    events = [e async for e in stream]
    assert events[-1].type == "response.completed" and events[-1].response.id == "resp_fake2"
    assert "".join(e.delta for e in events if e.type == "response.output_text.delta") == answer.output_text
    async with client.responses.stream(model=GPT, input="helper stream", instructions="Be brief.") as helper:
        final = await helper.get_final_response()
    assert final.output_text == "Hello from openai: helper stream" and final.id == "resp_fake3"
    assert [r.path for r in fakes.requests] == ["/openai/responses"] * 3
    assert fakes.requests[1].body["stream"] is True
    assert await requests_today(gw, secret) == 3
    [row] = await rows(gw, "dave")
    assert (row["model"], row["requests"], row["errors"]) == (GPT, 3, 0)
    completion = answer.usage.output_tokens * 2 + final.usage.output_tokens
    assert (row["prompt_tokens"], row["completion_tokens"]) == (3 * PROMPT_TOKENS, completion)
    expected = (3 * PROMPT_TOKENS * PRICE["input_per_mtok"] + completion * PRICE["output_per_mtok"]) / 1e6
    assert row["cost_usd"] == pytest.approx(expected)
    lines = [x for x in log_lines(gw) if x.get("user") == "dave"]
    assert [(x["api"], x["status"], len(x["attempts"])) for x in lines] == [("responses", 200, 1)] * 3
    assert [x["usage"]["prompt_tokens"] for x in lines] == [PROMPT_TOKENS] * 3


async def test_a_passed_through_stream_that_breaks_ends_with_an_error_the_sdk_raises(gw: InProcessGateway) -> None:
    stream = await gw.sdk().responses.create(model=GPT, input="cut off", stream=True)
    seen: list[str] = []
    with pytest.raises(openai.APIError, match="OpenAI"):
        async for event in stream:
            seen.append(event.type)
    assert seen[0] == "response.created" and "response.output_text.delta" in seen
    [line] = [x for x in log_lines(gw) if x.get("api") == "responses"]
    assert line["status"] == 502


@pytest.mark.parametrize("stream", [False, True])
async def test_a_renamed_model_is_sent_under_the_providers_name_and_answered_under_its_own(
    gw: InProcessGateway, fakes: FakeProviders, stream: bool
) -> None:
    """FLAKY is `model_map`ped to GPT on the deployment that answers (after two on a closed port)."""
    if stream:
        async with gw.sdk().responses.stream(model=FLAKY, input="renamed stream") as helper:
            events = [e async for e in helper]
            answer = await helper.get_final_response()
        assert events[0].response.model == FLAKY  # type: ignore[union-attr]
    else:
        answer = await gw.sdk().responses.create(model=FLAKY, input="renamed")
    assert answer.model == FLAKY and answer.id.startswith("resp_fake")
    assert fakes.requests[-1].path == "/openai/responses" and fakes.requests[-1].body["model"] == GPT
    [line] = [x for x in log_lines(gw) if x.get("model") == FLAKY]
    assert line["usage"]["prompt_tokens"] == PROMPT_TOKENS


@pytest.mark.parametrize("stream", [False, True])
@pytest.mark.parametrize("model", [MIXED, MIXED_BACK])
async def test_failover_between_a_native_and_a_translated_deployment(
    gw: InProcessGateway, fakes: FakeProviders, model: str, stream: bool
) -> None:
    """MIXED: OpenAI (native) is down, the translated one answers; MIXED_BACK: the reverse."""
    if stream:
        async with gw.sdk().responses.stream(model=model, input="over") as helper:
            answer = await helper.get_final_response()
    else:
        answer = await gw.sdk().responses.create(model=model, input="over")
    assert answer.output_text == "Hello from openai: over" and answer.model == model
    assert answer.usage is not None and answer.usage.input_tokens == PROMPT_TOKENS
    [sent] = fakes.requests
    if model == MIXED:
        assert sent.path == "/openai/chat/completions" and not answer.id.startswith("resp_fake")
    else:
        assert sent.path == "/openai/responses" and answer.id == "resp_fake1"
    [line] = [x for x in log_lines(gw) if x.get("model") == model]
    assert [a["status"] for a in line["attempts"]] == [502, 502, 200] and line["usage"]["prompt_tokens"] == 11


# one request path -------------------------------------------------------------------------


async def test_each_api_counts_once_and_records_its_usage_and_cost(gw: InProcessGateway) -> None:
    secret = await gw.add_token("bob", rate_limit=10)
    await claude(gw, secret).messages.create(model=GPT, max_tokens=9, messages=[{"role": "user", "content": "a"}])
    async with claude(gw, secret).messages.stream(
        model=GPT, max_tokens=9, messages=[{"role": "user", "content": "b"}]) as stream:
        await stream.get_final_message()
    raw = await gw.sdk(secret).responses.with_raw_response.create(model=GPT, input="c")
    assert raw.headers["x-ratelimit-remaining-requests"] == "7"
    stream = await gw.sdk(secret).responses.create(model=GPT, input="d", stream=True)
    assert [e async for e in stream]
    await gw.sdk(secret).chat.completions.create(model=GPT, messages=[{"role": "user", "content": "e"}])
    assert await requests_today(gw, secret) == 5
    [row] = await rows(gw, "bob")
    assert (row["model"], row["requests"], row["errors"]) == (GPT, 5, 0)
    assert row["prompt_tokens"] == 5 * PROMPT_TOKENS and row["completion_tokens"] > 0
    expected = (row["prompt_tokens"] * PRICE["input_per_mtok"] + row["completion_tokens"] * 2.0) / 1e6
    assert row["cost_usd"] == pytest.approx(expected) and row["cost_usd"] > 0
    apis = [x.get("api") for x in log_lines(gw) if x.get("user") == "bob"]
    assert apis == ["messages", "messages", "responses", "responses", None]


@pytest.mark.parametrize("api", ["messages", "responses", "embeddings"])
async def test_routing_fails_over_across_deployments(gw: InProcessGateway, api: str) -> None:
    if api == "messages":
        raw = await claude(gw).messages.with_raw_response.create(
            model=FLAKY, max_tokens=9, messages=[{"role": "user", "content": "over"}])
        assert (await raw.parse()).content[0].text == "Hello from openai: over"
    elif api == "embeddings":
        raw = await gw.sdk().embeddings.with_raw_response.create(model=FLAKY, input="over")
        assert raw.parse().model == FLAKY  # the provider's name for it is not shown
    else:
        raw = await gw.sdk().responses.with_raw_response.create(model=FLAKY, input="over")
        assert raw.parse().output_text == "Hello from openai: over"
    assert raw.headers["x-llm-wrapper-provider"] == "flaky_up"
    [line] = [x for x in log_lines(gw) if x.get("model") == FLAKY]
    assert [a["status"] for a in line["attempts"]] == [502, 502, 200] and line["api"] == api


# /v1/embeddings -----------------------------------------------------------------------------


async def test_embeddings_pass_through_counted_once_with_usage_and_cost(
    gw: InProcessGateway, fakes: FakeProviders
) -> None:
    secret = await gw.add_token("carol", rate_limit=10)
    client = gw.sdk(secret)
    one = await client.embeddings.create(model=EMBED, input="a sentence")  # the SDK asks for base64
    assert [d.embedding for d in one.data] == [[0.25] * EMBEDDING_SIZE]
    assert fakes.requests[-1].body == {"model": EMBED, "input": "a sentence", "encoding_format": "base64"}
    raw = await client.embeddings.with_raw_response.create(model=EMBED, input=["x", "y", "z"],
                                                           encoding_format="float", dimensions=4)
    many = raw.parse()
    assert [d.embedding[0] for d in many.data] == [0.25, 0.5, 0.75]
    assert many.usage.prompt_tokens == 3 * EMBEDDING_TOKENS
    assert fakes.requests[-1].body["encoding_format"] == "float" and fakes.requests[-1].body["dimensions"] == 4
    assert raw.headers["x-ratelimit-remaining-requests"] == "8"
    assert await requests_today(gw, secret) == 2
    [row] = await rows(gw, "carol")
    assert (row["model"], row["requests"], row["errors"]) == (EMBED, 2, 0)
    assert (row["prompt_tokens"], row["completion_tokens"]) == (4 * EMBEDDING_TOKENS, 0)
    assert row["cost_usd"] == pytest.approx(4 * EMBEDDING_TOKENS * 0.02 / 1e6)
    assert [x.get("api") for x in log_lines(gw) if x.get("user") == "carol"] == ["embeddings", "embeddings"]


async def test_embeddings_errors_are_openai_shaped(gw: InProcessGateway) -> None:
    with pytest.raises(openai.BadRequestError) as bad:
        await gw.sdk().embeddings.create(model=EMBED, input=[])
    assert bad.value.body["param"] == "input"
    with pytest.raises(openai.BadRequestError):
        await gw.sdk().embeddings.create(model=EMBED, input="x", dimensions="four")  # type: ignore[arg-type]
    with pytest.raises(openai.NotFoundError):
        await gw.sdk().embeddings.create(model="no-such-embedder", input="x")
    with pytest.raises(openai.AuthenticationError):
        await gw.sdk("sk-nope-000000000000").embeddings.create(model=EMBED, input="x")
    with pytest.raises(openai.BadRequestError) as upstream:
        await gw.sdk().embeddings.create(model=EMBED, input="fail:400")
    assert "fake openai says 400" in upstream.value.message


@pytest.mark.parametrize("stream", [False, True])
async def test_an_answer_made_in_the_gateway_is_translated_too(gw: InProcessGateway, stream: bool) -> None:
    """`speed` update questions are answered by the gateway itself (no provider): same translation."""
    ask = [{"role": "user", "content": "any updates?"}]
    if stream:
        async with claude(gw).messages.stream(model="speed", max_tokens=20, messages=ask) as s:
            message = await s.get_final_message()
        async with gw.sdk().responses.stream(model="speed", input="any updates?") as r:
            response = await r.get_final_response()
    else:
        message = await claude(gw).messages.create(model="speed", max_tokens=20, messages=ask)
        response = await gw.sdk().responses.create(model="speed", input="any updates?")
    assert message.content[0].text.startswith("No new updates") and message.model == "speed"
    assert response.output_text == message.content[0].text
    assert [x["provider"] for x in log_lines(gw) if x.get("model") == "speed"] == ["local", "local"]


async def test_a_provider_5xx_and_a_body_too_large_are_anthropic_shaped(gw: InProcessGateway) -> None:
    before = await requests_today(gw, gw.token)
    with pytest.raises(anthropic.InternalServerError) as failed:  # the fake's 503, after the routing's retry
        await claude(gw).messages.create(model=GPT, max_tokens=5, messages=[{"role": "user", "content": "fail:503"}])
    assert failed.value.status_code == 503 and failed.value.body["error"]["type"] == "api_error"
    assert await requests_today(gw, gw.token) == before  # no answer, no fault of the caller: given back
    huge = "x" * gw.settings.max_body_bytes
    with pytest.raises(anthropic.APIStatusError) as too_large:
        await claude(gw).messages.create(model=GPT, max_tokens=5, messages=[{"role": "user", "content": huge}])
    assert too_large.value.status_code == 413
    assert too_large.value.body["error"]["type"] == "request_too_large"
