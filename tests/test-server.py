"""The original design's test command, `python3 -m unittest tests/test-server.py`: an end-to-end smoke check.

Standard library `unittest` only (plus the package's own dependencies, installed by
`python3 -m pip install -r requirements.txt`). It starts a tiny fake OpenAI-compatible
provider (`http.server` in a thread), points a temporary `config.json` at it, starts the
real gateway with the original command line (`python3 llm-wrapper.py`) on a free port with
a temporary SQLite database, creates tokens with `tokens/manage_tokens.py add`, and asks
for chat completions over HTTP: answered with the fake's text, and refused with 429 once
the token's daily limit is used up.

pytest does not collect this file (its name does not match `test_*.py`);
tests/test_original_test_command.py runs it as above, so CI keeps the command working.
"""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
import unittest
import urllib.error
import urllib.request
from email.message import Message
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
MODEL = "smoke-model"
ANSWER = "Hello from the fake provider."
KEY_ENV = "SMOKE_PROVIDER_KEY"


class FakeProvider(ThreadingHTTPServer):
    """`POST …/chat/completions` answers ANSWER; `calls` counts the requests that reached it."""

    daemon_threads = True

    def __init__(self) -> None:
        super().__init__(("127.0.0.1", 0), FakeProviderHandler)
        self.calls = 0
        self.thread = threading.Thread(target=self.serve_forever, daemon=True)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server_address[1]}"


class FakeProviderHandler(BaseHTTPRequestHandler):
    server: FakeProvider

    def do_POST(self) -> None:
        body = json.loads(self.rfile.read(int(self.headers.get("Content-Length") or 0)) or b"{}")
        if not self.path.endswith("/chat/completions"):
            self.send_error(404)
            return
        self.server.calls += 1
        answer = json.dumps({
            "id": "chatcmpl-smoke", "object": "chat.completion", "created": int(time.time()),
            "model": body.get("model", MODEL),
            "choices": [{"index": 0, "message": {"role": "assistant", "content": ANSWER},
                         "finish_reason": "stop"}],
            "usage": {"prompt_tokens": 3, "completion_tokens": 6, "total_tokens": 9},
        }).encode()
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(answer)))
        self.end_headers()
        self.wfile.write(answer)

    def log_message(self, format: str, *args: Any) -> None:  # quiet
        pass


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


class ServerSmokeTest(unittest.TestCase):
    """One gateway process for the class; each test makes its own token."""

    @classmethod
    def setUpClass(cls) -> None:
        work = tempfile.TemporaryDirectory(prefix="llm-wrapper-smoke-")
        cls.addClassCleanup(work.cleanup)
        cls.work = Path(work.name)
        cls.provider = FakeProvider()
        cls.provider.thread.start()
        cls.addClassCleanup(cls.provider.server_close)
        cls.addClassCleanup(cls.provider.shutdown)
        config = {"smoke": {
            "name": "Smoke", "adapter": "openai", "base_url": f"{cls.provider.url}/v1",
            "api_key_env": KEY_ENV, "supported_models": [MODEL], "payload_extra_parameters": {},
        }}
        (cls.work / "config.json").write_text(json.dumps(config))
        cls.env = {name: value for name, value in os.environ.items()
                   if name not in ("SSL_CERTFILE", "SSL_KEYFILE", "SERVER_PORT", "DATABASE_URL")}
        cls.env.update({
            KEY_ENV: "sk-smoke",
            "DATABASE_URL": f"sqlite:///{cls.work / 'tokens.db'}",
            "LLM_WRAPPER_CONFIG": str(cls.work / "config.json"),
            "LLM_WRAPPER_LOG_FILE": str(cls.work / "llm_proxy.log"),
            "LLM_WRAPPER_ENV_FILE": str(cls.work / "no.env"),  # not a .env of the caller's
        })
        cls.url = f"http://127.0.0.1:{free_port()}"
        cls.log = open(cls.work / "server.log", "wb")  # closed by a class cleanup
        cls.addClassCleanup(cls.log.close)
        cls.server = subprocess.Popen(
            [sys.executable, str(ROOT / "llm-wrapper.py"), "--host", "127.0.0.1",
             "--port", cls.url.rsplit(":", 1)[1]],
            env=cls.env, cwd=cls.work, stdout=cls.log, stderr=subprocess.STDOUT,
        )
        cls.addClassCleanup(cls.stop_server)
        cls.wait_until_up()

    @classmethod
    def stop_server(cls) -> None:
        if cls.server.poll() is None:
            cls.server.send_signal(signal.SIGTERM)
            try:
                cls.server.wait(20)
            except subprocess.TimeoutExpired:
                cls.server.kill()
                cls.server.wait(5)

    @classmethod
    def server_log(cls) -> str:
        cls.log.flush()
        return (cls.work / "server.log").read_text(errors="replace")

    @classmethod
    def wait_until_up(cls, timeout: float = 60) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if cls.server.poll() is not None:
                raise AssertionError(f"the gateway exited ({cls.server.returncode}):\n{cls.server_log()}")
            try:
                with urllib.request.urlopen(f"{cls.url}/healthz", timeout=1) as answer:
                    if answer.status == 200:
                        return
            except OSError:
                pass
            time.sleep(0.1)
        raise AssertionError(f"the gateway did not answer /healthz in {timeout}s:\n{cls.server_log()}")

    def add_token(self, username: str, rate_limit: int) -> str:
        """`python3 tokens/manage_tokens.py add …`, the original command line."""
        result = subprocess.run(
            [sys.executable, str(ROOT / "tokens" / "manage_tokens.py"), "add", "--username", username,
             "--expiry", "2099-01-01 00:00:00", "--rate-limit", str(rate_limit), "--json"],
            env=self.env, cwd=self.work, capture_output=True, text=True, timeout=60,
        )
        self.assertEqual(result.returncode, 0, result.stderr)
        return json.loads(result.stdout)["token"]

    def chat(self, token: str | None) -> tuple[int, Message, dict[str, Any]]:
        """POST /v1/chat/completions: (status, headers (names in any case), JSON body)."""
        request = urllib.request.Request(
            f"{self.url}/v1/chat/completions", method="POST",
            data=json.dumps({"model": MODEL, "messages": [{"role": "user", "content": "Hi"}]}).encode(),
            headers={"Content-Type": "application/json",
                     **({"Authorization": f"Bearer {token}"} if token else {})},
        )
        try:
            with urllib.request.urlopen(request, timeout=30) as answer:
                return answer.status, answer.headers, json.loads(answer.read())
        except urllib.error.HTTPError as error:
            with error:
                return error.code, error.headers, json.loads(error.read())

    def test_a_chat_request_is_answered_by_the_provider(self) -> None:
        token = self.add_token("smoke-alice", rate_limit=10)
        status, headers, body = self.chat(token)
        self.assertEqual(status, 200, body)
        self.assertEqual(body["choices"][0]["message"]["content"], ANSWER)
        self.assertEqual(body["model"], MODEL)
        self.assertEqual(headers["x-ratelimit-remaining-requests"], "9")
        status, _, body = self.chat(None)
        self.assertEqual(status, 401, body)
        self.assertIn("message", body["error"])

    def test_the_daily_limit_refuses_the_third_request_of_a_limit_of_two(self) -> None:
        token = self.add_token("smoke-bob", rate_limit=2)
        calls = self.provider.calls
        first, second, third = (self.chat(token) for _ in range(3))
        self.assertEqual([first[0], second[0], third[0]], [200, 200, 429], third[2])
        self.assertEqual([first[1]["x-ratelimit-remaining-requests"], second[1]["x-ratelimit-remaining-requests"]],
                         ["1", "0"])
        self.assertIn("Retry-After", third[1])
        self.assertEqual(third[2]["error"]["type"], "rate_limit_exceeded")
        self.assertEqual(self.provider.calls - calls, 2)  # the refused request never reached the provider


if __name__ == "__main__":
    unittest.main()
