"""xAI: Live Search requests go to the Responses API with search tools; answers come back as Chat Completions."""

from __future__ import annotations

import json
from typing import Any

import httpx
import orjson
import pytest
from openai import APIError, OpenAI

from llm_wrapper.config import ProviderConfig
from llm_wrapper.errors import UpstreamError, UpstreamUnreachable
from llm_wrapper.providers.base import Exchange
from llm_wrapper.providers.xai import SearchCall, XAIProvider, search_tools
from llm_wrapper.sse import EventSplitter
from llm_wrapper.translation.responses import chat_completion

from .fakes import xai as fake
from .fakes.server import ThreadedServer
from .gateway_process import GatewayProcess

NEWS = {"mode": "auto", "sources": [{"type": "web"}, {"type": "news"}, {"type": "x"}]}


def provider(extra: dict[str, Any] | None = None) -> XAIProvider:
    config = ProviderConfig(
        key="xai",
        name="xAI",
        base_url="http://xai.test/v1",
        api_key_env="XAI_API_KEY",
        supported_models=["grok-4"],
        payload_extra_parameters=extra or {},
    )
    return XAIProvider(config, "key")


def body(**fields: Any) -> dict[str, Any]:
    return {"model": "grok-4", "messages": [{"role": "user", "content": "news?"}], **fields}


def sse_chunks(raw: bytes) -> list[Any]:
    events = list(EventSplitter().feed(raw))
    return [e.data if e.data == b"[DONE]" else orjson.loads(e.data) for e in events]


def stream_bytes(request: dict[str, Any]) -> bytes:
    """The fake's stream for `request`, exactly as it is written to the wire."""
    return b"".join(
        f"event: {e['type']}\ndata: {json.dumps(e)}\n\n".encode()
        for e in fake.stream_events(request)
    )


# request mapping ------------------------------------------------------------


def test_without_search_parameters_the_body_passes_through_to_chat_completions():
    sent = body(temperature=0.2, max_tokens=9)
    call = provider().prepare(sent, Exchange(model="grok-4", stream=False))
    assert call.url == "http://xai.test/v1/chat/completions"
    assert not isinstance(call, SearchCall)
    assert orjson.loads(call.payload) == sent


def test_mode_off_drops_the_field_and_stays_on_chat_completions():
    call = provider().prepare(
        body(search_parameters={"mode": "off"}), Exchange(model="grok-4", stream=False)
    )
    assert call.url.endswith("/chat/completions")
    assert "search_parameters" not in orjson.loads(call.payload)


def test_configured_search_parameters_win_and_go_to_responses_with_tools():
    client = body(
        search_parameters={"mode": "off"},
        max_tokens=50,
        temperature=0.3,
        top_p=0.9,
        stream=True,
        messages=[
            {"role": "system", "content": "Be brief."},
            {
                "role": "user",
                "content": [
                    {"type": "text", "text": "What is this?"},
                    {
                        "type": "image_url",
                        "image_url": {"url": "https://img.example/a.png", "detail": "low"},
                    },
                ],
            },
            {"role": "assistant", "content": "A cat."},
            {"role": "user", "content": "Any news about it?"},
        ],
    )
    call = provider(
        {"search_parameters": {"sources": [{"type": "web", "allowed_websites": ["bbc.co.uk"]}]}}
    ).prepare(client, Exchange(model="grok-4", stream=True))
    sent = orjson.loads(call.payload)
    assert call.url == "http://xai.test/v1/responses"
    assert sent == {
        "model": "grok-4",
        "input": [
            {"role": "system", "content": "Be brief."},
            {
                "role": "user",
                "content": [
                    {"type": "input_text", "text": "What is this?"},
                    {
                        "type": "input_image",
                        "image_url": "https://img.example/a.png",
                        "detail": "low",
                    },
                ],
            },
            {"role": "assistant", "content": "A cat."},
            {"role": "user", "content": "Any news about it?"},
        ],
        "tools": [{"type": "web_search", "allowed_domains": ["bbc.co.uk"]}],
        "store": False,
        "max_output_tokens": 50,
        "temperature": 0.3,
        "top_p": 0.9,
        "stream": True,
    }


def test_sources_map_to_web_search_and_x_search_filters():
    tools = search_tools(
        {
            "from_date": "2026-01-01",
            "to_date": "2026-02-01",
            "sources": [
                {"type": "web", "excluded_websites": ["spam.example", "ads.example"]},
                {"type": "news", "excluded_websites": ["ads.example"], "country": "GB"},
                {"type": "x", "x_handles": ["xai"], "post_view_count": 100},
            ],
        }
    )
    assert tools == [
        {"type": "web_search", "excluded_domains": ["ads.example"]},
        {
            "type": "x_search",
            "allowed_x_handles": ["xai"],
            "from_date": "2026-01-01",
            "to_date": "2026-02-01",
        },
    ]


def test_no_sources_means_web_and_x_and_an_unfiltered_source_widens_the_allow_list():
    assert search_tools({"mode": "on"}) == [{"type": "web_search"}, {"type": "x_search"}]
    assert search_tools({"sources": [{"type": "rss", "links": ["https://feed.example/rss"]}]}) == [
        {"type": "web_search"}
    ]
    widened = search_tools(
        {"sources": [{"type": "web", "allowed_websites": ["a.example"]}, {"type": "news"}]}
    )
    assert widened == [{"type": "web_search"}]
    both = search_tools(
        {
            "sources": [
                {
                    "type": "web",
                    "allowed_websites": ["a.example"],
                    "excluded_websites": ["b.example"],
                },
                {"type": "x", "included_x_handles": ["a"], "excluded_x_handles": ["b"]},
            ]
        }
    )
    assert both == [
        {"type": "web_search", "allowed_domains": ["a.example"]},
        {"type": "x_search", "allowed_x_handles": ["a"]},
    ]


def test_response_format_and_reasoning_effort_carry_over():
    schema = {"name": "answer", "schema": {"type": "object"}, "strict": True}
    call = provider({"search_parameters": NEWS}).prepare(
        body(
            response_format={"type": "json_schema", "json_schema": schema}, reasoning_effort="low"
        ),
        Exchange(model="grok-4", stream=False),
    )
    sent = orjson.loads(call.payload)
    assert sent["text"] == {"format": {"type": "json_schema", **schema}}
    assert sent["reasoning"] == {"effort": "low"}


def test_client_function_tools_keep_chat_completions_without_search():
    tools = [{"type": "function", "function": {"name": "f", "parameters": {"type": "object"}}}]
    call = provider({"search_parameters": NEWS}).prepare(
        body(tools=tools), Exchange(model="grok-4", stream=False)
    )
    assert call.url.endswith("/chat/completions")
    sent = orjson.loads(call.payload)
    assert "search_parameters" not in sent and sent["tools"] == tools


# response mapping -----------------------------------------------------------


def responses_answer(**changes: Any) -> dict[str, Any]:
    return {**fake.response_object({"model": "grok-4-0709"}, "".join(fake.ANSWER)), **changes}


def test_a_responses_answer_becomes_a_chat_completion_with_citations():
    xai = provider({"search_parameters": NEWS})
    exchange = Exchange(model="grok-4", stream=False)
    call = xai.prepare(body(), exchange)
    out = orjson.loads(xai.translate_completion(call, orjson.dumps(responses_answer()), exchange))
    assert out["id"] == exchange.id and out["id"].startswith("chatcmpl-")
    assert out["object"] == "chat.completion"
    assert out["created"] == exchange.created and isinstance(out["created"], int)
    assert out["model"] == "grok-4"
    assert out["choices"] == [
        {
            "index": 0,
            "message": {
                "role": "assistant",
                "content": "Grok read the news.",
                "refusal": None,
                "reasoning_content": fake.REASONING,
            },
            "logprobs": None,
            "finish_reason": "stop",
        }
    ]
    assert out["citations"] == [*fake.CITATIONS, fake.ANNOTATED]
    assert out["usage"] == {
        "prompt_tokens": 12,
        "completion_tokens": 4,
        "total_tokens": 16,
        "prompt_tokens_details": {"cached_tokens": 2},
        "completion_tokens_details": {"reasoning_tokens": 1},
        "num_sources_used": 0,
        "num_server_side_tools_used": 1,
    }
    assert exchange.usage == out["usage"]


def test_return_citations_false_leaves_them_out():
    xai = provider({"search_parameters": {**NEWS, "return_citations": False}})
    exchange = Exchange(model="grok-4", stream=False)
    call = xai.prepare(body(), exchange)
    out = orjson.loads(xai.translate_completion(call, orjson.dumps(responses_answer()), exchange))
    assert "citations" not in out
    assert out["choices"][0]["message"]["content"] == "Grok read the news."


def test_chat_style_usage_untyped_output_items_and_a_truncated_answer():
    answer = {
        "object": "response",
        "status": "incomplete",
        "incomplete_details": {"reason": "max_output_tokens"},
        "output": [{"content": [{"type": "output_text", "text": "Half"}]}],
        "usage": {"prompt_tokens": 7, "completion_tokens": 3},
    }
    out = chat_completion(answer, Exchange(model="grok-4", stream=False))
    assert out["choices"][0]["message"]["content"] == "Half"
    assert out["choices"][0]["finish_reason"] == "length"
    assert out["usage"] == {"prompt_tokens": 7, "completion_tokens": 3, "total_tokens": 10}
    assert out["citations"] == []


def test_a_failed_response_raises_the_upstream_message():
    xai = provider({"search_parameters": NEWS})
    exchange = Exchange(model="grok-4", stream=False)
    call = xai.prepare(body(), exchange)
    failed = {
        "object": "response",
        "status": "failed",
        "error": {"code": "x", "message": "tool broke"},
    }
    with pytest.raises(UpstreamError, match="tool broke"):
        xai.translate_completion(call, orjson.dumps(failed), exchange)
    with pytest.raises(ValueError):
        xai.translate_completion(call, b"<html>", exchange)


# stream mapping -------------------------------------------------------------


def translate_stream(
    raw: bytes, *, include_usage: bool, step: int = 7
) -> tuple[list[Any], Exchange]:
    xai = provider({"search_parameters": NEWS})
    exchange = Exchange(model="grok-4", stream=True, include_usage=include_usage)
    call = xai.prepare(body(stream=True), exchange)
    translator = xai.stream_translator(call, exchange)
    out = b"".join(translator.feed(raw[i : i + step]) for i in range(0, len(raw), step))
    return sse_chunks(out + translator.end()), exchange


def test_a_responses_stream_becomes_chat_completion_chunks():
    chunks, exchange = translate_stream(stream_bytes(body()), include_usage=True)
    assert chunks[-1] == b"[DONE]"
    chunks = chunks[:-1]
    assert {c["object"] for c in chunks} == {"chat.completion.chunk"}
    assert {c["id"] for c in chunks} == {exchange.id}
    assert {c["model"] for c in chunks} == {"grok-4"}
    assert chunks[0]["choices"][0]["delta"] == {"role": "assistant", "content": ""}
    text = "".join(c["choices"][0]["delta"].get("content", "") for c in chunks if c["choices"])
    assert text == "Grok read the news."
    reasoning = "".join(c["choices"][0]["delta"].get("reasoning_content", "") for c in chunks if c["choices"])
    assert reasoning == fake.REASONING
    final, usage = chunks[-2], chunks[-1]
    assert final["choices"][0]["finish_reason"] == "stop"
    assert final["citations"] == [*fake.CITATIONS, fake.ANNOTATED]
    assert usage["choices"] == [] and usage["usage"]["total_tokens"] == 16
    assert all(c["choices"][0]["finish_reason"] is None for c in chunks[:-2])
    assert exchange.usage["prompt_tokens"] == 12


def test_without_include_usage_there_is_no_usage_chunk():
    chunks, exchange = translate_stream(stream_bytes(body()), include_usage=False, step=1)
    assert chunks[-1] == b"[DONE]"
    assert all(c["choices"] for c in chunks[:-1])
    assert chunks[-2]["citations"][0] == fake.CITATIONS[0]
    assert exchange.usage["completion_tokens"] == 4


def test_crlf_framing_split_anywhere_gives_the_same_chunks():
    def without_ids(chunks: list[Any]) -> list[Any]:
        return [c if c == b"[DONE]" else {**c, "id": None, "created": None} for c in chunks]

    plain, _ = translate_stream(stream_bytes(body()), include_usage=True)
    crlf, _ = translate_stream(
        stream_bytes(body()).replace(b"\n", b"\r\n"), include_usage=True, step=1
    )
    assert len(plain) > 5
    assert without_ids(crlf) == without_ids(plain)


def test_text_sent_only_in_the_completed_response_is_not_lost():
    completed = {"type": "response.completed", "response": responses_answer()}
    raw = b"data: " + orjson.dumps(completed) + b"\n\n"
    chunks, _ = translate_stream(raw, include_usage=False)
    assert chunks[0]["choices"][0]["delta"]["role"] == "assistant"
    assert (
        "".join(c["choices"][0]["delta"].get("content", "") for c in chunks[:-1])
        == "Grok read the news."
    )
    assert "".join(c["choices"][0]["delta"].get("reasoning_content", "") for c in chunks[:-1]) == fake.REASONING


@pytest.mark.parametrize(
    "event",
    [
        {
            "type": "error",
            "code": "overloaded",
            "message": "search backend overloaded",
            "param": None,
        },
        {"type": "error", "error": {"code": "overloaded", "message": "search backend overloaded"}},
        {
            "type": "response.failed",
            "response": {"status": "failed", "error": {"message": "search backend overloaded"}},
        },
    ],
)
def test_an_error_event_mid_stream_raises_for_the_gateway_to_report(event):
    xai = provider({"search_parameters": NEWS})
    exchange = Exchange(model="grok-4", stream=True)
    translator = xai.stream_translator(xai.prepare(body(stream=True), exchange), exchange)
    raw = stream_bytes(body())
    first = translator.feed(raw[: raw.index(b"event: response.output_text.annotation.added")])
    assert b"chat.completion.chunk" in first
    with pytest.raises(UpstreamError, match="search backend overloaded") as raised:
        translator.feed(b"data: " + orjson.dumps(event) + b"\n\n")
    assert set(raised.value.body()["error"]) == {"message", "type", "param", "code"}


def test_text_read_together_with_an_error_goes_out_before_the_error():
    xai = provider({"search_parameters": NEWS})
    exchange = Exchange(model="grok-4", stream=True)
    translator = xai.stream_translator(xai.prepare(body(stream=True), exchange), exchange)
    raw = stream_bytes({"model": "grok-4", "input": [{"role": "user", "content": fake.FAIL}]})
    assert raw.rstrip().endswith(b'"param": null}')
    text = "".join(
        c["choices"][0]["delta"].get("content", "") for c in sse_chunks(translator.feed(raw))
    )
    assert text == "Grok read the news."
    with pytest.raises(UpstreamError, match="search backend overloaded"):
        translator.end()


def test_a_stream_that_stops_before_completion_is_an_error_not_a_silent_stop():
    raw = stream_bytes(body())
    cut = raw[: raw.index(b"event: response.output_text.annotation.added")]
    xai = provider({"search_parameters": NEWS})
    exchange = Exchange(model="grok-4", stream=True)
    translator = xai.stream_translator(xai.prepare(body(stream=True), exchange), exchange)
    translator.feed(cut)
    with pytest.raises(UpstreamUnreachable):
        translator.end()


# end to end: the openai SDK -> the gateway process -> the fake xAI --------------


@pytest.fixture(scope="module")
def xai_server():
    server_app = fake.FakeXAI()
    server = ThreadedServer(server_app.app).start()
    yield server_app, server
    server.stop()


@pytest.fixture(scope="module")
def client(xai_server, tmp_path_factory):
    _, server = xai_server
    entry = {"base_url": f"{server.url}/v1", "api_key_env": "XAI_API_KEY", "adapter": "xai"}
    config = {
        "xai": {
            **entry,
            "name": "xAI",
            "supported_models": ["grok-4"],
            "payload_extra_parameters": {"search_parameters": NEWS},
        },
        "grok_plain": {
            **entry,
            "name": "Grok plain",
            "supported_models": ["grok-3-mini"],
            "payload_extra_parameters": {},
        },
    }
    gateway = GatewayProcess(
        tmp_path_factory.mktemp("xai"), {"XAI_API_KEY": "xai-test-key"}, config=config
    )
    token = gateway.add_token("xai-user")
    gateway.start()
    try:
        with OpenAI(base_url=f"{gateway.url}/v1", api_key=token, max_retries=0) as sdk:
            yield sdk
    finally:
        gateway.stop()


def test_sdk_gets_searched_answer_and_citations(xai_server, client):
    app, _ = xai_server
    before = len(app.requests)
    completion = client.chat.completions.create(
        model="grok-4",
        messages=[{"role": "user", "content": "What happened today?"}],
        max_tokens=64,
    )
    assert completion.choices[0].message.content == "Grok read the news."
    assert completion.choices[0].message.model_extra["reasoning_content"] == fake.REASONING
    assert completion.choices[0].finish_reason == "stop"
    assert completion.model == "grok-4"
    assert completion.usage.prompt_tokens == 12 and completion.usage.total_tokens == 16
    assert completion.model_extra["citations"] == [*fake.CITATIONS, fake.ANNOTATED]
    ((path, sent),) = app.requests[before:]
    assert path == "/v1/responses"
    assert "search_parameters" not in sent
    assert [t["type"] for t in sent["tools"]] == ["web_search", "x_search"]
    assert sent["input"] == [{"role": "user", "content": "What happened today?"}]
    assert sent["max_output_tokens"] == 64


def test_sdk_streams_searched_answer_with_citations_and_usage(xai_server, client):
    app, _ = xai_server
    before = len(app.requests)
    stream = client.chat.completions.create(
        model="grok-4",
        messages=[{"role": "user", "content": "What happened today?"}],
        stream=True,
        stream_options={"include_usage": True},
    )
    chunks = list(stream)
    text = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
    assert text == "Grok read the news."
    reasoning = "".join((c.choices[0].delta.model_extra or {}).get("reasoning_content") or "" for c in chunks if c.choices)
    assert reasoning == fake.REASONING
    finals = [c for c in chunks if c.choices and c.choices[0].finish_reason]
    assert [c.choices[0].finish_reason for c in finals] == ["stop"]
    assert finals[0].model_extra["citations"] == [*fake.CITATIONS, fake.ANNOTATED]
    assert chunks[-1].choices == [] and chunks[-1].usage.completion_tokens == 4
    ((path, sent),) = app.requests[before:]
    assert path == "/v1/responses" and sent["stream"] is True
    assert {t["type"] for t in sent["tools"]} == {"web_search", "x_search"}
    assert "search_parameters" not in sent


def test_sdk_stream_without_include_usage_gets_no_usage_chunk(client):
    chunks = list(
        client.chat.completions.create(
            model="grok-4", messages=[{"role": "user", "content": "news"}], stream=True
        )
    )
    assert all(c.choices for c in chunks)
    assert all(c.usage is None for c in chunks)


def test_sdk_sees_an_xai_error_mid_stream(client):
    stream = client.chat.completions.create(
        model="grok-4", messages=[{"role": "user", "content": fake.FAIL}], stream=True
    )
    with pytest.raises(APIError, match="search backend overloaded"):
        for _ in stream:
            pass


def test_plain_model_passes_through_to_chat_completions_untouched(xai_server, client):
    app, _ = xai_server
    before = len(app.requests)
    completion = client.chat.completions.create(
        model="grok-3-mini", messages=[{"role": "user", "content": "hi"}], temperature=0.5
    )
    assert completion.choices[0].message.content == "plain answer"
    assert completion.model_extra.get("citations") is None
    ((path, sent),) = app.requests[before:]
    assert path == "/v1/chat/completions"
    assert sent == {
        "model": "grok-3-mini",
        "messages": [{"role": "user", "content": "hi"}],
        "temperature": 0.5,
    }


def test_the_fake_rejects_search_parameters_like_xai(xai_server):
    """The guard the end-to-end tests rely on: search_parameters reaching xAI is a 410."""
    _, server = xai_server
    for path in ("/v1/chat/completions", "/v1/responses"):
        answer = httpx.post(
            f"{server.url}{path}",
            json={**body(), "search_parameters": NEWS},
            headers={"Authorization": "Bearer xai-test-key"},
        )
        assert answer.status_code == 410
        assert answer.json()["error"].startswith("Live search is deprecated")


# /v1/responses: passed through to xAI's own /responses ---------------------------------------


def test_sdk_responses_pass_through_with_configured_search_as_tools(xai_server, client):
    """No tools from the client: the configured `search_parameters` become xAI's search tools."""
    app, _ = xai_server
    before = len(app.requests)
    answer = client.responses.create(model="grok-4", input="What happened today?", instructions="Be brief.")
    ((path, sent),) = app.requests[before:]
    assert path == "/v1/responses" and "search_parameters" not in sent
    assert sent == {"model": "grok-4", "input": "What happened today?", "instructions": "Be brief.",
                    "tools": search_tools(NEWS)}
    assert answer.output_text == "Grok read the news." and answer.model == "grok-4"
    assert answer.model_extra["citations"] == fake.CITATIONS  # xAI's own field, passed through
    assert [item.type for item in answer.output] == [item["type"] for item in fake.RESPONSE["output"]]
    assert answer.usage.input_tokens == fake.USAGE["input_tokens"]


def test_sdk_responses_stream_keeps_the_clients_own_tools_and_says_search_was_skipped(xai_server, client):
    app, _ = xai_server
    before = len(app.requests)
    raw = client.responses.with_raw_response.create(
        model="grok-4", input="news from x", tools=[{"type": "x_search", "allowed_x_handles": ["xai"]}],
        stream=True,
    )
    assert raw.headers["x-llm-wrapper-search"] == "skipped: the request has its own tools"
    events = list(raw.parse())
    assert events[-1].type == "response.completed" and events[-1].response.model == "grok-4"
    assert "".join(e.delta for e in events if e.type == "response.output_text.delta") == "".join(fake.ANSWER)
    ((path, sent),) = app.requests[before:]
    assert path == "/v1/responses" and sent["stream"] is True and "search_parameters" not in sent
    assert sent["tools"] == [{"type": "x_search", "allowed_x_handles": ["xai"]}]
