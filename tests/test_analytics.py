"""The analytics log: one JSON line per chat request, with what it cost and never a secret."""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any

import httpx
import openai
import pytest

from llm_wrapper.analytics import AnalyticsLog
from tests.fixtures.providers import KEYS, MAX_BODY_BYTES


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
