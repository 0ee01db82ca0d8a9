"""MonitorService, signing and the `speed` answer, in-process against a fake Parallel over HTTP."""

from __future__ import annotations

import base64
import time
from datetime import UTC, timedelta

import orjson
import pytest
from prometheus_client import REGISTRY
from standardwebhooks import Webhook

from llm_wrapper.errors import InvalidRequest, NotFound, ServiceUnavailable, UpstreamUnreachable
from llm_wrapper.monitors import signing
from llm_wrapper.monitors.records import parse_frequency
from llm_wrapper.monitors.service import MonitorService
from llm_wrapper.monitors.speed import SpeedUpdates
from llm_wrapper.providers.base import Exchange
from llm_wrapper.settings import load_settings
from llm_wrapper.store.sqlite import SQLiteStore
from llm_wrapper.tokens import Grant, utc_now

from .fakes.parallel import API_KEY, FakeParallel


@pytest.mark.parametrize(("given", "expected"), [
    ("hourly", "1h"), ("Daily", "1d"), ("weekly", "1w"), ("every_two_weeks", "2w"), ("6h", "6h"), ("30d", "30d"),
])
def test_cadences_and_frequencies(given, expected):
    assert parse_frequency(given) == expected


@pytest.mark.parametrize("bad", ["", "monthly", "0h", "31d", "5w", "1m", "h", "-1d"])
def test_bad_cadences_are_refused(bad):
    with pytest.raises(ValueError, match="cadence must be"):
        parse_frequency(bad)


def _headers(key: bytes, body: bytes, stamp: float, webhook_id: str = "whevent_1") -> dict[str, str]:
    return {"webhook-id": webhook_id, "webhook-timestamp": str(int(stamp)),
            "webhook-signature": signing.sign(key, webhook_id, int(stamp), body)}


def test_signature_with_either_secret_form():
    body, now = b'{"type":"x"}', time.time()
    raw = "plain-secret-string"
    assert signing.verify(raw, _headers(raw.encode(), body, now), body) == "whevent_1"
    key = b"\x01\x02decoded-key-bytes"
    whsec = "whsec_" + base64.b64encode(key).decode()
    assert signing.verify(whsec, _headers(key, body, now), body)  # Standard Webhooks form
    assert signing.verify(whsec, _headers(whsec.encode(), body, now), body)  # Parallel's examples' form
    # the reference library's signature verifies too
    reference = Webhook(whsec)
    from datetime import datetime
    moment = datetime.fromtimestamp(int(now), tz=UTC)
    headers = {"webhook-id": "m", "webhook-timestamp": str(int(now)),
               "webhook-signature": reference.sign("m", moment, body.decode())}
    assert signing.verify(whsec, headers, body) == "m"


@pytest.mark.parametrize("case", ["wrong key", "other body", "old", "future", "no header", "garbage", "v2 only"])
def test_signature_refusals(case):
    body, now, secret = b'{"a":1}', 1_800_000_000.0, "s3cret"
    headers = _headers(secret.encode(), body, now)
    if case == "wrong key":
        headers = _headers(b"other", body, now)
    elif case == "other body":
        body = b'{"a":2}'
    elif case == "old":
        now += 301
    elif case == "future":
        now -= 301
    elif case == "no header":
        del headers["webhook-signature"]
    elif case == "garbage":
        headers["webhook-signature"] = "v1 v1,@@@ nonsense ,"
    elif case == "v2 only":
        headers["webhook-signature"] = headers["webhook-signature"].replace("v1,", "v2,")
    with pytest.raises(signing.BadSignature):
        signing.verify(secret, headers, body, now=now)
    if case in ("old", "future"):
        signing.verify(secret, headers, body, now=now - 1 if case == "old" else now + 1)  # 300 s is still fine


@pytest.fixture
def fake():
    server = FakeParallel().start()
    yield server
    server.stop()


@pytest.fixture
async def service(tmp_path, fake):
    settings = load_settings({
        "LLM_WRAPPER_ENV_FILE": str(tmp_path / "absent.env"), "PARALLELAI_API_KEY": API_KEY,
        "PARALLEL_BASE_URL": fake.url, "MONITOR_WEBHOOK_URL": "https://gw.example/webhooks/parallel-monitor",
    })
    store = SQLiteStore(tmp_path / "db.sqlite")
    await store.migrate()
    service = MonitorService(settings, store)
    yield service
    await service.close()
    await store.close()


async def test_failed_remote_cancel_is_kept_and_retried_by_the_sweep(service, fake):
    first, _ = await service.create("alice", "q1", "hourly")
    fake.cancel_failures = 1
    second, replaced = await service.create("alice", "q2", "weekly", event_types=["monitor.event.detected",
                                                                                 "monitor.execution.failed"])
    assert replaced == first.monitor_id and second.frequency == "1w"
    assert fake.calls_to("POST", "/v1/monitors")[-1][3]["webhook"]["event_types"] == [
        "monitor.event.detected", "monitor.execution.failed"]
    old = (await service.list("alice"))[1]
    assert old.cancel_pending and "Try again later" in old.last_error
    assert fake.monitors[first.monitor_id]["status"] == "active"
    assert (await service.sweep()).cancelled == []  # not due yet: backoff
    report = await service.sweep(utc_now() + timedelta(minutes=5))
    assert report.cancelled == [first.monitor_id] and report.deactivated == []
    assert fake.monitors[first.monitor_id]["status"] == "cancelled"
    assert not (await service.store.get_monitor(first.monitor_id)).cancel_pending
    assert (await service.active_monitor("alice")).monitor_id == second.monitor_id


async def test_create_refusals_write_nothing(service, fake, tmp_path):
    with pytest.raises(InvalidRequest):
        await service.create("alice", "  ", "daily")
    with pytest.raises(InvalidRequest):
        await service.create("alice", "q", "monthly")
    with pytest.raises(InvalidRequest):
        await service.create("alice", "q", "daily", event_types=["monitor.bogus"])
    with pytest.raises(InvalidRequest) as refused:  # checked before Parallel creates anything
        await service.create("alice", "chips\x00", "daily")
    assert refused.value.param == "query"
    with pytest.raises(InvalidRequest):
        await service.create("al\x00ice", "q", "daily")
    assert fake.calls == [] and await service.list() == []
    fake.stop()
    with pytest.raises(UpstreamUnreachable):
        await service.create("alice", "q", "daily")
    assert await service.list() == []
    keyless = MonitorService(load_settings({"LLM_WRAPPER_ENV_FILE": str(tmp_path / "x")}), service.store)
    with pytest.raises(ServiceUnavailable, match="PARALLELAI_API_KEY"):
        await keyless.create("alice", "q", "daily")


async def test_deactivate_checks_the_owner(service, fake):
    made, _ = await service.create("alice", "q", "daily")
    with pytest.raises(NotFound):
        await service.deactivate(made.monitor_id, "bob")
    done = await service.deactivate(made.monitor_id, "alice")
    assert not done.active and not done.cancel_pending and done.remote_state == "cancelled"
    assert (await service.deactivate(made.monitor_id)).deactivated_at == done.deactivated_at  # idempotent


async def test_speed_answers_only_update_questions(service, fake):
    speed = SpeedUpdates(service, ["update", "updates", "latest", "recent news"])
    grant = Grant("alice", 10, 1, 1, None)

    def body(text: str, model: str = "speed") -> dict:
        return {"model": model, "messages": [{"role": "user", "content": "updates"}, {"role": "assistant",
                "content": "..."}, {"role": "user", "content": text}]}

    assert await speed(body("What is the capital of France?"), grant, Exchange("speed", False)) is None
    assert await speed(body("Any updates?", "lite"), grant, Exchange("lite", False)) is None
    assert await speed(body("I updated my notes"), grant, Exchange("speed", False)) is None
    answer = await speed(body("Any RECENT   news?"), grant, Exchange("speed", False))
    assert b"you have no active monitor" in answer.body
    made, _ = await service.create("alice", "q", "daily")
    answer = await speed(body("latest?"), grant, Exchange("speed", False))
    assert b"No new updates since " + made.created_at.strftime("%Y-%m-%d %H:%M").encode() in answer.body
    assert await service.waiting_updates("alice") == 0


def _delivery(monitor_id: str, group: str = "mevtgrp_1", kind: str = "monitor.event.detected") -> bytes:
    return orjson.dumps({"type": kind, "data": {"monitor_id": monitor_id, "event": {"event_group_id": group}}})


def _ignored(reason: str) -> float:
    return REGISTRY.get_sample_value("llm_wrapper_webhook_events_ignored_total", {"reason": reason}) or 0.0


def _event_fetches(fake: FakeParallel) -> list:
    return [call for call in fake.calls if call[0] == "GET" and call[1].endswith("/events")]


@pytest.mark.parametrize(("field", "value"), [
    ("monitor_id", "m" * 100_000), ("monitor_id", "../../v1/monitors"), ("monitor_id", "m x"),
    ("group", "g" * 129), ("group", "g/1"), ("group", "g?x=1"), ("webhook-id", "w\n1"),
])
async def test_webhook_ids_must_be_short_and_url_safe(service, fake, field, value):
    made, _ = await service.create("alice", "q", "daily")
    monitor_id = value if field == "monitor_id" else made.monitor_id
    body = _delivery(monitor_id, value if field == "group" else "mevtgrp_1")
    headers = {"webhook-id": value} if field == "webhook-id" else {}
    with pytest.raises(InvalidRequest) as refused:
        await service.ingest(headers, body)
    assert refused.value.param in ("data.monitor_id", "data.event.event_group_id", "webhook-id")
    assert len(refused.value.message) < 200
    assert await service.store.list_event_groups() == []


async def test_deliveries_for_unknown_or_inactive_monitors_are_acknowledged_and_dropped(service, fake):
    unknown, inactive = _ignored("unknown_monitor"), _ignored("inactive_monitor")
    outcome = await service.ingest({}, _delivery("monitor_forged"))
    assert outcome == {"received": True, "stored": False, "duplicate": False, "ignored": "unknown_monitor"}
    assert await service.ingest({}, _delivery("monitor_forged", kind="monitor.execution.failed"))
    old, _ = await service.create("alice", "q", "daily")
    await service.deactivate(old.monitor_id)
    assert (await service.ingest({}, _delivery(old.monitor_id)))["ignored"] == "inactive_monitor"
    assert _ignored("unknown_monitor") == unknown + 2 and _ignored("inactive_monitor") == inactive + 1
    assert await service.store.list_event_groups() == []
    assert (await service.process_pending()).fetched == [] and _event_fetches(fake) == []


async def test_forged_deliveries_cost_one_fetch_a_monitor_a_round(service, fake):
    """Unsigned mode: 1,000 deliveries for one known monitor make one call to Parallel per round."""
    made, _ = await service.create("alice", "q", "daily")
    for i in range(1000):
        assert (await service.ingest({}, _delivery(made.monitor_id, f"mevtgrp_{i}")))["stored"]
    report = await service.process_pending()
    assert len(_event_fetches(fake)) == 1 and list(report.retrying) == [f"{made.monitor_id}/mevtgrp_0"]
    await service.process_pending(utc_now() + timedelta(seconds=1))
    assert len(_event_fetches(fake)) == 2


async def test_a_round_fetches_at_most_the_configured_number(service, fake):
    service.settings = service.settings.model_copy(update={"monitor_fetches_per_round": 3})
    for user in range(5):
        made, _ = await service.create(f"user{user}", "q", "daily")
        fake.add_event(made.monitor_id, "g", f"news {user}", ["https://x.example"])
        await service.ingest({}, _delivery(made.monitor_id, "g"))
    assert len((await service.process_pending()).fetched) == 3
    assert len((await service.process_pending()).fetched) == 2
    assert len(_event_fetches(fake)) == 5


async def test_any_fetch_error_is_recorded_on_its_group_and_never_stops_the_round(service, fake):
    """Rows stored before ids were checked: an id the HTTP client refuses, and one Parallel does not know."""
    made, _ = await service.create("alice", "q", "daily")
    fake.add_event(made.monitor_id, "g_ok", "good news", ["https://x.example"])
    now = utc_now()
    for monitor_id, group in (("m" * 100_000, "g1"), ("monitor_gone", "g2"), (made.monitor_id, "g_ok")):
        await service.store.add_event_group(monitor_id=monitor_id, event_group_id=group, webhook_id=None,
                                            received_at=now)
    report = await service.process_pending(now)
    assert report.fetched == [f"{made.monitor_id}/g_ok"]
    assert [label.split("/")[-1] for label in report.retrying] == ["g1"]
    assert [label.split("/")[-1] for label in report.failed] == ["g2"]  # Parallel's 404: given up at once
    groups = {g.event_group_id: g for g in await service.store.list_event_groups()}
    assert groups["g2"].fetch_state == "failed" and "not found" in groups["g2"].last_error.lower()
    assert groups["g1"].fetch_state == "pending" and groups["g1"].last_error
    later = now + timedelta(hours=2)
    for _ in range(2, service.settings.monitor_fetch_max_attempts + 1):
        report = await service.process_pending(later)
        later += timedelta(hours=2)
    assert [label.split("/")[-1] for label in report.failed] == ["g1"]
    assert (await service.store.list_event_groups())[0].fetch_state == "failed"
    assert await service.process_pending(later + timedelta(days=1)) == type(report)()
