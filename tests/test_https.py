"""HTTPS: the gateway serves TLS with SSL_CERTFILE/SSL_KEYFILE, and refuses to start with an unreadable file."""

from __future__ import annotations

import ssl
import subprocess

import httpx
import pytest
from openai import OpenAI

from .gateway_process import BIN, GatewayProcess

CONFIG = {
    "openai": {
        "name": "OpenAI",
        "base_url": "http://127.0.0.1:9/v1",
        "api_key_env": "OPENAI_API_KEY",
        "supported_models": ["gpt-test"],
        "payload_extra_parameters": {},
    }
}


@pytest.fixture(scope="module")
def certificate(tmp_path_factory):
    folder = tmp_path_factory.mktemp("tls")
    cert, key = folder / "cert.pem", folder / "key.pem"
    subprocess.run(
        ["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "2",
         "-subj", "/CN=127.0.0.1", "-addext", "subjectAltName=IP:127.0.0.1",
         "-keyout", str(key), "-out", str(cert)],
        check=True, capture_output=True,
    )
    return cert, key


def test_openai_sdk_talks_https_to_the_gateway(tmp_path, certificate):
    cert, key = certificate
    gateway = GatewayProcess(
        tmp_path,
        {"OPENAI_API_KEY": "sk-test", "SSL_CERTFILE": str(cert), "SSL_KEYFILE": str(key)},
        config=CONFIG,
        scheme="https",
    )
    token = gateway.add_token("tls-user")
    gateway.start()
    try:
        with httpx.Client(verify=ssl.create_default_context(cafile=str(cert))) as http:
            client = OpenAI(base_url=f"{gateway.url}/v1", api_key=token, http_client=http, max_retries=0)
            models = [m.id for m in client.models.list()]
        assert models == ["gpt-test", "speed"]
        with pytest.raises(httpx.HTTPError):  # plain HTTP on the TLS port does not work
            httpx.get(f"http://127.0.0.1:{gateway.port}/healthz", timeout=2).raise_for_status()
    finally:
        gateway.stop()


def test_unreadable_certificate_stops_start_up_naming_the_file(tmp_path, certificate):
    _, key = certificate
    missing = tmp_path / "no-such-cert.pem"
    env = {"OPENAI_API_KEY": "sk-test", "SSL_CERTFILE": str(missing), "SSL_KEYFILE": str(key)}
    gateway = GatewayProcess(tmp_path, env, config=CONFIG)
    result = subprocess.run(
        [str(BIN / "llm-wrapper"), "serve", "--port", str(gateway.port)],
        env=gateway.env, cwd=tmp_path, capture_output=True, text=True, timeout=30,
    )
    assert result.returncode != 0
    assert str(missing) in result.stderr
    assert "SSL_CERTFILE" in result.stderr
