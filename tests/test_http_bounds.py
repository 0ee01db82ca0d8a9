"""Bounds on what a client holds before its request reaches the app (llm_wrapper/http_protocol.py):
head size and count (431), time to send the head and the body (408), idle keep-alive. Raw sockets
against the real `llm-wrapper serve`, with timeouts of a second or two so that waits stay short.
"""

from __future__ import annotations

import hashlib
import inspect
import json
import socket
import sys
import threading
import time
from collections.abc import Iterator
from importlib.metadata import version
from pathlib import Path

import httpx
import openai
import pytest
from aiohttp import web
from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol

from .fakes.server import ThreadedServer
from .gateway_process import GatewayProcess

ROOT = Path(__file__).resolve().parents[1]
HEADER_TIMEOUT = 1.0
BODY_TIMEOUT = 2.0
KEEPALIVE_TIMEOUT = 1.5
LIMIT = 65536
SLACK = 4.0  # on top of a timeout, for a loaded machine: a bound that does not hold never closes
ENV = {
    "OPENAI_API_KEY": "sk-test",
    "HEADER_TIMEOUT_SECONDS": str(HEADER_TIMEOUT),
    "BODY_TIMEOUT_SECONDS": str(BODY_TIMEOUT),
    "KEEPALIVE_TIMEOUT_SECONDS": str(KEEPALIVE_TIMEOUT),
}


def echo_length_app() -> web.Application:
    """A provider that answers how many characters of user content it received."""

    async def completions(request: web.Request) -> web.Response:
        body = await request.json()
        size = sum(len(m["content"]) for m in body["messages"])
        return web.json_response({
            "id": "chatcmpl-echo", "object": "chat.completion", "created": 1, "model": body["model"],
            "choices": [{"index": 0, "message": {"role": "assistant", "content": str(size)},
                         "finish_reason": "stop"}],
            "usage": {"prompt_tokens": 1, "completion_tokens": 1, "total_tokens": 2},
        })

    app = web.Application(client_max_size=64 * 1024 * 1024)
    app.router.add_post("/v1/chat/completions", completions)
    return app


def provider(url: str) -> dict:
    return {"openai": {"name": "OpenAI", "base_url": f"{url}/v1", "api_key_env": "OPENAI_API_KEY",
                       "supported_models": ["gpt-echo"], "payload_extra_parameters": {}}}


@pytest.fixture(scope="module")
def upstream() -> Iterator[ThreadedServer]:
    server = ThreadedServer(echo_length_app()).start()
    yield server
    server.stop()


@pytest.fixture(scope="module")
def gateway(tmp_path_factory, upstream) -> Iterator[GatewayProcess]:
    process = GatewayProcess(tmp_path_factory.mktemp("bounds"), ENV, config=provider(upstream.url))
    process.token = process.add_token("bounded")  # type: ignore[attr-defined]
    process.start()
    yield process
    process.stop()


def connect(gateway: GatewayProcess) -> socket.socket:
    return socket.create_connection(("127.0.0.1", gateway.port), timeout=HEADER_TIMEOUT + BODY_TIMEOUT + SLACK)


def send_quietly(sock: socket.socket, data: bytes) -> bool:
    """Send, and say whether the server still took it (it may have closed already)."""
    try:
        sock.sendall(data)
        return True
    except OSError:
        return False


def read_response(stream) -> tuple[int, dict[str, str], bytes]:
    """One HTTP/1.1 response with a Content-Length, from `sock.makefile("rb")` (which keeps what
    follows it, such as a pipelined answer, for the next call)."""
    status = int(stream.readline().split()[1])
    headers = {}
    while (line := stream.readline()) not in (b"\r\n", b""):
        name, value = line.decode("latin-1").split(":", 1)
        headers[name.strip().lower()] = value.strip()
    return status, headers, stream.read(int(headers["content-length"]))


def wait_closed(sock: socket.socket) -> tuple[bytes, float]:
    """Everything the server still sends, and the seconds until it closes the connection."""
    start = time.monotonic()
    received = b""
    try:
        while chunk := sock.recv(65536):
            received += chunk
    except ConnectionResetError:
        pass
    return received, time.monotonic() - start


def status_and_error(raw: bytes) -> tuple[int, dict]:
    head, body = raw.split(b"\r\n\r\n", 1)
    assert b"connection: close" in head.lower()
    return int(head.split()[1]), json.loads(body)["error"]


def get(path: str = "/healthz", extra: bytes = b"") -> bytes:
    return f"GET {path} HTTP/1.1\r\nHost: gateway\r\n".encode() + extra + b"\r\n"


def padding(total: int, per_header: int = 1000) -> bytes:
    count = total // per_header + 1
    return b"".join(b"X-Pad-%d: %s\r\n" % (i, b"a" * per_header) for i in range(count))


def rss_bytes(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) * 1024
    raise AssertionError("no VmRSS")


# -- the head: size and count ---------------------------------------------------------------

def test_a_head_over_the_size_bound_is_answered_431_and_closed(gateway):
    with connect(gateway) as sock:
        sock.sendall(get(extra=padding(LIMIT + 4096)))
        received, _ = wait_closed(sock)
    status, error = status_and_error(received)
    assert status == 431
    assert error["code"] == "request_header_fields_too_large" and error["type"] == "invalid_request_error"


def test_more_headers_than_the_count_bound_is_431(gateway):
    with connect(gateway) as sock:
        sock.sendall(get(extra=b"".join(b"X-H%d: 1\r\n" % i for i in range(101))))
        received, _ = wait_closed(sock)
    assert status_and_error(received)[0] == 431


def test_a_head_that_never_ends_is_cut_at_the_bound_long_before_the_timeout(gateway):
    with connect(gateway) as sock:
        sock.sendall(b"GET /healthz HTTP/1.1\r\nHost: gateway\r\nX-Endless: ")
        sent = 0
        while sent < 4 * LIMIT and send_quietly(sock, b"a" * 4096):
            sent += 4096
        _, waited = wait_closed(sock)
    assert waited < HEADER_TIMEOUT  # closed for its size, not for its time


def test_heads_of_many_megabytes_do_not_grow_the_server(gateway):
    pid = gateway.proc.pid
    before = rss_bytes(pid)
    piece = b"a" * 65536

    def flood() -> None:
        with connect(gateway) as sock:
            send_quietly(sock, b"GET /healthz HTTP/1.1\r\nHost: gateway\r\nX-Flood: ")
            for _ in range(256):  # 16 MiB each
                if not send_quietly(sock, piece):
                    break

    threads = [threading.Thread(target=flood) for _ in range(5)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(60)
    grown = rss_bytes(pid) - before
    assert grown < 24 * 1024 * 1024, f"grew by {grown / 2**20:.0f} MiB"
    with connect(gateway) as sock:  # and it still serves
        sock.sendall(get())
        assert read_response(sock.makefile("rb"))[0] == 200


def test_an_8_kib_header_and_several_requests_on_one_connection_still_work(gateway):
    with connect(gateway) as sock, sock.makefile("rb") as stream:
        sock.sendall(get(extra=b"X-Big: " + b"b" * 8192 + b"\r\n"))
        assert read_response(stream)[0] == 200
        sock.sendall(get() + get("/nowhere"))  # pipelined: answered in turn
        assert read_response(stream)[0] == 200
        assert read_response(stream)[0] == 404
        for _ in range(4):
            time.sleep(KEEPALIVE_TIMEOUT / 4)
            sock.sendall(get())
            status, headers, body = read_response(stream)
            assert status == 200 and headers.get("connection") != "close"


def test_refusals_are_counted_in_the_metrics(gateway):
    def cut(reason: str) -> float:
        line = f'llm_wrapper_connections_cut_total{{reason="{reason}"}} '
        text = httpx.get(f"{gateway.url}/metrics").text
        return next((float(row.removeprefix(line)) for row in text.splitlines() if row.startswith(line)), 0.0)

    before = cut("header_too_large")
    with connect(gateway) as sock:
        sock.sendall(get(extra=padding(LIMIT)))
        wait_closed(sock)
    assert cut("header_too_large") == before + 1


# -- time: head, body, idle -----------------------------------------------------------------

def test_a_connection_that_sends_nothing_is_closed_after_the_keep_alive_timeout(gateway):
    with connect(gateway) as sock:
        received, waited = wait_closed(sock)
    assert received == b""
    assert KEEPALIVE_TIMEOUT * 0.9 <= waited < KEEPALIVE_TIMEOUT + 2.5  # uvicorn's: never


def test_half_a_head_is_answered_408_after_the_header_timeout(gateway):
    with connect(gateway) as sock:
        sock.sendall(b"POST /v1/chat/completions HTTP/1.1\r\nHost: gateway\r\nContent-Ty")
        received, waited = wait_closed(sock)
    status, error = status_and_error(received)
    assert status == 408 and error["code"] == "request_timeout"
    assert HEADER_TIMEOUT * 0.9 <= waited < HEADER_TIMEOUT + SLACK


def test_a_head_sent_a_byte_at_a_time_is_still_cut_at_the_header_timeout(gateway):
    with connect(gateway) as sock:
        sock.sendall(b"GET /healthz HTTP/1.1\r\nHost: gateway\r\nX-Slow: ")
        start = time.monotonic()
        while send_quietly(sock, b"s") and time.monotonic() - start < HEADER_TIMEOUT + SLACK:
            time.sleep(0.1)
        received, _ = wait_closed(sock)
        waited = time.monotonic() - start
    assert status_and_error(received)[0] == 408
    assert waited < HEADER_TIMEOUT + SLACK


def test_a_slow_body_is_answered_408_after_the_body_timeout(gateway):
    head = (f"POST /v1/chat/completions HTTP/1.1\r\nHost: gateway\r\nAuthorization: Bearer {gateway.token}\r\n"
            "Content-Type: application/json\r\nContent-Length: 1000\r\n\r\n").encode()
    with connect(gateway) as sock:
        sock.sendall(head + b'{"model": "gpt-echo", ')
        start = time.monotonic()
        while send_quietly(sock, b" ") and time.monotonic() - start < BODY_TIMEOUT + SLACK:
            time.sleep(0.2)  # a trickle: the deadline is for the whole body, not between bytes
        received, _ = wait_closed(sock)
        waited = time.monotonic() - start
    status, error = status_and_error(received)
    assert status == 408 and "body" in error["message"]
    assert BODY_TIMEOUT * 0.9 <= waited < BODY_TIMEOUT + SLACK


def test_an_idle_keep_alive_connection_is_closed_after_the_keep_alive_timeout(gateway):
    with connect(gateway) as sock:
        sock.sendall(get())
        assert read_response(sock.makefile("rb"))[0] == 200
        received, waited = wait_closed(sock)
    assert received == b""
    assert KEEPALIVE_TIMEOUT * 0.9 <= waited < KEEPALIVE_TIMEOUT + 2.5  # uvicorn's default is 5


def test_a_large_body_sent_at_normal_speed_goes_through(gateway):
    client = openai.OpenAI(base_url=f"{gateway.url}/v1", api_key=gateway.token, max_retries=0)
    content = "x" * (6 * 1024 * 1024)
    answer = client.chat.completions.create(model="gpt-echo", messages=[{"role": "user", "content": content}])
    assert answer.choices[0].message.content == str(len(content))


# -- every way of starting the server uses the bounds -----------------------------------------

@pytest.mark.parametrize("launch", ["serve --workers 2", "llm-wrapper.py"])
def test_every_launch_path_applies_the_settings(tmp_path, upstream, launch):
    command = [sys.executable, str(ROOT / "llm-wrapper.py")] if launch == "llm-wrapper.py" else None
    process = GatewayProcess(tmp_path, {**ENV, "MAX_HEADER_BYTES": "4096"}, config=provider(upstream.url),
                             workers=2 if "workers" in launch else 1, command=command)
    process.start()
    try:
        for _ in range(4):  # connections spread over the workers
            with connect(process) as sock:
                sock.sendall(get(extra=b"X-Big: " + b"b" * 8192 + b"\r\n"))
                assert status_and_error(wait_closed(sock)[0])[0] == 431
        with connect(process) as sock:
            received, waited = wait_closed(sock)
        assert received == b"" and waited < KEEPALIVE_TIMEOUT + SLACK
    finally:
        process.stop()


# -- the uvicorn internals the protocol relies on ---------------------------------------------

# http_protocol.py re-implements these methods of uvicorn 0.54's HttpToolsProtocol; when
# uvicorn changes one, read the new one, port the change, and record its digest here.
REIMPLEMENTED_SHA256 = {
    "data_received": "010a7ae59a5d3b1a5e7326ce246878568629d126a076d8af5ba10cab040fae43",
    "on_response_complete": "64e254f28e389e7614f2c828176d639174e66aa9d814a4b06624ec86ec0a5b95",
}


def test_uvicorn_internals_are_the_ones_the_protocol_was_written_for():
    assert version("uvicorn").startswith("0.54."), "pyproject.toml pins uvicorn; re-check http_protocol.py"
    for name, digest in REIMPLEMENTED_SHA256.items():
        source = inspect.getsource(getattr(HttpToolsProtocol, name))
        assert hashlib.sha256(source.encode()).hexdigest() == digest, f"uvicorn's {name} changed:\n{source}"
    for name in ("_should_upgrade", "_unsupported_upgrade_warning",
                 "handle_websocket_upgrade", "send_400_response", "on_header", "on_headers_complete",
                 "on_message_complete", "connection_made", "connection_lost", "_start_asgi_task"):
        assert callable(getattr(HttpToolsProtocol, name)), name
