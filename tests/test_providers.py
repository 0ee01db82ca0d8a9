"""The adapters' mapping functions and the registry, without HTTP.

Upstream shapes come from the fake provider (`tests.fakes.providers.Reply`), so
these tests and the end-to-end ones agree on each provider's wire format.
"""

from __future__ import annotations

import json
from typing import Any

import orjson
import pytest

from llm_wrapper.config import ProviderConfig
from llm_wrapper.errors import ModelNotFound, ServiceUnavailable
from llm_wrapper.providers import ProviderRegistry, adapter_for
from llm_wrapper.providers.base import Exchange, Passthrough, Provider
from llm_wrapper.providers.openai import OpenAIProvider
from llm_wrapper.providers.parallel import ParallelProvider
from llm_wrapper.providers.perplexity import PerplexityProvider
from llm_wrapper.providers.sambanova import SambaNovaProvider
from llm_wrapper.providers.together import TogetherProvider
from llm_wrapper.providers.xai import XAIProvider
from llm_wrapper.routing import Router
from llm_wrapper.sse import EventSplitter
from tests.fakes.providers import BASIS, CITATIONS, INTERACTION_ID, SEARCH_RESULTS, Reply


def make(flavor: str, key: str | None = "k-123", **fields: Any) -> Provider:
    config = ProviderConfig(
        key=fields.pop("key", flavor),
        name=fields.pop("name", flavor.title()),
        base_url=fields.pop("base_url", f"https://{flavor}.example/v1/"),
        api_key_env=fields.pop("api_key_env", f"{flavor.upper()}_KEY"),
        supported_models=fields.pop("supported_models", [f"{flavor}-model"]),
        **fields,
    )
    return adapter_for(config)(config, key)


def upstream_stream(flavor: str, text: str, include_usage: bool, done: bool = True) -> bytes:
    reply = Reply(flavor, f"{flavor}-model", text)
    events = [b"data: " + json.dumps(c).encode() + b"\n\n" for c in reply.chunks(include_usage)]
    return b"".join(events) + (b"data: [DONE]\n\n" if done else b"")


def relay(provider: Provider, exchange: Exchange, raw: bytes, size: int = 7) -> tuple[list[dict[str, Any]], int]:
    """Feed `raw` in `size`-byte pieces; the client's chunks and how many [DONE]s it got."""
    translator = provider.stream_translator(provider.prepare({"model": exchange.model, "messages": []}, exchange), exchange)
    out = b"".join(translator.feed(raw[i : i + size]) for i in range(0, len(raw), size)) + translator.end()
    events = list(EventSplitter().feed(out))
    assert out.endswith(b"\n\n")
    chunks = [orjson.loads(e.data) for e in events if e.data != b"[DONE]"]
    return chunks, sum(e.data == b"[DONE]" for e in events)


def content(chunks: list[dict[str, Any]]) -> str:
    return "".join(c["delta"].get("content") or "" for chunk in chunks for c in chunk["choices"])


# registry ----------------------------------------------------------------


@pytest.mark.parametrize(
    ("key", "name", "adapter", "expected"),
    [
        ("openai", "OpenAI", None, OpenAIProvider),
        ("pplx", "Sonar", None, PerplexityProvider),
        ("mine", "SambaNova Cloud", None, SambaNovaProvider),
        ("together_eu", "x", None, TogetherProvider),
        ("custom", "Custom", None, OpenAIProvider),
        ("custom", "Custom", "parallel", ParallelProvider),
        ("samba_openai", "Samba via OpenAI SDK", None, SambaNovaProvider),
        ("grok_backup", "Grok", None, XAIProvider),
        ("openai_compatible_proxy", "Perplexity mirror", None, OpenAIProvider),
        ("mirror", "x.ai mirror", None, XAIProvider),
        ("sambaxyz", "Custom", None, OpenAIProvider),
    ],
)
def test_adapter_for(key: str, name: str, adapter: str | None, expected: type) -> None:
    config = ProviderConfig(key=key, name=name, base_url="https://x", api_key_env="K", adapter=adapter)
    assert adapter_for(config) is expected


def test_unknown_adapter_is_a_config_error() -> None:
    config = ProviderConfig(key="a", name="a", base_url="https://x", api_key_env="K", adapter="nope")
    with pytest.raises(ValueError, match="nope"):
        adapter_for(config)


def test_router_resolves_models_and_refuses_unknown_or_disabled() -> None:
    on, off = make("openai"), make("together", key=None, api_key_env="TOGETHER_SECRET")
    registry = ProviderRegistry([on, off])
    router = Router(registry.providers.values())
    assert router.plan("openai-model").deployment.provider is on
    with pytest.raises(ModelNotFound) as unknown:
        router.plan("nope")
    assert unknown.value.status == 404 and unknown.value.code == "model_not_found"
    with pytest.raises(ServiceUnavailable) as disabled:
        router.plan("together-model")
    assert disabled.value.status == 503 and "TOGETHER_SECRET" in disabled.value.message
    assert registry.enabled_models() == [("openai-model", on)]


def test_repr_never_shows_the_key() -> None:
    assert "k-123" not in repr(make("openai"))


# request mapping ---------------------------------------------------------


def test_prepare_merges_extra_parameters_config_winning() -> None:
    provider = make("openai", payload_extra_parameters={"temperature": 0.1, "seed": 7})
    exchange = Exchange(model="openai-model", stream=False)
    call = provider.prepare({"model": "openai-model", "messages": [], "temperature": 0.9, "top_p": 1}, exchange)
    assert call.url == "https://openai.example/v1/chat/completions"
    assert orjson.loads(call.payload) == {
        "model": "openai-model", "messages": [], "temperature": 0.1, "top_p": 1, "seed": 7
    }
    assert provider.auth_headers() == {"Authorization": "Bearer k-123"}


def test_parallel_flattens_content_arrays_and_counts_prompt() -> None:
    provider = make("parallel", base_url="https://api.parallel.example")
    exchange = Exchange(model="speed", stream=False)
    messages = [{"role": "user", "content": [{"type": "text", "text": "a"}, {"type": "image_url"}, {"type": "text", "text": "bc"}]}]
    call = provider.prepare({"model": "speed", "messages": messages}, exchange)
    assert call.url == "https://api.parallel.example/chat/completions"
    assert orjson.loads(call.payload)["messages"] == [{"role": "user", "content": "a\nbc"}]
    assert exchange.prompt_chars == 4


# non-streaming answers ----------------------------------------------------


def translate(provider: Provider, flavor: str, text: str = "one two three four") -> tuple[dict[str, Any], Exchange]:
    exchange = Exchange(model=f"{flavor}-model", stream=False)
    raw = json.dumps(Reply(flavor, f"{flavor}-model", text).completion()).encode()
    call = provider.prepare({"model": exchange.model, "messages": []}, exchange)
    return orjson.loads(provider.translate_completion(call, raw, exchange)), exchange


def test_openai_answer_passes_through_and_usage_is_kept() -> None:
    out, exchange = translate(make("openai"), "openai")
    assert out == Reply("openai", "openai-model", "one two three four").completion()
    assert exchange.usage == out["usage"]


def test_perplexity_answer_keeps_citations_and_search_results() -> None:
    out, exchange = translate(make("perplexity"), "perplexity")
    assert out["citations"] == CITATIONS and out["search_results"] == SEARCH_RESULTS
    assert exchange.usage["citation_tokens"] == 3


def test_sambanova_created_becomes_an_integer() -> None:
    out, _ = translate(make("sambanova"), "sambanova")
    assert isinstance(out["created"], int)


def test_together_eos_becomes_stop() -> None:
    out, _ = translate(make("together"), "together")
    assert out["choices"][0]["finish_reason"] == "stop"


def test_parallel_answer_is_filled_in() -> None:
    out, exchange = translate(make("parallel"), "parallel", "x" * 40)
    assert out["id"] == exchange.id and out["id"].startswith("chatcmpl-")
    assert out["object"] == "chat.completion" and out["model"] == "parallel-model"
    assert out["choices"][0]["finish_reason"] == "stop"
    assert out["basis"] == BASIS and out["interaction_id"] == INTERACTION_ID
    assert out["usage"]["completion_tokens"] == 10 and out["usage"] == exchange.usage


@pytest.mark.parametrize("raw", [b"<html>", b"[1, 2]", b""])
def test_garbage_answers_raise_value_error(raw: bytes) -> None:
    for provider in (make("openai"), make("parallel")):
        exchange = Exchange(model="m", stream=False)
        with pytest.raises(ValueError):
            provider.translate_completion(provider.prepare({"messages": []}, exchange), raw, exchange)


# streams -------------------------------------------------------------------

TEXT = "the quick brown fox jumps"


@pytest.mark.parametrize("size", [1, 7, 10_000])
def test_openai_stream_passes_through_byte_for_byte(size: int) -> None:
    provider = make("openai")
    exchange = Exchange(model="openai-model", stream=True, include_usage=True)
    raw = upstream_stream("openai", TEXT, include_usage=True)
    translator = provider.stream_translator(None, exchange)  # type: ignore[arg-type]
    out = b"".join(translator.feed(raw[i : i + size]) for i in range(0, len(raw), size)) + translator.end()
    assert out == raw
    assert exchange.usage == {"prompt_tokens": 11, "completion_tokens": 5, "total_tokens": 16}


def test_passthrough_adds_done_when_the_upstream_did_not() -> None:
    chunks, dones = relay(make("openai"), Exchange(model="m", stream=True), upstream_stream("openai", TEXT, False, done=False))
    assert content(chunks) == TEXT and dones == 1


def test_passthrough_holds_back_a_partial_event() -> None:
    translator = Passthrough(Exchange(model="m", stream=True))
    assert translator.feed(b'data: {"a": 1}\n\ndata: {"b"') == b'data: {"a": 1}\n\n'
    assert translator.feed(b": 2}\n") == b""
    assert translator.feed(b"\ndata: [DO") == b'data: {"b": 2}\n\n'
    with pytest.raises(ValueError, match="not JSON"):  # the upstream closed mid-event: garbage, not passed on
        translator.end()


@pytest.mark.parametrize(
    "garbage",
    [b"data: {this is not json\n\n", b"data: hello\n\n", b"data: {\"a\": 1\n\n", b"event: x\ndata: <html>\n\n"],
)
def test_passthrough_stops_at_an_event_that_cannot_be_json(garbage: bytes) -> None:
    """The events before it go out; the garbage never reaches the client's parser (an error follows)."""
    translator = Passthrough(Exchange(model="m", stream=True))
    good = b'data: {"a": 1}\n\n: keep-alive\n\n'
    assert translator.feed(good + garbage + b'data: {"b": 2}\n\n') == good
    with pytest.raises(ValueError, match="not JSON"):
        translator.feed(b'data: {"c": 3}\n\n')


def test_passthrough_hides_the_usage_it_asked_for() -> None:
    """`include_usage` asked on the client's behalf: no `"usage": null` on chunks, no usage chunk."""
    exchange = Exchange(model="m", stream=True, hide_usage=True)
    translator = Passthrough(exchange)
    usage = b'data: {"id":"c","choices":[],"usage":{"prompt_tokens":1,"completion_tokens":2,"total_tokens":3}}\n\n'
    out = translator.feed(b'data: {"id":"c","choices":[{"delta":{"content":"hi"}}],"usage":null}\n\n' + usage)
    out += translator.feed(b"data: [DONE]\n\n") + translator.end()
    assert out == b'data: {"id":"c","choices":[{"delta":{"content":"hi"}}]}\n\ndata: [DONE]\n\n'
    assert exchange.usage == {"prompt_tokens": 1, "completion_tokens": 2, "total_tokens": 3}


def test_passthrough_closes_a_final_done_without_blank_line() -> None:
    translator = Passthrough(Exchange(model="m", stream=True))
    assert translator.feed(b"data: {}\n\ndata: [DONE]") == b"data: {}\n\n"
    assert translator.end() == b"data: [DONE]\n\n"


@pytest.mark.parametrize("include_usage", [True, False])
def test_perplexity_stream_sends_text_once_and_extras_first_and_last(include_usage: bool) -> None:
    """Extras on the first chunk that has them (openai-python's `get_final_completion` keeps the
    first chunk's) and again on the finishing one (readers of the last chunk get the whole list)."""
    exchange = Exchange(model="perplexity-model", stream=True, include_usage=include_usage)
    chunks, dones = relay(make("perplexity"), exchange, upstream_stream("perplexity", TEXT, include_usage))
    assert dones == 1
    assert content(chunks) == TEXT
    assert all("message" not in c for chunk in chunks for c in chunk["choices"])
    assert all(chunk["object"] == "chat.completion.chunk" for chunk in chunks)
    assert {(chunk["id"], chunk["created"]) for chunk in chunks} == {("perplexity-chunk-1", 1_760_000_000)}
    assert [chunk.get("citations") for chunk in chunks if "citations" in chunk] == [CITATIONS, CITATIONS]
    assert [chunk.get("search_results") for chunk in chunks if "search_results" in chunk] == [SEARCH_RESULTS] * 2
    assert chunks[0]["citations"] == CITATIONS
    finishing = next(chunk for chunk in chunks if any(c.get("finish_reason") for c in chunk["choices"]))
    assert finishing["citations"] == CITATIONS
    last_usage = Reply("perplexity", "m", TEXT).usage(5)
    usages = [chunk["usage"] for chunk in chunks if chunk.get("usage")]
    assert usages == ([last_usage] if include_usage else [])
    assert exchange.usage == last_usage
    if include_usage:
        assert chunks[-1]["choices"] == [] and chunks[-1]["usage"] == last_usage


def test_perplexity_old_full_text_stream_sends_only_what_is_new() -> None:
    exchange = Exchange(model="p", stream=True)
    raw = b"".join(
        b"data: " + orjson.dumps({"id": "x", "object": "chat.completion", "created": 1, "model": "p",
                                  "choices": [{"index": 0, "message": {"role": "assistant", "content": so_far},
                                               "finish_reason": None}]}) + b"\n\n"
        for so_far in ("He", "Hello", "Hello world")
    )
    chunks, _ = relay(make("perplexity"), exchange, raw)
    assert content(chunks) == "Hello world"
    assert chunks[0]["choices"][0]["delta"]["role"] == "assistant"


def test_sambanova_stream_created_int_and_usage_chunk() -> None:
    exchange = Exchange(model="sambanova-model", stream=True, include_usage=True)
    chunks, dones = relay(make("sambanova"), exchange, upstream_stream("sambanova", TEXT, True))
    assert dones == 1 and content(chunks) == TEXT
    assert all(isinstance(chunk["created"], int) for chunk in chunks)
    assert chunks[-1]["choices"] == [] and chunks[-1]["usage"]["total_tokens"] == 16
    assert exchange.usage == chunks[-1]["usage"]


def test_together_stream_eos_becomes_stop_and_usage_kept() -> None:
    exchange = Exchange(model="together-model", stream=True)
    chunks, dones = relay(make("together"), exchange, upstream_stream("together", TEXT, False))
    assert dones == 1 and content(chunks) == TEXT
    reasons = [c["finish_reason"] for chunk in chunks for c in chunk["choices"]]
    assert reasons == [None, None, None, None, "stop"]
    assert exchange.usage == {"prompt_tokens": 11, "completion_tokens": 5, "total_tokens": 16}


@pytest.mark.parametrize("include_usage", [True, False])
def test_parallel_stream_is_filled_in_and_finished(include_usage: bool) -> None:
    exchange = Exchange(model="speed", stream=True, include_usage=include_usage)
    raw = upstream_stream("parallel", TEXT, include_usage, done=False)
    chunks, dones = relay(make("parallel"), exchange, raw)
    assert dones == 1 and content(chunks) == TEXT
    assert {chunk["id"] for chunk in chunks} == {exchange.id}
    assert {chunk["model"] for chunk in chunks} == {"speed"}
    assert {chunk["object"] for chunk in chunks} == {"chat.completion.chunk"}
    reasons = [c["finish_reason"] for chunk in chunks for c in chunk["choices"]]
    assert reasons[-1] == "stop" and reasons.count("stop") == 1
    assert all(chunk["interaction_id"] == INTERACTION_ID for chunk in chunks if chunk["choices"] and chunk["choices"][0]["delta"])
    assert exchange.usage and exchange.usage["completion_tokens"] == len(TEXT) // 4
    assert (chunks[-1].get("usage") == exchange.usage) is include_usage


@pytest.mark.parametrize("flavor", ["perplexity", "sambanova", "together", "parallel"])
@pytest.mark.parametrize("bad", [b"data: {not json\n\n", b"data: [1, 2]\n\n"])
def test_rewriting_adapters_refuse_garbage_events(flavor: str, bad: bytes) -> None:
    provider = make(flavor)
    translator = provider.stream_translator(None, Exchange(model="m", stream=True))  # type: ignore[arg-type]
    with pytest.raises(ValueError):
        translator.feed(upstream_stream(flavor, TEXT, False, done=False) + bad)


def test_rewriting_adapters_pass_an_upstream_error_event_on() -> None:
    translator = make("together").stream_translator(None, Exchange(model="m", stream=True))  # type: ignore[arg-type]
    out = translator.feed(b'data: {"error": {"message": "boom"}}\n\n')
    assert orjson.loads(out[6:]) == {"error": {"message": "boom"}}


def test_hooks_are_derived_from_what_an_adapter_overrides() -> None:
    """No flag to forget: overriding `fix_completion` is what makes answers be rewritten, and chunk
    fixes defined on the provider (where they would never be called) are refused at import."""

    class Fixes(Provider):
        def fix_completion(self, data: dict[str, Any], exchange: Exchange) -> dict[str, Any]:
            return data

    assert Fixes.rewrites_response and not Provider.rewrites_response and not OpenAIProvider.rewrites_response
    with pytest.raises(TypeError, match="ChunkRewriter"):

        class Misplaced(Provider):
            def fix_chunk(self, chunk: dict[str, Any]) -> list[dict[str, Any]]:
                return [chunk]
