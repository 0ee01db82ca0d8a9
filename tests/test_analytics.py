"""The analytics log: one JSON line per chat request, with what it cost and never a secret."""

from __future__ import annotations

import json
import logging
import os
import time
from pathlib import Path
from typing import Any

import httpx
import openai
import pytest
from prometheus_client import REGISTRY

from llm_wrapper.analytics import AnalyticsLog
from tests.fakes.openai_minimal import KEY_ENV, MODEL, minimal_openai_app, minimal_openai_config
from tests.fakes.server import ThreadedServer
from tests.fixtures.providers import KEYS, MAX_BODY_BYTES
from tests.gateway_process import GatewayProcess


def lines_for(path: Path, user: str, count: int, wait: float = 6.0) -> list[dict[str, Any]]:
    """The user's lines, once there are `count` of them (lines are written about once a second)."""
    deadline = time.monotonic() + wait
    while True:
        found = [json.loads(line) for line in path.read_text().splitlines()]
        found = [record for record in found if record.get("user") == user]
        if len(found) >= count or time.monotonic() > deadline:
            return found
        time.sleep(0.1)


def test_one_line_per_request_with_its_facts(gateway) -> None:
    token = gateway.add_token("dave", rate_limit=100)
    sdk = openai.OpenAI(base_url=gateway.url + "/v1", api_key=token, max_retries=0, timeout=20)
    ask = [{"role": "user", "content": "analytics"}]
    with sdk:
        sdk.chat.completions.create(model="gpt-test", messages=ask)
        list(sdk.chat.completions.create(model="sonar-test", messages=ask, stream=True,
                                         stream_options={"include_usage": True}))
        list(sdk.chat.completions.create(model="lite", messages=ask, stream=True))
        with pytest.raises(openai.NotFoundError):
            sdk.chat.completions.create(model="nope", messages=ask)
        with pytest.raises(openai.InternalServerError):
            sdk.chat.completions.create(model="gpt-down", messages=ask)
    headers = {"Authorization": f"Bearer {token}", "Content-Type": "application/json"}
    url = f"{gateway.url}/v1/chat/completions"
    assert httpx.post(url, content=b"{oops", headers=headers).status_code == 400
    assert httpx.post(url, content=b"x" * (MAX_BODY_BYTES + 1), headers=headers).status_code == 413

    log_path = Path(gateway.env["LLM_WRAPPER_LOG_FILE"])
    records = lines_for(log_path, "dave", 7)
    assert len(records) == 7
    plain, pplx, parallel, unknown, down, malformed, too_big = records
    for record in records:
        assert isinstance(record["latency_ms"], (int, float)) and record["latency_ms"] >= 0
        assert record["time"].endswith("Z")
    assert plain["model"] == "gpt-test" and plain["provider"] == "openai"
    assert plain["stream"] is False and plain["status"] == 200
    assert plain["usage"] == {"prompt_tokens": 11, "completion_tokens": 4, "total_tokens": 15}
    assert "ttfb_ms" not in plain
    assert pplx["provider"] == "perplexity" and pplx["stream"] is True and pplx["status"] == 200
    assert 0 <= pplx["ttfb_ms"] <= pplx["latency_ms"]
    assert pplx["usage"]["completion_tokens"] == 4  # the last cumulative usage, not a sum
    assert parallel["provider"] == "parallel" and parallel["usage"]["total_tokens"] > 0  # estimated
    assert (unknown["status"], unknown["model"], unknown["provider"]) == (404, "nope", None)
    assert (down["status"], down["provider"]) == (502, "openai_down")
    assert malformed["status"] == 400 and too_big["status"] == 413

    text = log_path.read_text()
    assert token not in text and "llmw_" not in text
    for key in KEYS.values():
        assert key not in text


def test_record_outside_an_event_loop_is_written_at_once(tmp_path: Path) -> None:
    log = AnalyticsLog(tmp_path / "sub" / "a.log")
    log.record(user="u", status=200)
    log.record(user="v", status=500)
    lines = [json.loads(line) for line in (tmp_path / "sub" / "a.log").read_text().splitlines()]
    assert [(r["user"], r["status"]) for r in lines] == [("u", 200), ("v", 500)]
    log.close()
    log.close()


async def test_records_in_a_loop_are_batched_until_flush(tmp_path: Path) -> None:
    path = tmp_path / "b.log"
    log = AnalyticsLog(path)
    log.record(user="u", status=200)
    assert path.read_text() == ""
    log.close()
    assert json.loads(path.read_text())["user"] == "u"


@pytest.mark.parametrize("model", ["gpt-test", "Samba-Test-70B"])
def test_stream_usage_is_recorded_even_when_the_client_did_not_ask(gateway, fake_providers, model) -> None:
    """The gateway asks the provider for usage; the client still sees only the chunks it asked for."""
    user = f"usage-{model}"
    token = gateway.add_token(user, rate_limit=10)
    marker = f"usage please {model}"
    with openai.OpenAI(base_url=gateway.url + "/v1", api_key=token, max_retries=0, timeout=20) as sdk:
        chunks = list(sdk.chat.completions.create(
            model=model, messages=[{"role": "user", "content": marker}], stream=True
        ))
        asked = list(sdk.chat.completions.create(
            model=model, messages=[{"role": "user", "content": marker}], stream=True,
            stream_options={"include_usage": True},
        ))
    assert chunks and all(chunk.choices for chunk in chunks)  # no usage-only chunk the client did not ask for
    assert all(chunk.usage is None for chunk in chunks)
    assert asked[-1].choices == [] and asked[-1].usage is not None
    sent = fake_providers.received(marker)
    assert [r.body["stream_options"]["include_usage"] for r in sent] == [True, True]
    records = lines_for(Path(gateway.env["LLM_WRAPPER_LOG_FILE"]), user, 2)
    assert [r["usage"]["total_tokens"] > 0 for r in records] == [True, True]


def lost_lines() -> float:
    return REGISTRY.get_sample_value("llm_wrapper_analytics_lines_lost_total") or 0.0


def test_a_full_disk_drops_and_counts_lines_and_warns_once_per_outage(tmp_path: Path, caplog) -> None:
    path = tmp_path / "c.log"
    log = AnalyticsLog(path)
    full = os.open("/dev/full", os.O_WRONLY)  # every write: ENOSPC
    healthy = os.dup(log._fd)
    before = lost_lines()
    with caplog.at_level(logging.INFO, logger="llm_wrapper.analytics"):
        os.dup2(full, log._fd)  # the disk under the log fills up
        for n in range(3):
            log.record(user=f"lost{n}", status=200)  # outside a loop: written at once, and failing
        os.dup2(healthy, log._fd)
        log.record(user="kept", status=200)
        os.dup2(full, log._fd)
        log.record(user="lost3", status=200)
    assert lost_lines() - before == 4
    warnings = [r.getMessage() for r in caplog.records if "cannot write" in r.getMessage()]
    assert len(warnings) == 2 and "No space left on device" in warnings[0]
    assert [json.loads(line)["user"] for line in path.read_text().splitlines()] == ["kept"]
    os.dup2(healthy, log._fd)
    log.close()
    os.close(full)
    os.close(healthy)


async def test_a_full_disk_never_fails_a_record_even_when_a_batch_is_flushed(tmp_path: Path) -> None:
    log = AnalyticsLog(Path("/dev/full"))
    before = lost_lines()
    for n in range(AnalyticsLog.FLUSH_LINES + 1):  # the FLUSH_LINES-th record writes in the request's task
        log.record(user=f"u{n}", status=200)
    log.close()
    assert lost_lines() - before == AnalyticsLog.FLUSH_LINES + 1


def test_long_strings_are_cut_with_a_marker(tmp_path: Path) -> None:
    path = tmp_path / "d.log"
    log = AnalyticsLog(path)
    log.record(user="u" * 300, model="m" * 256, usage={"note": ["x" * 1000]}, status=200)
    log.close()
    line = json.loads(path.read_text())
    assert line["user"] == "u" * 256 + "…(+44 chars)"
    assert line["model"] == "m" * 256
    assert line["usage"] == {"note": ["x" * 256 + "…(+744 chars)"]}
    assert line["status"] == 200


def test_requests_succeed_when_the_log_cannot_be_written(tmp_path: Path) -> None:
    provider = ThreadedServer(minimal_openai_app()).start()
    gateway = GatewayProcess(tmp_path, {KEY_ENV: "sk-fake", "LLM_WRAPPER_LOG_FILE": "/dev/full"},
                             config=minimal_openai_config(provider.url))
    try:
        token = gateway.add_token("full", rate_limit=100)
        gateway.start()
        body = {"model": MODEL, "messages": [{"role": "user", "content": "hi"}]}
        with httpx.Client(base_url=gateway.url, headers={"Authorization": f"Bearer {token}"}) as http:
            statuses = [http.post("/v1/chat/completions", json=body).status_code for _ in range(5)]
            assert statuses == [200] * 5
            deadline = time.monotonic() + 10
            while "llm_wrapper_analytics_lines_lost_total 5.0" not in http.get("/metrics").text:
                assert time.monotonic() < deadline, http.get("/metrics").text
                time.sleep(0.2)
    finally:
        gateway.stop()
        provider.stop()
    assert gateway.logs().count("cannot write") == 1
