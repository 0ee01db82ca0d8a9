"""`/metrics`: Prometheus text that adds up every worker process."""

from __future__ import annotations

from collections import defaultdict

import httpx
from prometheus_client.parser import text_string_to_metric_families

from .fakes.openai_minimal import KEY_ENV, MODEL, minimal_openai_app, minimal_openai_config
from .fakes.server import ThreadedServer
from .gateway_process import GatewayProcess


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
