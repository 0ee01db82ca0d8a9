"""Routing through the real server (`llm-wrapper serve`, two workers, a SQLite file): a request
counts once however many attempts it took, and a client that leaves cancels its upstream call."""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import openai
import pytest

from .fakes.scripted import ScriptedProvider, Slow, Status
from .fakes.server import ThreadedServer, free_port
from .gateway_process import GatewayProcess

KEY_ENV = "ROUTE_TEST_KEY"
ASK = [{"role": "user", "content": "hi"}]


@pytest.fixture
def upstream() -> Iterator[ScriptedProvider]:
    fake = ScriptedProvider()
    server = ThreadedServer(fake.app()).start()
    fake.url = server.url
    yield fake
    server.stop()


@pytest.fixture
def gateway(tmp_path: Path, upstream: ScriptedProvider) -> Iterator[GatewayProcess]:
    closed = f"http://127.0.0.1:{free_port()}/v1"

    def entry(name: str, models: list[str], **extra: Any) -> dict[str, Any]:
        return {"name": name.title(), "adapter": "openai", "base_url": upstream.base_url(name),
                "api_key_env": KEY_ENV, "supported_models": models, "timeout": 30, **extra}

    config = {
        "down": {**entry("down", ["flaky", "dead"]), "base_url": closed},
        "down_b": {**entry("down_b", ["dead"]), "base_url": closed},
        "up": entry("up", ["flaky", "slow"], priority=1),
        # Never cool `down` down, so every request tries it (twice) before `up`.
        "routing": {"retries": 1, "allowed_fails": 1000},
    }
    process = GatewayProcess(tmp_path, {KEY_ENV: "sk-route"}, config=config, workers=2)
    process.start()
    yield process
    process.stop()


def counts(gateway: GatewayProcess) -> tuple[int, int]:
    (row,) = json.loads(gateway.cli("tokens", "list", "--json").stdout)
    return row["requests_today"], row["lifetime_requests"]


def log_lines(gateway: GatewayProcess, count: int, wait: float = 6.0) -> list[dict[str, Any]]:
    path = gateway.workdir / "llm_proxy.log"
    deadline = time.monotonic() + wait
    while True:
        lines = [json.loads(line) for line in path.read_text().splitlines()] if path.exists() else []
        if len(lines) >= count or time.monotonic() > deadline:
            return lines
        time.sleep(0.1)


async def test_a_request_counts_once_however_many_attempts(gateway: GatewayProcess, upstream: ScriptedProvider) -> None:
    token = gateway.add_token("router", rate_limit=100)
    async with openai.AsyncOpenAI(base_url=f"{gateway.url}/v1", api_key=token, max_retries=0) as sdk:
        answers = await asyncio.gather(*(
            sdk.chat.completions.with_raw_response.create(model="flaky", messages=ASK)  # type: ignore[arg-type]
            for _ in range(20)
        ))
        assert {a.headers["x-llm-wrapper-attempts"] for a in answers} == {"3"}  # down, down again, up
        assert {a.parse().choices[0].message.content for a in answers} == {"hello from up"}
        assert counts(gateway) == (20, 20)
        assert sorted(int(a.headers["x-ratelimit-remaining-requests"]) for a in answers) == list(range(80, 100))

        # Every attempt failed (four refused connections): no answer, so the request is given back.
        for _ in range(5):
            with pytest.raises(openai.APIStatusError) as failed:
                await sdk.chat.completions.create(model="dead", messages=ASK)  # type: ignore[arg-type]
            assert failed.value.status_code == 502
            assert failed.value.response.headers["x-llm-wrapper-attempts"] == "4"
            assert failed.value.response.headers["x-ratelimit-remaining-requests"] == "80"
    assert counts(gateway) == (20, 20)
    assert upstream.count("up") == 20


async def test_a_client_that_leaves_cancels_the_upstream_call(gateway: GatewayProcess, upstream: ScriptedProvider) -> None:
    token = gateway.add_token("leaver", rate_limit=100)
    upstream.script("up", Slow(12))
    started = time.monotonic()
    async with httpx.AsyncClient(timeout=1.0) as client:
        with pytest.raises(httpx.ReadTimeout):
            await client.post(f"{gateway.url}/v1/chat/completions", json={"model": "slow", "messages": ASK},
                              headers={"Authorization": f"Bearer {token}"})
    deadline = time.monotonic() + 8
    while not upstream.closed_early and time.monotonic() < deadline:
        await asyncio.sleep(0.05)
    assert upstream.closed_early, "the provider's connection stayed open"
    assert upstream.closed_early[0] < 4, upstream.closed_early  # well before its 12 s wait ended
    assert time.monotonic() - started < 8
    (line,) = [line for line in log_lines(gateway, 1) if line["user"] == "leaver"]
    assert line["status"] == 499 and line["provider"] == "up"
    assert [a["status"] for a in line["attempts"]] == [499]
    assert counts(gateway) == (1, 1)  # leaving is the caller's choice: it still counts


async def test_a_client_that_leaves_during_a_retry_wait_cancels_the_retry(
    gateway: GatewayProcess, upstream: ScriptedProvider
) -> None:
    token = gateway.add_token("impatient", rate_limit=100)
    upstream.script("up", Status(503, "4"))  # the gateway would retry after 4 s
    async with httpx.AsyncClient(timeout=1.0) as client:
        with pytest.raises(httpx.ReadTimeout):
            await client.post(f"{gateway.url}/v1/chat/completions", json={"model": "slow", "messages": ASK},
                              headers={"Authorization": f"Bearer {token}"})
    (line,) = [line for line in log_lines(gateway, 1) if line["user"] == "impatient"]
    assert line["status"] == 499 and [a["status"] for a in line["attempts"]] == [503]
    await asyncio.sleep(4)  # past the retry the gateway would have made
    assert upstream.count("up") == 1
