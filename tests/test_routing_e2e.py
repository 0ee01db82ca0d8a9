"""Routing through the gateway, in process, with the `openai` SDK as client: deployments of one
model that fail on cue (tests/fakes/scripted.py), retries, failover, fallbacks, cooldowns, weights,
streams, the headers, the analytics line's `attempts` and the metrics."""

from __future__ import annotations

import asyncio
import json
from collections import Counter
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import openai
import pytest
from fastapi import FastAPI
from prometheus_client import REGISTRY

from llm_wrapper.app import create_app

from .fakes.scripted import BREAK_AFTER_FIRST, BREAK_BEFORE_FIRST, ScriptedProvider, Slow, Status
from .fakes.server import free_port, serving
from .fixtures.inprocess import BASE_URL, InProcessGateway, inprocess_settings

KEY_ENV = "ROUTE_TEST_KEY"
ASK = [{"role": "user", "content": "hi"}]


@pytest.fixture
async def upstream() -> AsyncIterator[ScriptedProvider]:
    async with serving(ScriptedProvider()) as fake:
        yield fake


def routed_config(fake: ScriptedProvider, **routing: Any) -> dict[str, Any]:
    """`llama` on `first` (which knows it as Meta-Llama-3.3-70B) then `second`; `small-model` on
    `small`; `flaky` on `down` (a closed port) then `second`; the routing block given."""

    def entry(name: str, models: list[str], **extra: Any) -> dict[str, Any]:
        return {"name": name.title(), "adapter": "openai", "base_url": fake.base_url(name),
                "api_key_env": KEY_ENV, "supported_models": models, "timeout": 5, **extra}

    return {
        "first": entry("first", [], model_map={"llama": "Meta-Llama-3.3-70B"}, priority=0),
        "second": entry("second", ["llama", "flaky"], priority=1),
        "small": entry("small", ["small-model"]),
        "down": {**entry("down", ["flaky"]), "base_url": f"http://127.0.0.1:{free_port()}/v1"},
        "routing": {"fallbacks": {"llama": ["small-model"]}, **routing},
    }


@dataclass
class Routed:
    gateway: InProcessGateway
    sdk: openai.AsyncOpenAI
    log: Path

    def lines(self) -> list[dict[str, Any]]:
        self.gateway.services.analytics.flush()
        return [json.loads(line) for line in self.log.read_text().splitlines()]



def metric(name: str, **labels: str) -> float:
    return REGISTRY.get_sample_value(name, labels) or 0.0


@asynccontextmanager
async def routed(tmp_path: Path, config: dict[str, Any], **env: str) -> AsyncIterator[Routed]:
    settings = inprocess_settings(tmp_path, {KEY_ENV: "sk-route", **env}, config)
    app: FastAPI = create_app(settings)
    async with (
        app.router.lifespan_context(app),
        httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url=BASE_URL, timeout=20) as http,
    ):
        gateway = InProcessGateway(app, settings, http)
        gateway.token = await gateway.add_token("router", rate_limit=100000)
        async with gateway.sdk() as sdk:
            yield Routed(gateway, sdk, tmp_path / "llm_proxy.log")


async def ask(r: Routed, model: str = "llama") -> tuple[dict[str, str], Any]:
    raw = await r.sdk.chat.completions.with_raw_response.create(model=model, messages=ASK)  # type: ignore[arg-type]
    return dict(raw.headers), raw.parse()


async def test_a_retryable_status_is_retried_on_the_same_deployment(tmp_path: Path, upstream: ScriptedProvider) -> None:
    upstream.script("first", Status(503))
    failed = metric("llm_wrapper_upstream_attempts_total", provider="first", outcome="server_error")
    ok = metric("llm_wrapper_upstream_attempts_total", provider="first", outcome="ok")
    async with routed(tmp_path, routed_config(upstream)) as r:
        headers, answer = await ask(r)
        assert answer.choices[0].message.content == "hello from first"
        assert answer.model == "llama"  # the public name, though `first` was asked for its own
        assert headers["x-llm-wrapper-attempts"] == "2" and headers["x-llm-wrapper-provider"] == "first"
        assert upstream.calls == [("first", "Meta-Llama-3.3-70B", False)] * 2
        line = r.lines()[-1]
        assert line["status"] == 200 and line["provider"] == "first" and line["model"] == "llama"
        assert [(a["provider"], a["model"], a["status"]) for a in line["attempts"]] == [
            ("first", "Meta-Llama-3.3-70B", 503), ("first", "Meta-Llama-3.3-70B", 200)
        ]
        assert all(a["ms"] >= 0 for a in line["attempts"])
        assert metric("llm_wrapper_upstream_attempts_total", provider="first", outcome="server_error") == failed + 1
        assert metric("llm_wrapper_upstream_attempts_total", provider="first", outcome="ok") == ok + 1
        assert "llm_wrapper_upstream_attempts_total" in (await r.gateway.http.get("/metrics")).text


async def test_after_its_retries_the_next_deployment_answers(tmp_path: Path, upstream: ScriptedProvider) -> None:
    upstream.script("first", Status(500), Status(502))
    async with routed(tmp_path, routed_config(upstream)) as r:
        headers, answer = await ask(r)
        assert answer.choices[0].message.content == "hello from second" and answer.model == "llama"
        assert headers["x-llm-wrapper-attempts"] == "3" and headers["x-llm-wrapper-provider"] == "second"
        assert [c[0] for c in upstream.calls] == ["first", "first", "second"]
        assert upstream.calls[-1] == ("second", "llama", False)


async def test_a_refused_connection_fails_over(tmp_path: Path, upstream: ScriptedProvider) -> None:
    async with routed(tmp_path, routed_config(upstream)) as r:
        headers, answer = await ask(r, "flaky")
        assert answer.choices[0].message.content == "hello from second"
        assert headers["x-llm-wrapper-attempts"] == "3"  # the closed port twice (one retry), then `second`
        assert [a["status"] for a in r.lines()[-1]["attempts"]] == [502, 502, 200]


async def test_a_timeout_before_the_first_byte_fails_over(tmp_path: Path, upstream: ScriptedProvider) -> None:
    config = routed_config(upstream, retries=0)
    config["first"]["timeout"] = 0.5
    upstream.script("first", Slow(3))
    async with routed(tmp_path, config) as r:
        headers, answer = await ask(r)
        assert answer.choices[0].message.content == "hello from second"
        assert [a["status"] for a in r.lines()[-1]["attempts"]] == [504, 200]


@pytest.mark.parametrize("code", [400, 404, 413, 422])
async def test_a_non_retryable_status_reaches_the_upstream_once(
    tmp_path: Path, upstream: ScriptedProvider, code: int
) -> None:
    upstream.script("first", Status(code))
    async with routed(tmp_path, routed_config(upstream, retries=3)) as r:
        with pytest.raises(openai.APIStatusError) as refused:
            await ask(r)
        assert refused.value.status_code == code
        assert refused.value.response.headers["x-llm-wrapper-attempts"] == "1"
        assert refused.value.response.headers["x-llm-wrapper-provider"] == "first"
        assert upstream.calls == [("first", "Meta-Llama-3.3-70B", False)]


async def test_when_every_attempt_fails_the_last_error_is_the_answer_and_the_request_is_given_back(
    tmp_path: Path, upstream: ScriptedProvider
) -> None:
    upstream.script("first", Status(500), Status(500))
    upstream.script("second", Status(503), Status(502))
    upstream.script("small", Status(500), Status(503, "1"))
    async with routed(tmp_path, routed_config(upstream)) as r:
        with pytest.raises(openai.APIStatusError) as failed:
            await ask(r)
        response = failed.value.response
        assert failed.value.status_code == 503
        assert failed.value.response.json()["error"]["message"] == "Small: small says 503"
        assert response.headers["x-llm-wrapper-attempts"] == "6"
        assert response.headers["x-llm-wrapper-provider"] == "small"
        assert response.headers["retry-after"] == "1"
        assert response.json()["error"]["type"] == "server_error"
        assert response.headers["x-ratelimit-remaining-requests"] == "100000"  # given back, once
        assert len(upstream.calls) == 6


async def test_max_attempts_bounds_the_upstream_calls(tmp_path: Path, upstream: ScriptedProvider) -> None:
    upstream.script("first", Status(500), Status(500))
    upstream.script("second", Status(500))
    async with routed(tmp_path, routed_config(upstream, max_attempts=2)) as r:
        with pytest.raises(openai.InternalServerError) as failed:
            await ask(r)
        assert failed.value.response.headers["x-llm-wrapper-attempts"] == "2"
        assert len(upstream.calls) == 2


async def test_a_fallback_model_answers_when_the_group_fails(tmp_path: Path, upstream: ScriptedProvider) -> None:
    upstream.script("first", Status(500))
    upstream.script("second", Status(500))
    before = metric("llm_wrapper_fallbacks_total", model="llama", fallback="small-model")
    async with routed(tmp_path, routed_config(upstream, retries=0)) as r:
        headers, answer = await ask(r)
        assert answer.choices[0].message.content == "hello from small"
        assert answer.model == "small-model"
        assert upstream.calls[-1] == ("small", "small-model", False)
        assert headers["x-llm-wrapper-provider"] == "small" and headers["x-llm-wrapper-attempts"] == "3"
        assert metric("llm_wrapper_fallbacks_total", model="llama", fallback="small-model") == before + 1


async def test_a_429_cools_the_deployment_down_until_its_retry_after(tmp_path: Path, upstream: ScriptedProvider) -> None:
    upstream.script("first", Status(429, "1"))
    before = metric("llm_wrapper_cooldowns_total", provider="first")
    async with routed(tmp_path, routed_config(upstream, cooldown_seconds=0.2)) as r:
        headers, _ = await ask(r)
        # Cooling down, with `second` ready: no waiting out the Retry-After.
        assert headers["x-llm-wrapper-provider"] == "second" and headers["x-llm-wrapper-attempts"] == "2"
        headers, _ = await ask(r)
        assert headers["x-llm-wrapper-provider"] == "second" and headers["x-llm-wrapper-attempts"] == "1"
        assert metric("llm_wrapper_cooldowns_total", provider="first") == before + 1
        await asyncio.sleep(1.1)  # the Retry-After (longer than cooldown_seconds) is over
        headers, _ = await ask(r)
        assert headers["x-llm-wrapper-provider"] == "first"
        assert upstream.count("first") == 2


async def test_allowed_fails_in_a_row_cool_a_deployment_down(tmp_path: Path, upstream: ScriptedProvider) -> None:
    upstream.script("first", Status(500), Status(500))
    async with routed(tmp_path, routed_config(upstream, retries=0, allowed_fails=2, cooldown_seconds=60)) as r:
        for _ in range(2):
            assert (await ask(r))[0]["x-llm-wrapper-provider"] == "second"
        for _ in range(3):
            headers, _ = await ask(r)
            assert headers["x-llm-wrapper-provider"] == "second" and headers["x-llm-wrapper-attempts"] == "1"
        assert upstream.count("first") == 2


async def test_a_group_all_cooling_down_is_still_tried(tmp_path: Path, upstream: ScriptedProvider) -> None:
    config = routed_config(upstream, retries=0, cooldown_seconds=60)
    config["routing"]["fallbacks"] = {}
    upstream.script("first", Status(429))
    upstream.script("second", Status(429))
    async with routed(tmp_path, config) as r:
        with pytest.raises(openai.RateLimitError):
            await ask(r)
        headers, answer = await ask(r)  # both cool down: the one ending first still gets the request
        assert headers["x-llm-wrapper-attempts"] == "1"
        assert headers["x-llm-wrapper-provider"] == "first"


async def test_weights_share_the_traffic(tmp_path: Path, upstream: ScriptedProvider) -> None:
    config = routed_config(upstream)
    config["second"]["priority"] = 0
    config["first"]["weight"] = 3
    async with routed(tmp_path, config) as r:
        body = {"model": "llama", "messages": ASK}
        auth = {"Authorization": f"Bearer {r.gateway.token}"}
        for _ in range(300):
            answer = await r.gateway.http.post("/v1/chat/completions", json=body, headers=auth)
            assert answer.status_code == 200
        share = Counter(c[0] for c in upstream.calls)
        assert share["first"] + share["second"] == 300
        assert 0.62 <= share["first"] / 300 <= 0.87, share  # 3:1 expects 0.75


async def test_a_stream_fails_over_before_its_first_byte(tmp_path: Path, upstream: ScriptedProvider) -> None:
    upstream.script("first", BREAK_BEFORE_FIRST)
    async with routed(tmp_path, routed_config(upstream, retries=0)) as r:
        raw = await r.sdk.chat.completions.with_raw_response.create(model="llama", messages=ASK, stream=True)
        assert raw.headers["x-llm-wrapper-attempts"] == "2" and raw.headers["x-llm-wrapper-provider"] == "second"
        text = "".join([c.choices[0].delta.content or "" async for c in raw.parse() if c.choices])
        assert text == "hello from second"
        assert [a["status"] for a in r.lines()[-1]["attempts"]] == [502, 200]


@pytest.mark.parametrize("adapter", ["openai", "together", "sambanova", "perplexity"])
async def test_a_renamed_model_shows_the_public_name_in_every_chunk(
    tmp_path: Path, upstream: ScriptedProvider, adapter: str
) -> None:
    config = routed_config(upstream)
    config["first"]["adapter"] = adapter  # e.g. a second Together key: `"together_b": {"adapter": "together"}`
    async with routed(tmp_path, config) as r:
        headers, answer = await ask(r)
        assert answer.model == "llama" and answer.choices[0].message.content == "hello from first"
        stream = await r.sdk.chat.completions.create(model="llama", messages=ASK, stream=True)
        chunks = [chunk async for chunk in stream]
        assert len(chunks) == 3
        assert {chunk.model for chunk in chunks} == {"llama"}
        assert "".join(c.choices[0].delta.content or "" for c in chunks if c.choices) == "hello from first"
        assert upstream.calls == [("first", "Meta-Llama-3.3-70B", False), ("first", "Meta-Llama-3.3-70B", True)]


async def test_a_stream_is_never_retried_after_its_first_byte(tmp_path: Path, upstream: ScriptedProvider) -> None:
    upstream.script("first", BREAK_AFTER_FIRST)
    async with routed(tmp_path, routed_config(upstream, retries=2)) as r:
        stream = await r.sdk.chat.completions.create(model="llama", messages=ASK, stream=True)
        received = []
        with pytest.raises(openai.APIError, match="broke off"):
            async for chunk in stream:
                received.append(chunk.choices[0].delta.content)
        assert received == ["hello "]
        assert upstream.calls == [("first", "Meta-Llama-3.3-70B", True)]
        line = r.lines()[-1]
        assert line["status"] == 502 and [a["status"] for a in line["attempts"]] == [200]


async def test_the_single_deployment_path_still_says_who_answered(tmp_path: Path, upstream: ScriptedProvider) -> None:
    async with routed(tmp_path, routed_config(upstream), MAX_BODY_BYTES="4096") as r:
        headers, answer = await ask(r, "small-model")
        assert headers["x-llm-wrapper-attempts"] == "1" and headers["x-llm-wrapper-provider"] == "small"
        assert answer.model == "small-model"
        with pytest.raises(openai.NotFoundError) as unknown:
            await ask(r, "no-such-model")
        assert unknown.value.response.headers["x-llm-wrapper-attempts"] == "0"
        assert unknown.value.response.headers["x-llm-wrapper-provider"] == "none"
        with pytest.raises(openai.APIStatusError) as too_large:
            await r.sdk.chat.completions.create(model="llama", messages=[{"role": "user", "content": "x" * 5000}])
        assert too_large.value.status_code == 413
        assert too_large.value.response.headers["x-llm-wrapper-attempts"] == "0"
        assert upstream.calls == [("small", "small-model", False)]
