"""Daily limits are exact through the real server: two worker processes, one database.

A burst of 200 concurrent chat completions with a token allowed 50 a day gets
exactly 50 answers (remaining 49 … 0) and 150 refusals (429 with Retry-After),
on a SQLite file and on PostgreSQL. Other authenticated routes (/v1/models)
authenticate without counting.
"""

from __future__ import annotations

import asyncio
import json
from collections import Counter
from collections.abc import Iterator
from pathlib import Path

import aiohttp
import pytest

from .fakes.openai_minimal import CALLS, KEY_ENV, MODEL, minimal_openai_config
from .fakes.server import ThreadedServer
from .gateway_process import GatewayProcess

LIMIT, BURST = 50, 200


@pytest.fixture
def gateway(
    tmp_path: Path, provider: ThreadedServer, database_url: str
) -> Iterator[GatewayProcess]:
    process = GatewayProcess(
        tmp_path,
        {"DATABASE_URL": database_url, KEY_ENV: "sk-fake"},
        config=minimal_openai_config(provider.url),
        workers=2,
    )
    process.start()
    yield process
    process.stop()


def usage(gateway: GatewayProcess) -> list[tuple[str, int, int]]:
    rows = json.loads(gateway.cli("tokens", "list", "--json").stdout)
    return [(r["username"], r["requests_today"], r["lifetime_requests"]) for r in rows]


async def burst(url: str, token: str, count: int) -> list[tuple[int, dict[str, str]]]:
    body = {"model": MODEL, "messages": [{"role": "user", "content": "ping"}]}
    headers = {"Authorization": f"Bearer {token}"}
    connector = aiohttp.TCPConnector(limit=50)
    timeout = aiohttp.ClientTimeout(total=60)
    async with aiohttp.ClientSession(connector=connector, timeout=timeout) as session:

        async def one() -> tuple[int, dict[str, str]]:
            async with session.post(f"{url}/v1/chat/completions", json=body, headers=headers) as r:
                await r.read()
                return r.status, {k.lower(): v for k, v in r.headers.items()}

        return await asyncio.gather(*(one() for _ in range(count)))


async def test_a_burst_on_two_workers_admits_exactly_the_limit(
    gateway: GatewayProcess, provider: ThreadedServer
) -> None:
    token = gateway.add_token("burst", rate_limit=LIMIT)

    # Authenticated routes other than chat completions do not count.
    async with aiohttp.ClientSession() as session:
        for _ in range(5):
            async with session.get(
                f"{gateway.url}/v1/models", headers={"Authorization": f"Bearer {token}"}
            ) as r:
                assert r.status == 200
                assert MODEL in [m["id"] for m in (await r.json())["data"]]
                assert r.headers["x-ratelimit-remaining-requests"] == str(LIMIT)
                assert r.headers["x-ratelimit-limit-requests"] == str(LIMIT)
    assert usage(gateway) == [("burst", 0, 0)]

    results = await burst(gateway.url, token, BURST)

    statuses = Counter(status for status, _ in results)
    assert statuses == {200: LIMIT, 429: BURST - LIMIT}, statuses
    remaining = sorted(int(h["x-ratelimit-remaining-requests"]) for s, h in results if s == 200)
    assert remaining == list(range(LIMIT))
    for status, headers in results:
        if status == 429:
            assert int(headers["retry-after"]) >= 1
            assert headers["x-ratelimit-remaining-requests"] == "0"
    assert provider.app[CALLS][0] == LIMIT
    assert usage(gateway) == [("burst", LIMIT, LIMIT)]

    # Out of requests, the token still authenticates elsewhere, and still counts nothing.
    async with (
        aiohttp.ClientSession() as session,
        session.get(f"{gateway.url}/v1/models", headers={"Authorization": f"Bearer {token}"}) as r,
    ):
        assert r.status == 200
        assert r.headers["x-ratelimit-remaining-requests"] == "0"
    assert usage(gateway) == [("burst", LIMIT, LIMIT)]
