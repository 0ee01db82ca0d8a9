"""Several instances on one PostgreSQL: exact limits across them, and riding out a database outage."""

from __future__ import annotations

import asyncio
import json
import time
from collections import Counter
from pathlib import Path
from typing import Iterator

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
