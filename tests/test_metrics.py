"""`/metrics`: Prometheus text that adds up every worker process."""

from __future__ import annotations

import socket
import subprocess
from collections import defaultdict

import httpx
import pytest
from prometheus_client.parser import text_string_to_metric_families

from .fakes.openai_minimal import KEY_ENV, MODEL, minimal_openai_app, minimal_openai_config
from .fakes.server import ThreadedServer, free_port
from .gateway_process import BIN, GatewayProcess


def samples(text: str) -> dict[str, dict[tuple, float]]:
    found: dict[str, dict[tuple, float]] = defaultdict(dict)
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            found[sample.name][tuple(sorted(sample.labels.items()))] = sample.value
    return found


def test_metrics_add_up_requests_over_two_workers(tmp_path):
    provider = ThreadedServer(minimal_openai_app()).start()
    gateway = GatewayProcess(tmp_path, {KEY_ENV: "sk-fake"}, config=minimal_openai_config(provider.url), workers=2)
    token = gateway.add_token("metered", rate_limit=12)
    gateway.start()
    try:
        headers = {"Authorization": f"Bearer {token}"}
        body = {"model": MODEL, "messages": [{"role": "user", "content": "hi"}]}
        with httpx.Client(base_url=gateway.url, headers=headers, timeout=10) as client:
            statuses = [client.post("/v1/chat/completions", json=body).status_code for _ in range(10)]
            statuses.append(client.post("/v1/chat/completions", json={**body, "model": "no-such"}).status_code)
            statuses += [client.post("/v1/chat/completions", json=body).status_code for _ in range(3)]
            assert statuses == [200] * 10 + [404, 200, 429, 429]
            response = client.get("/metrics")
        assert response.status_code == 200
        assert response.headers["content-type"].startswith("text/plain")
        found = samples(response.text)
        requests = found["llm_wrapper_requests_total"]
        ok = (("model", MODEL), ("provider", "openai"), ("status", "200"))
        assert requests[ok] == 11
        assert requests[(("model", "unknown"), ("provider", "none"), ("status", "404"))] == 1
        assert found["llm_wrapper_rate_limited_total"][()] == 2
        assert found["llm_wrapper_request_seconds_count"][(("provider", "openai"),)] == 11
        assert token not in response.text
    finally:
        gateway.stop()
        provider.stop()


@pytest.mark.parametrize("workers", [1, 2])
def test_metrics_port_serves_metrics_privately_and_only_there(tmp_path, workers):
    """METRICS_PORT: `/metrics` is served on its own listener (adding up every worker), the API port
    answers 404 for it."""
    metrics_port = free_port()
    gateway = GatewayProcess(tmp_path, {KEY_ENV: "sk-fake", "METRICS_PORT": str(metrics_port)},
                             config=minimal_openai_config("http://127.0.0.1:9"), workers=workers)
    gateway.start()
    try:
        with httpx.Client(timeout=10) as client:
            for _ in range(10):  # a fresh connection each, so that both workers answer some
                assert httpx.post(gateway.url + "/webhooks/parallel-monitor", content=b"{", timeout=10).status_code == 400
            hidden = client.get(gateway.url + "/metrics")
            assert hidden.status_code == 404 and hidden.json()["error"]["type"] == "invalid_request_error"
            response = client.get(f"http://127.0.0.1:{metrics_port}/metrics")
        assert response.status_code == 200 and response.headers["content-type"].startswith("text/plain")
        found = samples(response.text)
        assert found["llm_wrapper_webhook_deliveries_total"][(("outcome", "refused_400"),)] == 10
        assert f"metrics on http://127.0.0.1:{metrics_port}/metrics only" in gateway.logs()
    finally:
        gateway.stop()


def test_a_metrics_port_in_use_stops_start_up(tmp_path):
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        gateway = GatewayProcess(tmp_path, {KEY_ENV: "sk-fake", "METRICS_PORT": str(port)},
                                 config=minimal_openai_config("http://127.0.0.1:9"))
        result = subprocess.run([str(BIN / "llm-wrapper"), "serve", "--port", str(free_port())], env=gateway.env,
                                cwd=tmp_path, capture_output=True, text=True, timeout=60)
    assert result.returncode != 0
    assert f"cannot serve metrics on 127.0.0.1:{port}" in result.stderr
