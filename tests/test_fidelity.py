"""Drop-in fidelity: what real clients (openai Python and Node SDKs) found, end to end.

One gateway process in front of a small fake OpenAI-compatible provider whose
last user message picks a behaviour:

    auth      401 whose message echoes the Authorization header (as OpenAI's does)
    down      503
    param     400 naming `param` and its own `type`
    garbage   a stream whose second event is not JSON
    anything  a normal answer (a stream when asked), with the provider's `x-request-id`
              only when the message is `with-id`
"""

from __future__ import annotations

import json
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import openai
import pytest
from aiohttp import web

from tests.fakes.providers import CITATIONS, SEARCH_RESULTS
from tests.fakes.server import ThreadedServer, free_port
from tests.fixtures.providers import MODELS
from tests.gateway_process import GatewayProcess

KEY = "sk-fidelity-secret-key-0123456789"
ADMIN = "admin-fidelity-key-98765"
MODEL = "gpt-fid"
NODE_DIR = Path(__file__).parent / "node"


def _last_user(body: dict[str, Any]) -> str:
    return str(body["messages"][-1].get("content"))


async def _chat(request: web.Request) -> web.StreamResponse:
    body = await request.json()
    said = _last_user(body)
    if said == "auth":
        message = f"Incorrect API key provided: {request.headers['Authorization']}. See https://example.test."
        return web.json_response(
            {"error": {"message": message, "type": "invalid_request_error", "param": None, "code": "invalid_api_key"}},
            status=401,
        )
    if said == "down":
        return web.json_response({"error": {"message": "overloaded", "type": "server_error"}}, status=503)
    if said == "param":
        error = {"message": "temperature is too hot", "type": "invalid_value", "param": "temperature", "code": "hot"}
        return web.json_response({"error": error}, status=400)
    headers = {"x-request-id": "prov-req-1"} if said == "with-id" else {}
    chunk = {"id": "c1", "object": "chat.completion.chunk", "created": 1, "model": MODEL}
    if body.get("stream"):
        response = web.StreamResponse(headers={"Content-Type": "text/event-stream", **headers})
        await response.prepare(request)
        with_usage = (body.get("stream_options") or {}).get("include_usage")
        extra = {"usage": None} if with_usage else {}
        first = {**chunk, "choices": [{"index": 0, "delta": {"role": "assistant", "content": "Hi"}}], **extra}
        await response.write(b"data: " + json.dumps(first, separators=(",", ":")).encode() + b"\n\n")
        if said == "garbage":
            await response.write(b"data: {this is not json\n\n")
        last = {**chunk, "choices": [{"index": 0, "delta": {}, "finish_reason": "stop"}], **extra}
        await response.write(b"data: " + json.dumps(last, separators=(",", ":")).encode() + b"\n\n")
        if with_usage:
            usage = {**chunk, "choices": [], "usage": {"prompt_tokens": 3, "completion_tokens": 1, "total_tokens": 4}}
            await response.write(b"data: " + json.dumps(usage, separators=(",", ":")).encode() + b"\n\n")
        await response.write(b"data: [DONE]\n\n")
        return response
    answer = {
        "id": "c1", "object": "chat.completion", "created": 1, "model": MODEL,
        "choices": [{"index": 0, "message": {"role": "assistant", "content": "Hi"}, "finish_reason": "stop"}],
        "usage": {"prompt_tokens": 3, "completion_tokens": 1, "total_tokens": 4},
    }
    return web.json_response(answer, headers=headers)


@pytest.fixture(scope="module")
def fidelity(tmp_path_factory: pytest.TempPathFactory) -> Iterator[GatewayProcess]:
    app = web.Application(client_max_size=64 * 1024 * 1024)
    app.router.add_post("/v1/chat/completions", _chat)
    fake = ThreadedServer(app).start()
    workdir = tmp_path_factory.mktemp("fidelity")
    config = {
        "openai": {
            "name": "OpenAI", "base_url": f"{fake.url}/v1", "api_key_env": "OPENAI_API_KEY",
            "supported_models": [MODEL], "payload_extra_parameters": {},
        },
        "together": {
            "name": "Together AI", "base_url": f"http://127.0.0.1:{free_port()}/v1",
            "api_key_env": "LLMW_TEST_UNSET_KEY", "supported_models": ["off-model"], "payload_extra_parameters": {},
        },
    }
    env = {"OPENAI_API_KEY": KEY, "LLMW_TEST_UNSET_KEY": "", "LLM_WRAPPER_ADMIN_KEY": ADMIN}
    gateway = GatewayProcess(workdir, env, config=config).start()
    try:
        yield gateway
    finally:
        gateway.stop()
        fake.stop()


def sdk(gateway: GatewayProcess, token: str, **options: Any) -> openai.OpenAI:
    return openai.OpenAI(base_url=gateway.url + "/v1", api_key=token, **options)


def ask(client: openai.OpenAI, text: str, **options: Any) -> Any:
    return client.chat.completions.create(model=options.pop("model", MODEL), messages=[{"role": "user", "content": text}], **options)


def used_today(gateway: GatewayProcess, username: str) -> int:
    rows = json.loads(gateway.cli("tokens", "list", "--json").stdout)
    return next(row["requests_today"] for row in rows if row["username"] == username)


def analytics(gateway: GatewayProcess, user: str, count: int = 1) -> list[dict[str, Any]]:
    """The user's analytics lines, once at least `count` have been flushed (within a few seconds)."""
    path = gateway.workdir / "llm_proxy.log"
    deadline = time.monotonic() + 5
    while True:
        text = path.read_text() if path.exists() else ""
        lines = [entry for line in text.splitlines() if line.strip() and (entry := json.loads(line))["user"] == user]
        if len(lines) >= count or time.monotonic() > deadline:
            return lines
        time.sleep(0.1)


# refusals that retrying cannot cure -------------------------------------------


def test_daily_limit_429_tells_the_sdk_not_to_retry(fidelity: GatewayProcess) -> None:
    token = fidelity.add_token("limited", rate_limit=1)
    with sdk(fidelity, token) as client:  # the SDK's default: two retries
        ask(client, "hello")
        started = time.monotonic()
        with pytest.raises(openai.RateLimitError) as caught:
            ask(client, "hello")
    assert time.monotonic() - started < 2, "the SDK slept on Retry-After"
    response = caught.value.response
    assert response.headers["x-should-retry"] == "false"
    assert int(response.headers["retry-after"]) > 0  # still there, for people
    assert used_today(fidelity, "limited") == 1


def test_disabled_provider_and_unknown_token_say_do_not_retry(fidelity: GatewayProcess) -> None:
    token = fidelity.add_token("offline", rate_limit=100)
    with sdk(fidelity, token) as client:
        with pytest.raises(openai.InternalServerError) as caught:
            ask(client, "hello", model="off-model")
    assert caught.value.status_code == 503 and caught.value.response.headers["x-should-retry"] == "false"
    assert caught.value.code == "provider_disabled"
    with sdk(fidelity, "llmw_not-a-token") as client:
        with pytest.raises(openai.AuthenticationError) as refused:
            ask(client, "hello")
    assert refused.value.response.headers["x-should-retry"] == "false"


@pytest.fixture(scope="module")
def node_openai() -> Path:
    if not (NODE_DIR / "node_modules" / "openai").is_dir():
        subprocess.run(
            ["npm", "install", "--no-audit", "--no-fund", "--silent"], cwd=NODE_DIR, check=True, timeout=300
        )
    return NODE_DIR


def test_node_sdk_returns_at_once_on_the_daily_limit(fidelity: GatewayProcess, node_openai: Path) -> None:
    """openai-node honours any Retry-After (hours, here) unless told `x-should-retry: false`."""
    token = fidelity.add_token("node-user", rate_limit=1)
    script = node_openai / "limit.mjs"
    result = subprocess.run(
        ["node", str(script)], env={"BASE_URL": fidelity.url + "/v1", "TOKEN": token, "MODEL": MODEL, "PATH": "/usr/bin:/bin"},
        capture_output=True, text=True, timeout=60,
    )
    assert result.returncode == 0, result.stderr
    out = json.loads(result.stdout)
    assert out["first"] == "Hi"
    assert out["status"] == 429 and out["seconds"] < 5
    assert used_today(fidelity, "node-user") == 1


# a provider's errors ------------------------------------------------------------


def test_provider_401_is_our_502_and_never_shows_the_key(fidelity: GatewayProcess) -> None:
    token = fidelity.add_token("keyless", rate_limit=100)
    with sdk(fidelity, token, max_retries=2) as client:
        with pytest.raises(openai.APIStatusError) as caught:
            ask(client, "auth")
    error = caught.value
    assert error.status_code == 502 and error.code == "provider_auth_failed"
    assert "OPENAI_API_KEY" in error.message
    assert error.response.headers["x-should-retry"] == "false"
    assert KEY not in error.response.text and KEY not in fidelity.logs()
    assert len(analytics(fidelity, "keyless")) == 1  # one attempt: not retried by the SDK
    assert used_today(fidelity, "keyless") == 0  # and given back: our misconfiguration


def test_provider_error_keeps_param_and_type(fidelity: GatewayProcess) -> None:
    token = fidelity.add_token("params", rate_limit=100)
    with sdk(fidelity, token) as client:
        with pytest.raises(openai.BadRequestError) as caught:
            ask(client, "param")
    body = caught.value.body
    assert isinstance(body, dict)
    assert body["param"] == "temperature" and body["type"] == "invalid_value" and body["code"] == "hot"
    assert body["message"] == "OpenAI: temperature is too hot"


def test_garbage_stream_event_is_an_sdk_error_and_logged_as_such(fidelity: GatewayProcess) -> None:
    token = fidelity.add_token("garbage", rate_limit=100)
    with sdk(fidelity, token, max_retries=0) as client:
        stream = ask(client, "garbage", stream=True)
        with pytest.raises(openai.APIError) as caught:
            for _ in stream:
                pass
    assert "not JSON" in caught.value.message
    line = analytics(fidelity, "garbage")[-1]
    assert line["status"] == 502


# small routes, ids and stream shape -----------------------------------------------


def test_models_retrieve(fidelity: GatewayProcess) -> None:
    token = fidelity.add_token("models", rate_limit=100)
    with sdk(fidelity, token) as client:
        assert client.models.retrieve(MODEL).id == MODEL
        assert client.models.retrieve("speed").owned_by == "llm-wrapper"
        with pytest.raises(openai.NotFoundError):
            client.models.retrieve("no-such-model")


def test_request_ids_reach_the_sdk_and_the_log(fidelity: GatewayProcess) -> None:
    token = fidelity.add_token("ids", rate_limit=100)
    with sdk(fidelity, token) as client:
        assert ask(client, "with-id")._request_id == "prov-req-1"
        ours = ask(client, "hello")._request_id
    assert ours and ours.startswith("req_")
    logged = [entry["request_id"] for entry in analytics(fidelity, "ids", 2)]
    assert logged == ["prov-req-1", ours]


def test_stream_without_include_usage_is_what_the_provider_would_send(fidelity: GatewayProcess) -> None:
    token = fidelity.add_token("shape", rate_limit=100)
    body = {"model": MODEL, "stream": True, "messages": [{"role": "user", "content": "hello"}]}
    raw = httpx.post(fidelity.url + "/v1/chat/completions", json=body, headers={"Authorization": f"Bearer {token}"}).text
    assert '"usage"' not in raw and raw.endswith("data: [DONE]\n\n")
    line = analytics(fidelity, "shape")[-1]
    assert line["usage"] == {"prompt_tokens": 3, "completion_tokens": 1, "total_tokens": 4}


# bodies ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("messages", "param"),
    [(["hello"], "messages[0]"), ([{"role": "user", "content": "a"}, 7], "messages[1]"), ([{"content": "x"}], "messages[0]")],
)
def test_messages_must_be_objects_with_a_role(fidelity: GatewayProcess, messages: list[Any], param: str) -> None:
    token = fidelity.add_token("shapes", rate_limit=100)
    response = httpx.post(
        fidelity.url + "/v1/chat/completions", json={"model": MODEL, "messages": messages},
        headers={"Authorization": f"Bearer {token}"},
    )
    assert response.status_code == 400 and response.json()["error"]["param"] == param


def test_stream_must_be_a_boolean(fidelity: GatewayProcess) -> None:
    token = fidelity.add_token("streamy", rate_limit=100)
    response = httpx.post(
        fidelity.url + "/v1/chat/completions",
        json={"model": MODEL, "messages": [{"role": "user", "content": "a"}], "stream": "yes"},
        headers={"Authorization": f"Bearer {token}"},
    )
    assert response.status_code == 400 and response.json()["error"]["param"] == "stream"


def test_a_vision_sized_body_is_accepted(fidelity: GatewayProcess) -> None:
    """A 3.2 MB JPEG as a data URL is a 4.3 MB body; the default limit is 32 MiB."""
    token = fidelity.add_token("vision", rate_limit=100)
    image = "data:image/jpeg;base64," + "A" * (6 * 1024 * 1024)
    content = [{"type": "text", "text": "hello"}, {"type": "image_url", "image_url": {"url": image}}]
    with sdk(fidelity, token) as client:
        answer = client.chat.completions.create(model=MODEL, messages=[{"role": "user", "content": content}])  # type: ignore[misc,list-item]
    assert answer.choices[0].message.content == "Hi"


def test_perplexity_citations_survive_the_sdk_stream_helper(client: openai.OpenAI) -> None:
    """openai-python's `chat.completions.stream(...).get_final_completion()` keeps the first chunk's extras."""
    with client.chat.completions.stream(model=MODELS["perplexity"], messages=[{"role": "user", "content": "cite"}]) as stream:
        final = stream.get_final_completion()
    assert (final.model_extra or {}).get("citations") == CITATIONS
    assert (final.model_extra or {}).get("search_results") == SEARCH_RESULTS


def test_a_request_the_provider_failed_is_given_back(fidelity: GatewayProcess) -> None:
    """The SDK retries a 503 twice: three attempts, no answer, nothing spent of the day's limit."""
    token = fidelity.add_token("refunded", rate_limit=5)
    with sdk(fidelity, token, max_retries=2) as client:
        with pytest.raises(openai.InternalServerError) as caught:
            ask(client, "down")
        assert caught.value.response.headers["x-ratelimit-remaining-requests"] == "5"
        ask(client, "hello")
        for attempt in range(2):
            with pytest.raises(openai.APIStatusError):
                ask(client, "auth" if attempt else "param")  # our key refused: given back; the caller's 400: counts
    assert used_today(fidelity, "refunded") == 2
    rows = json.loads(fidelity.cli("tokens", "list", "--json").stdout)
    assert next(r["lifetime_requests"] for r in rows if r["username"] == "refunded") == 2
