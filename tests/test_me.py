"""`GET /v1/me` against the real gateway process: authentication, fields, and that it is not counted."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

import httpx
import pytest

from llm_wrapper.api.me import monitor_json
from tests.fakes.openai_minimal import KEY_ENV, MODEL, minimal_openai_app, minimal_openai_config
from tests.fakes.server import ThreadedServer
from tests.gateway_process import GatewayProcess

FIELDS = {
    "object", "username", "expiry", "expired", "rate_limit", "requests_today", "remaining_today",
    "lifetime_requests", "active_monitor", "waiting_updates", "budget_usd", "budget_period", "spent_usd", "models",
}


@pytest.fixture(scope="module")
def me_gateway(tmp_path_factory: pytest.TempPathFactory) -> Iterator[GatewayProcess]:
    fake = ThreadedServer(minimal_openai_app()).start()
    workdir: Path = tmp_path_factory.mktemp("me")
    process = GatewayProcess(workdir, {KEY_ENV: "sk-fake-me"}, config=minimal_openai_config(fake.url))
    try:
        yield process.start()
    finally:
        process.stop()
        fake.stop()


def me(gateway: GatewayProcess, token: str | None) -> httpx.Response:
    headers = {"Authorization": f"Bearer {token}"} if token is not None else {}
    return httpx.get(f"{gateway.url}/v1/me", headers=headers, timeout=10)


def chat(gateway: GatewayProcess, token: str) -> None:
    answer = httpx.post(
        f"{gateway.url}/v1/chat/completions",
        headers={"Authorization": f"Bearer {token}"},
        json={"model": MODEL, "messages": [{"role": "user", "content": "ping"}]},
        timeout=10,
    )
    assert answer.status_code == 200, answer.text


@pytest.mark.parametrize("token", [None, "llmw_not-a-real-token"])
def test_me_refuses_a_missing_or_unknown_token(me_gateway: GatewayProcess, token: str | None) -> None:
    answer = me(me_gateway, token)
    assert answer.status_code == 401
    error = answer.json()["error"]
    assert error["type"] == "authentication_error"
    assert set(error) == {"message", "type", "param", "code"}


def test_me_refuses_an_expired_token(me_gateway: GatewayProcess) -> None:
    token = me_gateway.add_token("old", rate_limit=5, expiry="2001-01-01 00:00:00")
    answer = me(me_gateway, token)
    assert answer.status_code == 401
    assert answer.json()["error"]["code"] == "token_expired"


def test_me_reports_the_account(me_gateway: GatewayProcess) -> None:
    token = me_gateway.add_token("carol", rate_limit=7, expiry="2099-06-01 12:30:00")
    answer = me(me_gateway, token)
    assert answer.status_code == 200
    body = answer.json()
    assert set(body) == FIELDS
    assert body == {
        "object": "user",
        "username": "carol",
        "expiry": "2099-06-01 12:30:00",
        "expired": False,
        "rate_limit": 7,
        "requests_today": 0,
        "remaining_today": 7,
        "lifetime_requests": 0,
        "active_monitor": None,
        "waiting_updates": 0,
        "budget_usd": None,
        "budget_period": None,
        "spent_usd": 0.0,
        "models": None,
    }
    assert answer.headers["x-ratelimit-limit-requests"] == "7"
    assert answer.headers["x-ratelimit-remaining-requests"] == "7"
    assert answer.headers["x-ratelimit-reset-requests"].endswith("s")


def test_me_counts_chat_requests_but_not_itself(me_gateway: GatewayProcess) -> None:
    token = me_gateway.add_token("dave", rate_limit=10)
    chat(me_gateway, token)
    chat(me_gateway, token)
    first = me(me_gateway, token).json()
    for _ in range(3):
        again = me(me_gateway, token)
    # `spent_usd` follows the usage flusher (about a second behind), so it may move between readings.
    counts = ("requests_today", "remaining_today", "lifetime_requests")
    assert [again.json()[k] for k in counts] == [first[k] for k in counts]
    assert (first["requests_today"], first["remaining_today"], first["lifetime_requests"]) == (2, 8, 2)
    assert again.headers["x-ratelimit-remaining-requests"] == "8"
    chat(me_gateway, token)
    assert me(me_gateway, token).json()["requests_today"] == 3


@dataclass
class _Monitor:
    monitor_id: str
    username: str
    query: str
    frequency: str
    created_at: datetime
    deactivated_at: datetime | None
    active: bool


def test_monitor_json_writes_iso_times() -> None:
    created = datetime(2030, 5, 6, 7, 8, 9, tzinfo=UTC)
    out = monitor_json(_Monitor("mon_1", "erin", "rust releases", "daily", created, None, True))
    assert out == {
        "monitor_id": "mon_1", "username": "erin", "query": "rust releases", "frequency": "daily",
        "created_at": "2030-05-06T07:08:09Z", "deactivated_at": None, "active": True,
    }
