"""Text PostgreSQL cannot store, sent to the real gateway on PostgreSQL: a 400, never a 500."""

from __future__ import annotations

import json

import httpx

from .fakes.parallel import FakeParallel
from .fixtures.parallel import WEBHOOK_PATH

ADMIN_KEY = "admin-key-for-tests-0123456789"


def test_nul_characters_are_a_400_on_postgresql(monitor_gateway, fake_parallel: FakeParallel, pg_dsn: str) -> None:
    gateway = monitor_gateway(DATABASE_URL=pg_dsn, LLM_WRAPPER_ADMIN_KEY=ADMIN_KEY)
    with httpx.Client(base_url=gateway.url, timeout=10) as client:
        admin = {"Authorization": f"Bearer {ADMIN_KEY}"}
        for username in ("a\x00b", 5, ["alice"]):
            made = client.post("/v1/admin/tokens", headers=admin,
                               json={"username": username, "expiry": "2031-01-01 00:00:00", "rate_limit": 5})
            assert made.status_code == 400 and made.json()["error"]["param"] == "username", made.text
        for expiry in ("0999-06-01 00:00:00", "9999-12-31T23:59:59-10:00"):
            made = client.post("/v1/admin/tokens", headers=admin,
                               json={"username": "u", "expiry": expiry, "rate_limit": 5})
            assert made.status_code == 400 and made.json()["error"]["param"] == "expiry", made.text

        user = {"Authorization": f"Bearer {gateway.add_token('alice')}"}
        created = client.post("/v1/monitors", headers=user, json={"query": "chips\x00", "cadence": "daily"})
        assert created.status_code == 400 and created.json()["error"]["param"] == "query", created.text
        gone = client.delete("/v1/monitors/m%00", headers=user)
        assert gone.status_code == 400 and gone.json()["error"]["param"] == "monitor_id", gone.text

        body = json.dumps({"type": "monitor.event.detected", "timestamp": "2026-05-01T12:00:00Z",
                           "data": {"monitor_id": "m\x00", "event": {"event_group_id": "g"}}}).encode()
        status, _ = fake_parallel.deliver(gateway.url + WEBHOOK_PATH, body, fake_parallel.signed_headers(body))
        assert status == 400

        assert client.get("/v1/monitors", headers=user).json()["data"] == []
        assert client.get("/readyz").status_code == 200
