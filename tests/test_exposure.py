"""What the real server shows and to whom: the `Host` header and PUBLIC_BASE_URL in pages and
redirects, the API docs (off unless API_DOCS), and `nosniff` on static files and pages."""

from __future__ import annotations

import base64
import hashlib
import re
import socket
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from .fakes.openai_minimal import KEY_ENV, minimal_openai_config
from .gateway_process import GatewayProcess

HOSTILE_HOSTS = [
    'evil.example"><script>alert(1)</script>',
    "evil.example/phish?x=",
    "evil.example@attacker.example",
    "a" * 300 + ".example",
    "",
]


def gateway(workdir: Path, **env: str) -> Iterator[GatewayProcess]:
    process = GatewayProcess(workdir, {KEY_ENV: "sk-fake-exposure", **env},
                             config=minimal_openai_config("http://127.0.0.1:9"))
    try:
        yield process.start()
    finally:
        process.stop()


@pytest.fixture(scope="module")
def plain(tmp_path_factory: pytest.TempPathFactory) -> Iterator[GatewayProcess]:
    """Default settings: no PUBLIC_BASE_URL, no API docs."""
    yield from gateway(tmp_path_factory.mktemp("plain"))


@pytest.fixture(scope="module")
def public(tmp_path_factory: pytest.TempPathFactory) -> Iterator[GatewayProcess]:
    yield from gateway(tmp_path_factory.mktemp("public"), PUBLIC_BASE_URL="https://llm.example.com/",
                       API_DOCS="true")


def raw_get(process: GatewayProcess, path: str, host: str | None) -> tuple[int, dict[str, str], str]:
    """GET with exactly this Host header (None: none at all), over a plain socket."""
    lines = [f"GET {path} HTTP/1.1", "Connection: close"]
    if host is not None:
        lines.append(f"Host: {host}")
    with socket.create_connection(("127.0.0.1", process.port), timeout=10) as sock:
        sock.sendall(("\r\n".join(lines) + "\r\n\r\n").encode("latin-1"))
        data = b""
        while chunk := sock.recv(65536):
            data += chunk
    head, _, body = data.partition(b"\r\n\r\n")
    status_line, *header_lines = head.decode("latin-1").split("\r\n")
    headers = {}
    for line in header_lines:
        name, _, value = line.partition(":")
        headers[name.strip().lower()] = value.strip()
    return int(status_line.split()[1]), headers, body.decode("utf-8", "replace")


def test_a_plausible_host_is_used_as_before(plain: GatewayProcess) -> None:
    status, _, page = raw_get(plain, "/", "llm.internal:8443")
    assert status == 200 and "http://llm.internal:8443/v1" in page
    status, headers, _ = raw_get(plain, "/account/?x=1", "llm.internal:8443")
    assert status == 307 and headers["location"] == "http://llm.internal:8443/account?x=1"


@pytest.mark.parametrize("host", HOSTILE_HOSTS)
def test_a_hostile_host_is_never_reflected(plain: GatewayProcess, host: str) -> None:
    own = f"http://127.0.0.1:{plain.port}"
    status, _, page = raw_get(plain, "/", host)
    assert status in (200, 400)  # the server may refuse some outright
    if status == 200:
        assert f"{own}/v1" in page
        assert "evil.example" not in page and "attacker" not in page and "aaaa" not in page
    status, headers, _ = raw_get(plain, "/create-monitor/", host)
    if status != 400:
        assert status == 307 and headers["location"] == f"{own}/create-monitor"


def test_public_base_url_replaces_the_host_everywhere(public: GatewayProcess) -> None:
    status, _, page = raw_get(public, "/", "evil.example")
    assert status == 200 and "https://llm.example.com/v1" in page and "evil.example" not in page
    status, headers, _ = raw_get(public, "/payment/success/", "evil.example")
    assert status == 307 and headers["location"] == "https://llm.example.com/payment/success"
    status, headers, _ = raw_get(public, "/healthz/", "evil.example")
    assert status == 307 and headers["location"] == "https://llm.example.com/healthz"


def test_an_unknown_path_is_still_a_404_in_openai_shape(plain: GatewayProcess) -> None:
    for path in ("/nothing/", "/nothing", "/v1/nothing/", "/static/nothing.css", "/static/nothing/"):
        response = httpx.get(plain.url + path, follow_redirects=False, timeout=10)
        assert response.status_code == 404, path
        assert set(response.json()["error"]) == {"message", "type", "param", "code"}


def test_api_docs_are_off_by_default(plain: GatewayProcess) -> None:
    for path in ("/docs", "/redoc", "/openapi.json", "/docs/oauth2-redirect"):
        response = httpx.get(plain.url + path, timeout=10)
        assert response.status_code == 404, path
        assert response.json()["error"]["type"] == "invalid_request_error"


def test_api_docs_when_on_allow_only_the_cdn_and_their_own_inline_script(public: GatewayProcess) -> None:
    spec = httpx.get(public.url + "/openapi.json", timeout=10)
    assert spec.status_code == 200 and "/v1/models" in spec.json()["paths"]
    for path in ("/docs", "/redoc"):
        response = httpx.get(public.url + path, timeout=10)
        assert response.status_code == 200 and response.headers["content-type"].startswith("text/html")
        policy = response.headers["content-security-policy"]
        assert "default-src 'none'" in policy and "frame-ancestors 'none'" in policy
        sources = set(re.findall(r"https?://[^\s;']+", policy))
        assert sources == {"https://cdn.jsdelivr.net"}, policy
        assert set(re.findall(r"https?://[^\s\"'<>]+", response.text)) <= {
            "https://cdn.jsdelivr.net/npm/swagger-ui-dist@5/swagger-ui.css",
            "https://cdn.jsdelivr.net/npm/swagger-ui-dist@5/swagger-ui-bundle.js",
            "https://cdn.jsdelivr.net/npm/redoc@2/bundles/redoc.standalone.js",
        }
        for script in re.findall(r"<script>(.*?)</script>", response.text, re.S):
            digest = base64.b64encode(hashlib.sha256(script.encode()).digest()).decode()
            assert f"'sha256-{digest}'" in policy
        assert "'unsafe-inline'" not in policy.split("script-src")[1].split(";")[0]
        assert response.headers["x-content-type-options"] == "nosniff"


@pytest.mark.parametrize("path", ["/static/site.css", "/static/site.js", "/static/favicon.svg", "/", "/account"])
def test_static_files_and_pages_say_nosniff(plain: GatewayProcess, path: str) -> None:
    response = httpx.get(plain.url + path, timeout=10)
    assert response.status_code == 200
    assert response.headers["x-content-type-options"] == "nosniff"
