"""Several instances on one PostgreSQL: exact limits across them, and riding out a database outage."""

from __future__ import annotations

import asyncio
import json
import time
from collections import Counter
from collections.abc import Iterator
from pathlib import Path

import aiohttp
import httpx
import pytest

from .fakes.openai_minimal import KEY_ENV, MODEL, minimal_openai_app, minimal_openai_config
from .fakes.server import ThreadedServer
from .fixtures.postgres import PostgresCluster, new_database
from .gateway_process import GatewayProcess

BODY = {"model": MODEL, "messages": [{"role": "user", "content": "ping"}]}


@pytest.fixture
def provider() -> Iterator[ThreadedServer]:
    server = ThreadedServer(minimal_openai_app()).start()
    yield server
    server.stop()


def instance(tmp_path: Path, name: str, dsn: str, provider: ThreadedServer) -> GatewayProcess:
    folder = tmp_path / name
    folder.mkdir()
    return GatewayProcess(
        folder,
        {"DATABASE_URL": dsn, KEY_ENV: "sk-fake", "DB_TIMEOUT_SECONDS": "2"},
        config=minimal_openai_config(provider.url),
    )


async def spread(urls: list[str], token: str, count: int) -> Counter[int]:
    headers = {"Authorization": f"Bearer {token}"}
    connector = aiohttp.TCPConnector(limit=60)
    async with aiohttp.ClientSession(connector=connector, timeout=aiohttp.ClientTimeout(total=60)) as session:

        async def one(i: int) -> int:
            async with session.post(f"{urls[i % len(urls)]}/v1/chat/completions", json=BODY, headers=headers) as r:
                await r.read()
                return r.status

        return Counter(await asyncio.gather(*(one(i) for i in range(count))))


async def test_two_instances_share_one_exact_limit(tmp_path, pg_dsn, provider):
    first = instance(tmp_path, "a", pg_dsn, provider)
    second = instance(tmp_path, "b", pg_dsn, provider)
    token = first.add_token("shared", rate_limit=100)
    first.start()
    second.start()
    try:
        statuses = await spread([first.url, second.url], token, 300)
        assert statuses == Counter({200: 100, 429: 200})
        rows = json.loads(second.cli("tokens", "list", "--json").stdout)
        assert [(r["requests_today"], r["lifetime_requests"]) for r in rows] == [(100, 100)]
    finally:
        first.stop()
        second.stop()


def test_database_outage_gives_503_and_recovers_without_a_restart(tmp_path, pg_cluster: PostgresCluster, provider):
    dsn = new_database(pg_cluster.dsn)
    gateway = instance(tmp_path, "g", dsn, provider)
    token = gateway.add_token("steady", rate_limit=1000)
    gateway.start()
    headers = {"Authorization": f"Bearer {token}"}
    chat = f"{gateway.url}/v1/chat/completions"
    try:
        assert httpx.post(chat, json=BODY, headers=headers, timeout=10).status_code == 200

        pg_cluster.stop()
        down = httpx.post(chat, json=BODY, headers=headers, timeout=15)
        assert down.status_code == 503
        assert set(down.json()["error"]) == {"message", "type", "param", "code"}
        assert down.json()["error"]["code"] == "database_unavailable"
        assert httpx.get(f"{gateway.url}/readyz", timeout=15).status_code == 503
        assert httpx.get(f"{gateway.url}/healthz", timeout=5).status_code == 200
        assert gateway.proc is not None and gateway.proc.poll() is None

        pg_cluster.start()
        deadline = time.monotonic() + 20
        statuses = []
        while time.monotonic() < deadline:
            status = httpx.post(chat, json=BODY, headers=headers, timeout=15).status_code
            statuses.append(status)
            if status == 200:
                break
            time.sleep(0.2)
        assert statuses[-1] == 200, statuses
        assert httpx.get(f"{gateway.url}/readyz", timeout=5).status_code == 200
        assert token not in gateway.logs()
    finally:
        gateway.stop()


# Monitors across instances --------------------------------------------------------------


def _create_monitor(gateway: GatewayProcess, username: str) -> str:
    out = gateway.cli("monitors", "create", "--username", username, "--query", f"news for {username}",
                      "--cadence", "daily", "--json")
    return json.loads(out.stdout)["monitor_id"]


def _ask(gateway: GatewayProcess, token: str) -> str:
    from openai import OpenAI

    with OpenAI(base_url=gateway.url + "/v1", api_key=token, max_retries=0) as client:
        answer = client.chat.completions.create(
            model="speed", messages=[{"role": "user", "content": "any updates?"}]
        )
    return answer.choices[0].message.content or ""


def test_an_event_goes_to_exactly_one_answer_across_instances(tmp_path, pg_dsn, monitor_gateway, fake_parallel):
    import concurrent.futures

    from .fixtures.parallel import WEBHOOK_PATH, event_groups, wait_for

    (tmp_path / "a").mkdir()
    (tmp_path / "b").mkdir()
    first = monitor_gateway(workdir=tmp_path / "a", DATABASE_URL=pg_dsn)
    second = monitor_gateway(workdir=tmp_path / "b", DATABASE_URL=pg_dsn)
    token = first.add_token("alice")
    monitor_id = _create_monitor(first, "alice")
    for round_ in range(3):
        group = f"grp{round_}"
        fake_parallel.add_event(monitor_id, group, f"exactly once {round_}", ["https://news.example/a"])
        body = json.dumps({
            "type": "monitor.event.detected", "timestamp": "2026-05-01T12:00:00Z",
            "data": {"monitor_id": monitor_id, "event": {"event_group_id": group}, "metadata": {}},
        }).encode()
        target = (first, second)[round_ % 2]
        status, _ = fake_parallel.deliver(target.url + WEBHOOK_PATH, body, fake_parallel.signed_headers(body))
        assert status == 200
        wait_for(lambda n=round_ + 1: sum(g["fetched_at"] is not None for g in event_groups(first)) == n,
                 what="the event fetch")
        with concurrent.futures.ThreadPoolExecutor(4) as pool:
            answers = list(pool.map(lambda gw: _ask(gw, token), [first, second, first, second]))
        assert sum(f"exactly once {round_}" in a for a in answers) == 1, answers


def test_instances_sweeping_at_once_cancel_each_monitor_once(tmp_path, pg_dsn, monitor_gateway, fake_parallel):
    from .fixtures.parallel import wait_for

    (tmp_path / "a").mkdir()
    (tmp_path / "b").mkdir()
    quick = {"DATABASE_URL": pg_dsn, "MONITOR_TTL_HOURS": "0.0005", "MONITOR_SWEEP_SECONDS": "0.2"}
    first = monitor_gateway(workdir=tmp_path / "a", **quick)
    second = monitor_gateway(workdir=tmp_path / "b", **quick)
    ids = [_create_monitor(first, f"user{i}") for i in range(4)]
    wait_for(lambda: all(fake_parallel.calls_to("POST", f"/v1/monitors/{m}/cancel") for m in ids),
             timeout=30, what="every monitor cancelled")
    # Both instances (and a sweep from the command line) keep sweeping; nothing is cancelled twice.
    first.cli("monitors", "sweep")
    second.cli("monitors", "sweep")
    for monitor_id in ids:
        assert len(fake_parallel.calls_to("POST", f"/v1/monitors/{monitor_id}/cancel")) == 1
    listed = json.loads(second.cli("monitors", "list", "--json").stdout)
    assert {m["monitor_id"] for m in listed if not m["active"]} >= set(ids)


def test_a_gateway_started_while_the_database_is_down_serves_once_it_is_back(
    tmp_path, pg_cluster: PostgresCluster, provider
):
    dsn = new_database(pg_cluster.dsn)
    gateway = instance(tmp_path, "late", dsn, provider)
    token = gateway.add_token("early-bird")  # migrates and stores the token while the database is up
    with_schema = new_database(pg_cluster.dsn)  # and one that has never been migrated
    fresh = instance(tmp_path, "fresh", with_schema, provider)
    pg_cluster.stop()
    gateway.start()
    fresh.start()
    headers = {"Authorization": f"Bearer {token}"}
    try:
        for started in (gateway, fresh):
            assert httpx.get(f"{started.url}/healthz", timeout=5).status_code == 200
            assert httpx.get(f"{started.url}/readyz", timeout=15).status_code == 503
            down = httpx.post(f"{started.url}/v1/chat/completions", json=BODY, headers=headers, timeout=15)
            assert down.status_code == 503 and down.json()["error"]["code"] == "database_unavailable"

        pg_cluster.start()
        deadline = time.monotonic() + 40
        status = 0
        while time.monotonic() < deadline and status != 200:
            status = httpx.post(f"{gateway.url}/v1/chat/completions", json=BODY, headers=headers, timeout=15).status_code
            time.sleep(0.2)
        assert status == 200
        # The instance that found no schema migrates it once the database answers.
        ready = 0
        while time.monotonic() < deadline and ready != 200:
            ready = httpx.get(f"{fresh.url}/readyz", timeout=5).status_code
            time.sleep(0.2)
        assert ready == 200
        unknown = httpx.post(f"{fresh.url}/v1/chat/completions", json=BODY, headers=headers, timeout=15)
        while time.monotonic() < deadline and unknown.status_code == 503:
            time.sleep(0.5)
            unknown = httpx.post(f"{fresh.url}/v1/chat/completions", json=BODY, headers=headers, timeout=15)
        assert unknown.status_code == 401  # its own, freshly migrated database does not know the token
    finally:
        gateway.stop()
        fresh.stop()
