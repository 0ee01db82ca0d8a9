"""The admin API: off without LLM_WRAPPER_ADMIN_KEY; with it, tokens are listed, created and deleted."""

from __future__ import annotations

from collections.abc import Iterator

import httpx
import pytest

from .gateway_process import GatewayProcess

ADMIN_KEY = "admin-key-for-tests-0123456789"
CONFIG = {
    "openai": {"name": "OpenAI", "base_url": "http://127.0.0.1:9/v1", "api_key_env": "OPENAI_API_KEY",
               "supported_models": ["gpt-test"], "payload_extra_parameters": {}}
}


@pytest.fixture(scope="module")
def gateway(tmp_path_factory) -> Iterator[GatewayProcess]:
    process = GatewayProcess(tmp_path_factory.mktemp("admin"), {"LLM_WRAPPER_ADMIN_KEY": ADMIN_KEY,
                                                                "OPENAI_API_KEY": "sk-test"}, config=CONFIG)
    process.start()
    yield process
    process.stop()


def admin(gateway: GatewayProcess, key: str = ADMIN_KEY) -> httpx.Client:
    return httpx.Client(base_url=gateway.url + "/v1/admin", headers={"Authorization": f"Bearer {key}"}, timeout=10)


def test_create_list_use_and_delete_a_token(gateway):
    with admin(gateway) as client:
        created = client.post("/tokens", json={"username": "ops", "expiry": "2031-01-01 00:00:00", "rate_limit": 7})
        assert created.status_code == 201
        issued = created.json()
        assert issued["token"].startswith("llmw_") and issued["username"] == "ops" and issued["rate_limit"] == 7
        me = httpx.get(gateway.url + "/v1/me", headers={"Authorization": f"Bearer {issued['token']}"}, timeout=10)
        assert me.status_code == 200 and me.json()["rate_limit"] == 7
        listed = client.get("/tokens").json()["data"]
        mine = [t for t in listed if t["id"] == issued["id"]]
        assert mine and mine[0]["username"] == "ops" and mine[0]["expired"] is False
        assert issued["token"] not in client.get("/tokens").text
        assert client.delete(f"/tokens/{issued['id']}").json()["deleted"] is True
        assert client.delete(f"/tokens/{issued['id']}").status_code == 404
    refused = httpx.get(gateway.url + "/v1/me", headers={"Authorization": f"Bearer {issued['token']}"}, timeout=10)
    assert refused.status_code == 401


@pytest.mark.parametrize(
    ("body", "param"),
    [
        ({"username": "", "expiry": "2031-01-01 00:00:00", "rate_limit": 5}, "username"),
        ({"username": "x", "expiry": "someday", "rate_limit": 5}, "expiry"),
        ({"username": "x", "expiry": "2031-01-01 00:00:00", "rate_limit": 0}, "rate_limit"),
        ({"username": "x", "expiry": "2031-01-01 00:00:00", "rate_limit": "5"}, "rate_limit"),
    ],
)
def test_bad_token_fields_are_400_and_write_nothing(gateway, body, param):
    with admin(gateway) as client:
        before = len(client.get("/tokens").json()["data"])
        response = client.post("/tokens", json=body)
        assert response.status_code == 400
        assert response.json()["error"]["param"] == param
        assert len(client.get("/tokens").json()["data"]) == before


ROUTES = [("GET", "/tokens"), ("POST", "/tokens"), ("PATCH", "/tokens/abc"), ("DELETE", "/tokens/abc"),
          ("GET", "/usage")]


def test_wrong_or_missing_admin_key_or_a_user_token_is_401(gateway):
    user = gateway.add_token("not-an-admin")
    for key in ("not-the-key", user):
        with admin(gateway, key=key) as client:
            for method, path in ROUTES:
                answer = client.request(method, path, json={})
                assert answer.status_code == 401, (method, path)
                assert answer.json()["error"]["type"] == "authentication_error"
    for method, path in ROUTES:
        assert httpx.request(method, gateway.url + "/v1/admin" + path, timeout=10).status_code == 401


def test_admin_api_is_off_without_a_key(tmp_path):
    process = GatewayProcess(tmp_path, {"OPENAI_API_KEY": "sk-test"}, config=CONFIG)
    process.env.pop("LLM_WRAPPER_ADMIN_KEY", None)
    process.start()
    try:
        for method, path in ROUTES:
            response = httpx.request(method, process.url + "/v1/admin" + path,
                                     headers={"Authorization": "Bearer anything"}, timeout=10)
            assert response.status_code == 404, (method, path)
            assert set(response.json()["error"]) == {"message", "type", "param", "code"}
    finally:
        process.stop()
