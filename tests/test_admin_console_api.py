"""The operator console's admin API: `/v1/admin/providers` (each deployment's last hour in this
process, after real upstream calls to a fake provider and a closed port) and `/v1/admin/monitors`."""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from llm_wrapper.health import MINUTES, SAMPLES, Health
from llm_wrapper.monitors.records import Monitor

from .fakes.scripted import ScriptedProvider, Status
from .fakes.server import serving
from .test_monitor_store import fetched_group
from .test_routing_e2e import ask, routed, routed_config

ADMIN_KEY = "admin-key-for-console-tests-0123"
ADMIN = {"Authorization": f"Bearer {ADMIN_KEY}"}


@pytest.fixture
async def upstream() -> AsyncIterator[ScriptedProvider]:
    async with serving(ScriptedProvider()) as fake:
        yield fake


FIELDS = {"provider", "model", "requests", "errors", "error_rate", "p50_ms", "p95_ms", "cooling_down_until"}


async def test_providers_rows_after_a_failing_upstream(tmp_path: Path, upstream: ScriptedProvider) -> None:
    upstream.script("first", Status(503))
    config = routed_config(upstream, allowed_fails=2, cooldown_seconds=120)
    async with routed(tmp_path, config, LLM_WRAPPER_ADMIN_KEY=ADMIN_KEY) as r:
        before = (await r.gateway.http.get("/v1/admin/providers", headers=ADMIN)).json()
        assert before["object"] == "list"
        assert all(row["requests"] == 0 and row["p50_ms"] is None for row in before["data"])
        await ask(r)  # first: 503 then 200
        await ask(r, "flaky")  # down (a closed port) twice, cooling down after the second, then second
        answer = await r.gateway.http.get("/v1/admin/providers", headers=ADMIN)
        assert answer.status_code == 200
        rows = {(row["provider"], row["model"]): row for row in answer.json()["data"]}
    assert set(rows) == {("first", "llama"), ("second", "llama"), ("second", "flaky"), ("small", "small-model"),
                         ("down", "flaky")}
    assert all(set(row) == FIELDS for row in rows.values())
    first, down, flaky = rows["first", "llama"], rows["down", "flaky"], rows["second", "flaky"]
    assert (first["requests"], first["errors"], first["error_rate"]) == (2, 1, 0.5)
    assert first["p50_ms"] is not None and first["p50_ms"] <= first["p95_ms"]
    assert first["cooling_down_until"] is None
    assert (down["requests"], down["errors"], down["error_rate"]) == (2, 2, 1.0)
    until = datetime.fromisoformat(down["cooling_down_until"].replace("Z", "+00:00"))
    assert timedelta(seconds=100) < until - datetime.now(UTC) <= timedelta(seconds=121)
    assert (flaky["requests"], flaky["errors"]) == (1, 0)
    assert rows["small", "small-model"]["requests"] == 0


async def test_monitors_list_with_events_waiting(tmp_path: Path, upstream: ScriptedProvider) -> None:
    async with routed(tmp_path, routed_config(upstream), LLM_WRAPPER_ADMIN_KEY=ADMIN_KEY) as r:
        store = r.gateway.services.store
        at = datetime.now(UTC) - timedelta(hours=1)
        for monitor_id, user in (("mon_a", "alice"), ("mon_b", "bob")):
            await store.insert_monitor(Monitor(monitor_id=monitor_id, username=user, query=f"news for {user}",
                                               frequency="1d", created_at=at))
        await fetched_group(store.monitors, "mon_a", "g1", at)
        await fetched_group(store.monitors, "mon_a", "g2", at)
        await store.add_event_group(monitor_id="mon_b", event_group_id="g3", webhook_id=None, received_at=at)
        answer = await r.gateway.http.get("/v1/admin/monitors", headers=ADMIN)
        listed = {m.monitor_id: m for m in (await store.list_monitors())}
    assert answer.status_code == 200 and answer.json()["object"] == "list"
    rows = {row["monitor_id"]: row for row in answer.json()["data"]}
    assert rows["mon_a"]["events_waiting"] == 2  # fetched and not yet taken by the user
    assert rows["mon_b"]["events_waiting"] == 0  # still pending its fetch
    for monitor_id, row in rows.items():
        assert row == {**listed[monitor_id].to_json(), "events_waiting": row["events_waiting"]}
    assert rows["mon_a"]["username"] == "alice" and rows["mon_a"]["cadence"] and rows["mon_a"]["active"] is True


@pytest.mark.parametrize("path", ["/v1/admin/providers", "/v1/admin/monitors"])
async def test_access_rules(tmp_path: Path, upstream: ScriptedProvider, path: str) -> None:
    (tmp_path / "on").mkdir()
    (tmp_path / "off").mkdir()
    async with routed(tmp_path / "on", routed_config(upstream), LLM_WRAPPER_ADMIN_KEY=ADMIN_KEY) as r:
        for headers in ({}, {"Authorization": "Bearer not-the-key"}, {"Authorization": f"Bearer {r.gateway.token}"}):
            answer = await r.gateway.http.get(path, headers=headers)
            assert answer.status_code == 401
            assert answer.json()["error"]["type"] == "authentication_error"
            assert ADMIN_KEY not in answer.text
    async with routed(tmp_path / "off", routed_config(upstream)) as r:
        answer = await r.gateway.http.get(path, headers=ADMIN)
        assert answer.status_code == 404 and set(answer.json()["error"]) == {"message", "type", "param", "code"}


def test_health_forgets_minutes_older_than_the_hour_and_bounds_its_samples() -> None:
    now = [1_000_000.0 * 60]
    health = Health(clock=lambda: now[0])
    for ms in range(1, 101):
        health.record(float(ms), error=ms % 10 == 0)
    summary = health.summary()
    assert (summary["requests"], summary["errors"], summary["error_rate"]) == (100, 10, 0.1)
    assert (summary["p50_ms"], summary["p95_ms"]) == (32.0, 61.0)  # the first SAMPLES of the minute: 1..64
    assert SAMPLES == 64
    now[0] += (MINUTES - 1) * 60
    health.record(500.0, error=False)
    assert health.summary()["requests"] == 101  # the first minute is still inside the hour
    now[0] += 60
    assert health.summary() == {"requests": 1, "errors": 0, "error_rate": 0.0, "p50_ms": 500.0, "p95_ms": 500.0}
    now[0] += MINUTES * 60
    assert health.summary() == {"requests": 0, "errors": 0, "error_rate": 0.0, "p50_ms": None, "p95_ms": None}
