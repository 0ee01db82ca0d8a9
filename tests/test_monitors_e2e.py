"""Monitors end to end: a real `llm-wrapper serve` process, the real CLI, a fake Parallel over HTTP."""

from __future__ import annotations

import concurrent.futures
import json
import subprocess
import time

import httpx
import openai
import pytest

from .fakes.parallel import FakeParallel
from .fixtures.parallel import WEBHOOK_PATH, event_groups, wait_for
from .gateway_process import BIN, GatewayProcess


def create(gateway: GatewayProcess, username: str = "alice", query: str = "chip export rules") -> dict:
    out = gateway.cli("monitors", "create", "--username", username, "--query", query,
                      "--cadence", "daily", "--json")
    return json.loads(out.stdout)


def listed(gateway: GatewayProcess, *args: str) -> list[dict]:
    return json.loads(gateway.cli("monitors", "list", "--json", *args).stdout)


def webhook(monitor_id: str, group: str, kind: str = "monitor.event.detected") -> bytes:
    return json.dumps({
        "type": kind, "timestamp": "2026-05-01T12:00:00Z",
        "data": {"monitor_id": monitor_id, "event": {"event_group_id": group}, "metadata": {}},
    }).encode()


def send(fake: FakeParallel, gateway: GatewayProcess, body: bytes, **signing) -> tuple[int, str]:
    return fake.deliver(gateway.url + WEBHOOK_PATH, body, fake.signed_headers(body, **signing))


def ask(gateway: GatewayProcess, token: str, question: str = "any updates?") -> str:
    with openai.OpenAI(base_url=gateway.url + "/v1", api_key=token, max_retries=0) as client:
        answer = client.chat.completions.create(model="speed", messages=[{"role": "user", "content": question}])
    return answer.choices[0].message.content or ""


def fetched(gateway: GatewayProcess, count: int = 1):
    return lambda: sum(g["fetch_state"] == "fetched" for g in event_groups(gateway)) >= count


def test_monitor_lifecycle_webhook_speed_answer_and_sweep(monitor_gateway, fake_parallel):
    gateway = monitor_gateway()
    token = gateway.add_token("alice")
    first = create(gateway)
    assert first["username"] == "alice" and first["cadence"] == "daily" and first["replaced"] is None
    (_, _, _, sent), = fake_parallel.calls_to("POST", "/v1/monitors")
    assert sent["type"] == "event_stream" and sent["frequency"] == "1d"
    assert sent["settings"]["query"] == "chip export rules"
    assert sent["webhook"] == {"url": gateway.url + WEBHOOK_PATH, "event_types": ["monitor.event.detected"]}

    second = create(gateway, query="GPU prices")
    assert second["replaced"] == first["monitor_id"]
    assert fake_parallel.calls_to("POST", f"/v1/monitors/{first['monitor_id']}/cancel")
    assert fake_parallel.monitors[first["monitor_id"]]["status"] == "cancelled"
    monitors = listed(gateway)
    assert [m["monitor_id"] for m in monitors if m["active"]] == [second["monitor_id"]]
    assert {m["monitor_id"]: m["deactivated_at"] is not None for m in monitors} == {
        first["monitor_id"]: True, second["monitor_id"]: False}

    fake_parallel.add_event(second["monitor_id"], "mevtgrp_1", "H100 prices fell 20%",
                            ["https://news.example/gpu"], date="2026-05-01")
    status, _ = send(fake_parallel, gateway, webhook(second["monitor_id"], "mevtgrp_1"))
    assert status == 200
    wait_for(fetched(gateway), what="the event group to be fetched")
    (group,) = event_groups(gateway)
    assert group["source_urls"] == ["https://news.example/gpu"]
    (_, _, query, _), = fake_parallel.calls_to("GET", f"/v1/monitors/{second['monitor_id']}/events")
    assert query["event_group_id"] == "mevtgrp_1"

    answer = ask(gateway, token)
    assert "H100 prices fell 20%" in answer and "https://news.example/gpu" in answer and "2026-05-01" in answer
    again = ask(gateway, token, "What's the latest?")
    assert "no new updates since" in again.lower()

    other = ask(gateway, token, "What is the capital of France?")
    assert other == "parallel says: What is the capital of France?"

    swept = gateway.cli("monitors", "sweep")
    assert "Deactivated 0" in swept.stdout
    result = subprocess.run([str(BIN / "llm-wrapper"), "monitors", "sweep", "--json"],
                            check=False, env={**gateway.env, "MONITOR_TTL_HOURS": "0"}, cwd=gateway.workdir,
                            capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stderr
    report = json.loads(result.stdout)
    assert report["deactivated"] == [second["monitor_id"]] and report["cancelled"] == [second["monitor_id"]]
    assert fake_parallel.monitors[second["monitor_id"]]["status"] == "cancelled"
    assert not [m for m in listed(gateway) if m["active"]]


def test_streamed_update_answer(monitor_gateway, fake_parallel):
    gateway = monitor_gateway()
    token = gateway.add_token("bob")
    monitor = create(gateway, "bob", "fusion energy")
    fake_parallel.add_event(monitor["monitor_id"], "g1", "A tokamak ran for 20 minutes", ["https://sci.example/t"])
    assert send(fake_parallel, gateway, webhook(monitor["monitor_id"], "g1"))[0] == 200
    wait_for(fetched(gateway), what="the fetch")
    with openai.OpenAI(base_url=gateway.url + "/v1", api_key=token, max_retries=0) as client:
        stream = client.chat.completions.create(
            model="speed", stream=True, stream_options={"include_usage": True},
            messages=[{"role": "user", "content": "Any news?"}],
        )
        chunks = list(stream)
    text = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
    assert "A tokamak ran for 20 minutes" in text and "https://sci.example/t" in text
    assert [c.choices[0].finish_reason for c in chunks if c.choices][-1] == "stop"
    assert chunks[-1].usage is not None and chunks[-1].usage.completion_tokens > 0
    assert "no new updates" in ask(gateway, token).lower()


def test_webhook_refusals_store_nothing(monitor_gateway, fake_parallel):
    gateway = monitor_gateway()
    monitor = create(gateway)
    body = webhook(monitor["monitor_id"], "g1")
    url = gateway.url + WEBHOOK_PATH

    bad = fake_parallel.signed_headers(body)
    bad["webhook-signature"] = "v1," + "A" * 44
    assert fake_parallel.deliver(url, body, bad)[0] == 401
    tampered = fake_parallel.signed_headers(body)
    assert fake_parallel.deliver(url, body.replace(b"g1", b"g2"), tampered)[0] == 401
    assert send(fake_parallel, gateway, body, timestamp=time.time() - 400)[0] == 401
    assert send(fake_parallel, gateway, body, timestamp=time.time() + 400)[0] == 401
    assert fake_parallel.deliver(url, body, {"content-type": "application/json"})[0] == 401
    status, text = send(fake_parallel, gateway, b"{not json")
    assert status == 400 and "JSON" in json.loads(text)["error"]["message"]
    assert send(fake_parallel, gateway, b'{"type": "monitor.event.detected", "data": {}}')[0] == 400
    assert event_groups(gateway) == []

    # several signatures (a secret being rotated): one valid is enough
    headers = fake_parallel.signed_headers(body)
    headers["webhook-signature"] = "v1,bm90LXRoaXMtb25l " + headers["webhook-signature"]
    assert fake_parallel.deliver(url, body, headers)[0] == 200
    assert len(event_groups(gateway)) == 1


def test_duplicate_delivery_is_stored_once(monitor_gateway, fake_parallel):
    gateway = monitor_gateway()
    monitor = create(gateway)
    fake_parallel.add_event(monitor["monitor_id"], "g1", "once", ["https://x.example/1"])
    body = webhook(monitor["monitor_id"], "g1")
    assert send(fake_parallel, gateway, body, webhook_id="whevent_same")[0] == 200
    status, text = send(fake_parallel, gateway, body, webhook_id="whevent_same")
    assert status == 200 and json.loads(text)["duplicate"] is True
    assert send(fake_parallel, gateway, body, webhook_id="whevent_other")[0] == 200  # same event group
    wait_for(fetched(gateway), what="the fetch")
    assert len(event_groups(gateway)) == 1
    assert len(fake_parallel.calls_to("GET", f"/v1/monitors/{monitor['monitor_id']}/events")) == 1
    # completed and failed runs are acknowledged and noted on the monitor, never stored as events
    assert send(fake_parallel, gateway, webhook(monitor["monitor_id"], "g9", "monitor.execution.completed"))[0] == 200
    assert len(event_groups(gateway)) == 1
    assert listed(gateway)[0]["last_run_status"] == "completed"


def test_event_fetch_is_retried_after_failures(monitor_gateway, fake_parallel):
    gateway = monitor_gateway()
    token = gateway.add_token("alice")
    monitor = create(gateway)
    fake_parallel.add_event(monitor["monitor_id"], "g1", "third time lucky", ["https://x.example/3"])
    fake_parallel.fail_events(2)
    assert send(fake_parallel, gateway, webhook(monitor["monitor_id"], "g1"))[0] == 200
    wait_for(fetched(gateway), what="the fetch after two failures")
    assert len(fake_parallel.calls_to("GET", f"/v1/monitors/{monitor['monitor_id']}/events")) == 3
    assert event_groups(gateway)[0]["fetch_attempts"] == 3
    assert "third time lucky" in ask(gateway, token)


def test_pending_fetch_resumes_after_restart(monitor_gateway, fake_parallel):
    gateway = monitor_gateway()
    token = gateway.add_token("alice")
    monitor = create(gateway)
    path = f"/v1/monitors/{monitor['monitor_id']}/events"
    fake_parallel.add_event(monitor["monitor_id"], "g1", "after the restart", ["https://x.example/r"])
    fake_parallel.fail_events(None)
    assert send(fake_parallel, gateway, webhook(monitor["monitor_id"], "g1"))[0] == 200
    wait_for(lambda: fake_parallel.calls_to("GET", path), what="a first (failing) fetch")
    gateway.stop()
    assert "Application shutdown complete" in gateway.logs()
    assert event_groups(gateway)[0]["fetch_state"] == "pending"
    fake_parallel.fail_events(0)
    again = monitor_gateway(gateway.workdir)  # the same folder, so the same database
    wait_for(fetched(again), what="the pending fetch after the restart")
    assert "after the restart" in ask(again, token)


def test_http_monitors_are_per_user(monitor_gateway, fake_parallel):
    gateway = monitor_gateway()
    alice, bob = gateway.add_token("alice"), gateway.add_token("bob")
    as_alice = {"Authorization": f"Bearer {alice}"}
    as_bob = {"Authorization": f"Bearer {bob}"}
    with httpx.Client(base_url=gateway.url, timeout=10) as http:
        made = http.post("/v1/monitors", json={"query": "rust releases", "cadence": "weekly"}, headers=as_alice)
        assert made.status_code == 201, made.text
        monitor = made.json()
        assert monitor["frequency"] == "1w" and monitor["replaced"] is None and monitor["username"] == "alice"
        second = http.post("/v1/monitors", json={"query": "python releases", "frequency": "6h"}, headers=as_alice)
        assert second.json()["replaced"] == monitor["monitor_id"] and second.json()["frequency"] == "6h"

        assert http.get("/v1/monitors", headers=as_bob).json()["data"] == []
        assert len(http.get("/v1/monitors", headers=as_alice).json()["data"]) == 2
        refused = http.delete(f"/v1/monitors/{second.json()['monitor_id']}", headers=as_bob)
        assert refused.status_code == 404 and refused.json()["error"]["code"] == "monitor_not_found"
        assert http.get("/v1/monitors").status_code == 401

        missing = http.post("/v1/monitors", json={"cadence": "daily"}, headers=as_alice)
        assert missing.status_code == 400 and missing.json()["error"]["param"] == "query"
        wrong = http.post("/v1/monitors", json={"query": "x", "cadence": "fortnightly"}, headers=as_alice)
        assert wrong.status_code == 400 and wrong.json()["error"]["param"] == "cadence"

        gone = http.delete(f"/v1/monitors/{second.json()['monitor_id']}", headers=as_alice)
        assert gone.status_code == 200 and gone.json()["active"] is False
        assert fake_parallel.monitors[second.json()["monitor_id"]]["status"] == "cancelled"
        assert all(not m["active"] for m in http.get("/v1/monitors", headers=as_alice).json()["data"])


def test_parallel_key_missing_is_503_and_unreachable_is_502(monitor_gateway, tmp_path):
    (tmp_path / "a").mkdir()
    (tmp_path / "b").mkdir()
    keyless = monitor_gateway(tmp_path / "a", PARALLELAI_API_KEY=None)
    token = keyless.add_token("alice")
    with httpx.Client(base_url=keyless.url, timeout=10) as http:
        answer = http.post("/v1/monitors", json={"query": "q", "cadence": "daily"},
                           headers={"Authorization": f"Bearer {token}"})
    assert answer.status_code == 503 and "PARALLELAI_API_KEY" in answer.json()["error"]["message"]
    result = keyless.cli("monitors", "create", "--username", "u", "--query", "q", "--cadence", "daily", check=False)
    assert result.returncode == 2 and "PARALLELAI_API_KEY" in result.stderr
    assert len(result.stderr.strip().splitlines()) == 1

    dead = monitor_gateway(tmp_path / "b", PARALLEL_BASE_URL="http://127.0.0.1:9")
    token = dead.add_token("alice")
    with httpx.Client(base_url=dead.url, timeout=30) as http:
        answer = http.post("/v1/monitors", json={"query": "q", "cadence": "daily"},
                           headers={"Authorization": f"Bearer {token}"})
    assert answer.status_code == 502
    assert json.loads(dead.cli("monitors", "list", "--json").stdout) == []


@pytest.mark.parametrize("backend", ["sqlite", "postgres"])
def test_concurrent_update_questions_get_an_event_once(monitor_gateway, fake_parallel, backend, request):
    env = {"DATABASE_URL": request.getfixturevalue("pg_dsn")} if backend == "postgres" else {}
    gateway = monitor_gateway(workers=2, **env)
    token = gateway.add_token("alice")
    monitor = create(gateway)
    for round_ in range(3):
        group = f"g{round_}"
        fake_parallel.add_event(monitor["monitor_id"], group, f"only once {round_}", ["https://x.example/once"])
        assert send(fake_parallel, gateway, webhook(monitor["monitor_id"], group))[0] == 200
        wait_for(fetched(gateway, round_ + 1), what="the fetch")
        with concurrent.futures.ThreadPoolExecutor(4) as pool:
            answers = list(pool.map(lambda _: ask(gateway, token), range(4)))
        assert sum(f"only once {round_}" in a for a in answers) == 1, answers
        assert sum("no new updates" in a.lower() for a in answers) == 3


def test_whsec_secret_form_is_verified_end_to_end(monitor_gateway, fake_parallel):
    """A `whsec_` secret: signatures with its base64-decoded key (Standard Webhooks) are accepted,
    and so are signatures keyed with the secret's text (Parallel's own examples); others are not."""
    from datetime import UTC, datetime

    from standardwebhooks import Webhook

    from .fakes.parallel import whsec

    fake_parallel.secret = whsec(b"sixteen-byte-key-for-whsec-tests")
    gateway = monitor_gateway()
    assert gateway.env["PARALLEL_WEBHOOK_SECRET"].startswith("whsec_")
    monitor = create(gateway)
    url = gateway.url + WEBHOOK_PATH
    first = webhook(monitor["monitor_id"], "w1")
    assert fake_parallel.deliver(url, first, fake_parallel.signed_headers(first, whsec=True))[0] == 200
    second = webhook(monitor["monitor_id"], "w2")
    assert fake_parallel.deliver(url, second, fake_parallel.signed_headers(second))[0] == 200
    third = webhook(monitor["monitor_id"], "w3")
    forged = fake_parallel.signed_headers(third, whsec=True)
    stranger = Webhook(whsec(b"another-key-entirely-0123456789"))
    moment = datetime.fromtimestamp(int(forged["webhook-timestamp"]), tz=UTC)
    forged["webhook-signature"] = stranger.sign(forged["webhook-id"], moment, third.decode())
    assert fake_parallel.deliver(url, third, forged)[0] == 401
    assert sorted(g["event_group_id"] for g in event_groups(gateway)) == ["w1", "w2"]


def test_forged_unsigned_deliveries_are_bounded(monitor_gateway, fake_parallel):
    """Unsigned mode (no secret): ids are checked, unknown monitors cost no call to Parallel, and a
    flood for a known monitor costs at most one fetch a second; the start-up warning says so."""
    gateway = monitor_gateway(PARALLEL_WEBHOOK_SECRET=None)
    assert "anyone who can reach /webhooks/parallel-monitor can make this gateway fetch" in gateway.logs()
    monitor = create(gateway)
    url = gateway.url + WEBHOOK_PATH
    started = time.monotonic()
    with httpx.Client(timeout=10) as http:
        huge = http.post(url, content=webhook("m" * 100_000, "g1"))
        assert huge.status_code == 400 and huge.json()["error"]["param"] == "data.monitor_id"
        assert len(huge.text) < 1000
        for i in range(200):
            forged = http.post(url, content=webhook(f"monitor_forged{i}", f"g{i}"))
            assert forged.status_code == 200 and forged.json()["ignored"] == "unknown_monitor"
        for i in range(200):
            assert http.post(url, content=webhook(monitor["monitor_id"], f"flood{i}")).json()["stored"]
        metrics = http.get(gateway.url + "/metrics").text
    assert 'llm_wrapper_webhook_events_ignored_total{reason="unknown_monitor"} 200.0' in metrics
    wait_for(lambda: len(fake_parallel.calls_to("GET", f"/v1/monitors/{monitor['monitor_id']}/events")) >= 2,
             what="a second round of fetches")
    elapsed = time.monotonic() - started
    fetches = [c for c in fake_parallel.calls if c[0] == "GET"]
    assert all(c[1] == f"/v1/monitors/{monitor['monitor_id']}/events" for c in fetches)  # nothing for forged ids
    assert 2 <= len(fetches) <= elapsed + 2, (len(fetches), elapsed)  # rounds at least 1 s apart, one call each
    assert len(event_groups(gateway)) == 200
