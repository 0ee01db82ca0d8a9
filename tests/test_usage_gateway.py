"""Usage, cost, budgets and allow-lists through the gateway in process, against the fake providers.

The flusher is driven by the test (`services.usage.flush()`), and the clock is the
Authorizer's (`services.auth.clock`), which the usage recorder follows.
"""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import openai
import pytest
from aiohttp import web

from llm_wrapper.app import create_app
from llm_wrapper.tokens import issue_token

from .fakes.providers import FakeProviders
from .fakes.server import free_port
from .fixtures.inprocess import BASE_URL, InProcessGateway, inprocess_settings
from .fixtures.providers import MODELS, gateway_env, provider_config

ADMIN_KEY = "admin-key-usage-tests-0123456789"
PRICE = {"input_per_mtok": 1.0, "cached_input_per_mtok": 0.5, "output_per_mtok": 2.0, "per_request": 0.001}
GPT = MODELS["openai"]
PROMPT_TOKENS = 11  # what the fake reports


NO_USAGE = "gpt-no-usage"
ALIAS = "gpt-alias"


def no_usage_app() -> web.Application:
    """An OpenAI-style stream that never reports usage, even when asked."""

    async def completions(request: web.Request) -> web.StreamResponse:
        await request.read()
        response = web.StreamResponse(headers={"Content-Type": "text/event-stream"})
        await response.prepare(request)
        for piece in ("twelve chars", " and sixteen more"):
            chunk = {"id": "c", "object": "chat.completion.chunk", "created": 1, "model": NO_USAGE,
                     "choices": [{"index": 0, "delta": {"content": piece}, "finish_reason": None}]}
            await response.write(b"data: " + json.dumps(chunk).encode() + b"\n\n")
        await response.write(b"data: [DONE]\n\n")
        return response

    app = web.Application()
    app.router.add_post("/v1/chat/completions", completions)
    return app


@pytest.fixture
async def gw(tmp_path: Path, fakes: FakeProviders) -> AsyncIterator[InProcessGateway]:
    runner = web.AppRunner(no_usage_app(), access_log=None)
    await runner.setup()
    await web.TCPSite(runner, "127.0.0.1", 0).start()
    config = provider_config(fakes.url, f"http://127.0.0.1:{free_port()}/v1")
    config["openai"]["pricing"] = {GPT: PRICE}
    config["no_usage"] = {
        "name": "No usage", "adapter": "openai", "base_url": f"http://127.0.0.1:{runner.addresses[0][1]}/v1",
        "api_key_env": "OPENAI_API_KEY", "supported_models": [NO_USAGE], "pricing": {NO_USAGE: PRICE},
    }
    # GPT again, under another public name and at another price: a second deployment of the fake.
    config["openai_alias"] = {
        **config["openai"], "name": "OpenAI alias", "adapter": "openai", "supported_models": [],
        "model_map": {ALIAS: GPT}, "pricing": {GPT: {**PRICE, "output_per_mtok": 20.0}},
    }
    settings = inprocess_settings(tmp_path, {**gateway_env(fakes.url), "LLM_WRAPPER_ADMIN_KEY": ADMIN_KEY}, config)
    app = create_app(settings)
    async with (
        app.router.lifespan_context(app),
        httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url=BASE_URL, timeout=20) as http,
    ):
        gateway = InProcessGateway(app, settings, http)
        gateway.token = await gateway.add_token("alice", rate_limit=1000)
        yield gateway
    await runner.cleanup()


async def token(gw: InProcessGateway, username: str, **extra: Any) -> str:
    issued = await issue_token(
        gw.services.store, username=username, expiry="2099-01-01 00:00:00", rate_limit=1000,
        now=gw.services.auth.clock(), **extra,
    )
    return issued.token


def chat(model: str, **extra: Any) -> dict[str, Any]:
    return {"model": model, "messages": [{"role": "user", "content": "hi"}], **extra}


async def post(gw: InProcessGateway, secret: str, body: dict[str, Any]) -> httpx.Response:
    return await gw.http.post("/v1/chat/completions", json=body, headers={"Authorization": f"Bearer {secret}"})


async def rows(gw: InProcessGateway, username: str | None = None) -> list[dict[str, Any]]:
    await gw.services.usage.flush()
    today = gw.services.auth.clock().date()
    found = await gw.services.store.usage.usage(today - timedelta(days=40), today + timedelta(days=40), username)
    return [r.to_json() for r in found]


def log_lines(gw: InProcessGateway) -> list[dict[str, Any]]:
    gw.services.analytics.flush()
    return [json.loads(line) for line in gw.settings.llm_wrapper_log_file.read_text().splitlines()]


def expected_cost(completion_tokens: int) -> float:
    return (PROMPT_TOKENS * PRICE["input_per_mtok"] + completion_tokens * PRICE["output_per_mtok"]) / 1e6 + 0.001


async def test_a_json_answer_is_priced_logged_and_recorded(gw: InProcessGateway) -> None:
    answer = await gw.sdk().chat.completions.create(**chat(GPT))
    completion = answer.usage.completion_tokens
    [row] = await rows(gw, "alice")
    assert (row["model"], row["requests"], row["errors"]) == (GPT, 1, 0)
    assert (row["prompt_tokens"], row["completion_tokens"]) == (PROMPT_TOKENS, completion)
    assert row["total_tokens"] == PROMPT_TOKENS + completion
    assert row["cost_usd"] == pytest.approx(expected_cost(completion))
    [line] = [x for x in log_lines(gw) if x.get("model") == GPT]
    assert line["cost_usd"] == pytest.approx(expected_cost(completion)) and "unpriced" not in line


async def test_a_renamed_model_costs_what_the_deployment_that_answered_charges(gw: InProcessGateway) -> None:
    answer = await gw.sdk().chat.completions.create(**chat(ALIAS))
    assert answer.model == ALIAS
    completion = answer.usage.completion_tokens
    [row] = await rows(gw, "alice")
    assert row["model"] == ALIAS
    expected = (PROMPT_TOKENS * PRICE["input_per_mtok"] + completion * 20.0) / 1e6 + 0.001
    assert row["cost_usd"] == pytest.approx(expected)


@pytest.mark.parametrize("client_asks", [True, False])
async def test_a_stream_is_priced_from_its_usage_chunk_whether_or_not_the_client_asked(
    gw: InProcessGateway, client_asks: bool
) -> None:
    options = {"stream_options": {"include_usage": True}} if client_asks else {}
    stream = await gw.sdk().chat.completions.create(**chat(GPT, stream=True, **options))
    chunks = [chunk async for chunk in stream]
    shown = [c.usage for c in chunks if c.usage]
    assert bool(shown) is client_asks  # the usage the gateway asked for is kept from a client that did not
    [row] = await rows(gw, "alice")
    assert row["requests"] == 1 and row["prompt_tokens"] == PROMPT_TOKENS and row["completion_tokens"] > 0
    assert row["cost_usd"] == pytest.approx(expected_cost(row["completion_tokens"]))
    if client_asks:
        assert shown[0].completion_tokens == row["completion_tokens"]


async def test_a_stream_without_any_usage_is_estimated_not_billed_zero(gw: InProcessGateway) -> None:
    stream = await gw.sdk().chat.completions.create(**chat(NO_USAGE, stream=True))
    assert [c async for c in stream]
    [row] = await rows(gw, "alice")
    assert row["prompt_tokens"] > 0 and row["cost_usd"] > 0.001
    [line] = [x for x in log_lines(gw) if x.get("model") == NO_USAGE]
    assert line["usage_estimated"] is True and line["cost_usd"] == pytest.approx(row["cost_usd"])


async def test_an_unpriced_model_costs_nothing_and_is_counted_as_unpriced(gw: InProcessGateway) -> None:
    await gw.sdk().chat.completions.create(**chat(MODELS["xai"]))
    [row] = await rows(gw, "alice")
    assert row["cost_usd"] == 0 and row["unpriced_requests"] == 1 and row["prompt_tokens"] == PROMPT_TOKENS
    assert [x["unpriced"] for x in log_lines(gw) if x.get("model") == MODELS["xai"]] == [True]


async def test_failed_requests_are_requests_and_errors(gw: InProcessGateway) -> None:
    assert (await post(gw, gw.token, chat(GPT, messages=[{"role": "user", "content": "fail:400"}]))).status_code == 400
    assert (await post(gw, gw.token, chat("no-such-model"))).status_code == 404
    found = {r["model"]: (r["requests"], r["errors"]) for r in await rows(gw, "alice")}
    assert found == {GPT: (1, 1), "unknown": (1, 1)}  # a client's model name never becomes a row


async def test_the_allow_list_refuses_other_models_without_counting_them(gw: InProcessGateway) -> None:
    secret = await token(gw, "limited", models=["gpt-*", MODELS["perplexity"]])
    assert (await post(gw, secret, chat(GPT))).status_code == 200
    refused = await post(gw, secret, chat(MODELS["xai"]))
    assert refused.status_code == 403
    assert refused.json()["error"]["code"] == "model_not_allowed"
    assert refused.headers["x-should-retry"] == "false"
    me = (await gw.http.get("/v1/me", headers={"Authorization": f"Bearer {secret}"})).json()
    assert (me["requests_today"], me["lifetime_requests"]) == (1, 1)
    assert me["models"] == ["gpt-*", MODELS["perplexity"]]
    assert [r["model"] for r in await rows(gw, "limited")] == [GPT]
    with pytest.raises(openai.PermissionDeniedError):
        await gw.sdk(secret).chat.completions.create(**chat("speed"))


async def test_models_lists_only_the_allowed_ones(gw: InProcessGateway) -> None:
    everything = {m.id for m in (await gw.sdk().models.list()).data}
    assert "speed" in everything and GPT in everything
    secret = await token(gw, "narrow", models=["gpt-*", "speed"])
    listed = {m.id for m in (await gw.sdk(secret).models.list()).data}
    assert listed == {m for m in everything if m.startswith("gpt-") or m == "speed"}
    secret = await token(gw, "exact", models=[MODELS["sambanova"]])
    assert [m.id for m in (await gw.sdk(secret).models.list()).data] == [MODELS["sambanova"]]
    assert (await gw.http.get(f"/v1/models/{GPT}", headers={"Authorization": f"Bearer {secret}"})).status_code == 404


async def test_a_spent_budget_is_refused_until_the_period_ends(gw: InProcessGateway) -> None:
    now = datetime(2030, 5, 10, 23, 59, 0, tzinfo=UTC)
    gw.services.auth.clock = lambda: now
    secret = await token(gw, "budgeted", budget_usd=0.0015, budget_period="day")
    assert (await post(gw, secret, chat(GPT))).status_code == 200  # costs over 0.001
    await gw.services.usage.flush()
    assert (await post(gw, secret, chat(GPT))).status_code == 200  # 0.001… < 0.0015: admitted
    await gw.services.usage.flush()
    refused = await post(gw, secret, chat(GPT))
    assert refused.status_code == 429
    assert refused.json()["error"]["code"] == "budget_exceeded"
    assert refused.headers["retry-after"] == "60" and refused.headers["x-should-retry"] == "false"
    me = (await gw.http.get("/v1/me", headers={"Authorization": f"Bearer {secret}"})).json()
    assert me["budget_usd"] == 0.0015 and me["budget_period"] == "day" and me["spent_usd"] > 0.0015
    assert me["requests_today"] == 2  # the refusal was not counted
    now = datetime(2030, 5, 11, 0, 0, 1, tzinfo=UTC)
    assert (await post(gw, secret, chat(GPT))).status_code == 200  # a new day, a new budget


async def test_own_usage_is_read_without_counting_and_shows_no_one_else(gw: InProcessGateway) -> None:
    bob = await token(gw, "bob")
    await post(gw, gw.token, chat(GPT))
    await post(gw, bob, chat(GPT))
    await post(gw, bob, chat(MODELS["perplexity"]))
    await gw.services.usage.flush()
    headers = {"Authorization": f"Bearer {bob}"}
    answer = await gw.http.get("/v1/usage", headers=headers)
    assert answer.status_code == 200
    data = answer.json()["data"]
    assert sorted(r["model"] for r in data) == sorted([GPT, MODELS["perplexity"]])
    assert set(data[0]) == {"date", "model", "requests", "errors", "prompt_tokens", "completion_tokens",
                            "total_tokens", "cost_usd", "unpriced_requests"}
    assert (await gw.http.get("/v1/me", headers=headers)).json()["requests_today"] == 2
    today = gw.services.auth.clock().date()
    later = await gw.http.get(f"/v1/usage?start={today + timedelta(days=1)}", headers=headers)
    assert later.status_code == 400 and later.json()["error"]["param"] == "start"
    assert (await gw.http.get(f"/v1/usage?end={today - timedelta(days=1)}", headers=headers)).json()["data"] == []
    assert (await gw.http.get("/v1/usage?start=yesterday", headers=headers)).status_code == 400
    assert (await gw.http.get("/v1/usage")).status_code == 401


async def test_admin_usage_and_patch(gw: InProcessGateway) -> None:
    admin = {"Authorization": f"Bearer {ADMIN_KEY}"}
    secret = await token(gw, "dora")
    await post(gw, secret, chat(GPT))
    await post(gw, gw.token, chat(GPT))
    await gw.services.usage.flush()
    everyone = (await gw.http.get("/v1/admin/usage", headers=admin)).json()["data"]
    assert {(r["username"], r["model"], r["requests"]) for r in everyone} == {("alice", GPT, 1), ("dora", GPT, 1)}
    only = (await gw.http.get("/v1/admin/usage?username=dora", headers=admin)).json()["data"]
    assert [r["username"] for r in only] == ["dora"]
    assert (await gw.http.get("/v1/admin/usage", headers={"Authorization": f"Bearer {secret}"})).status_code == 401
    [listed] = [t for t in (await gw.http.get("/v1/admin/tokens", headers=admin)).json()["data"]
                if t["username"] == "dora"]
    patched = await gw.http.patch(f"/v1/admin/tokens/{listed['id']}", headers=admin,
                                  json={"rate_limit": 3, "budget_usd": 5, "models": ["gpt-*"]})
    assert patched.status_code == 200
    body = patched.json()
    assert (body["rate_limit"], body["budget_usd"], body["budget_period"], body["models"]) == (3, 5.0, "month", ["gpt-*"])
    assert body["spent_usd"] == pytest.approx(expected_cost(everyone[0]["completion_tokens"]))
    assert (body["requests_today"], body["lifetime_requests"]) == (1, 1)
    assert (await post(gw, secret, chat(GPT))).headers["x-ratelimit-limit-requests"] == "3"  # same secret
    cleared = await gw.http.patch(f"/v1/admin/tokens/{listed['id']}", headers=admin,
                                  json={"budget_usd": None, "models": None})
    assert (cleared.json()["budget_usd"], cleared.json()["budget_period"], cleared.json()["models"]) == (None, None, None)
    for bad, param in (({"rate_limit": 0}, "rate_limit"), ({"budget_period": "week"}, "budget_period"),
                       ({"budget_usd": -1}, "budget_usd"), ({"models": []}, "models"), ({"expiry": "soon"}, "expiry"),
                       ({"secret": "x"}, "secret")):
        answer = await gw.http.patch(f"/v1/admin/tokens/{listed['id']}", headers=admin, json=bad)
        assert answer.status_code == 400 and answer.json()["error"]["param"] == param, bad
    assert (await gw.http.patch("/v1/admin/tokens/nosuchid", headers=admin, json={"rate_limit": 2})).status_code == 404


async def test_admin_creates_a_token_with_a_budget_and_an_allow_list(gw: InProcessGateway) -> None:
    admin = {"Authorization": f"Bearer {ADMIN_KEY}"}
    base = {"username": "gil", "expiry": "2099-01-01 00:00:00", "rate_limit": 5}
    created = await gw.http.post("/v1/admin/tokens", headers=admin,
                                 json={**base, "budget_usd": 2, "budget_period": "day", "models": ["gpt-*"]})
    assert created.status_code == 201
    body = created.json()
    assert (body["budget_usd"], body["budget_period"], body["models"]) == (2.0, "day", ["gpt-*"])
    assert (await post(gw, body["token"], chat(MODELS["xai"]))).status_code == 403
    for bad, param in (({"models": "gpt"}, "models"), ({"budget_usd": True}, "budget_usd"),
                       ({"budget_period": "year"}, "budget_period")):
        answer = await gw.http.post("/v1/admin/tokens", headers=admin, json={**base, **bad})
        assert answer.status_code == 400 and answer.json()["error"]["param"] == param, bad
