"""A fake of Parallel: the V1 Monitor API calls the gateway uses, a minimal chat API, and webhook delivery.

- `POST /v1/monitors`, `POST /v1/monitors/{id}/cancel`, `GET /v1/monitors/{id}`,
  `GET /v1/monitors/{id}/events?event_group_id=…` (x-api-key checked; 404 for a
  monitor it did not create, as Parallel);
- `POST /chat/completions` (Bearer), answering "parallel says: <question>";
- `add_event(...)` puts one event into a monitor's event group;
- `cancel_failures = n` makes the next n cancels answer 503;
- `fail_events(n)` makes the next n event fetches answer 500 (`n=None`: until
  `fail_events(0)`);
- `deliver(url, payload, ...)` POSTs a Standard-Webhooks-signed webhook (signed
  with `standardwebhooks`, the reference library, using the raw-string key or
  the `whsec_` key) from the fake's own loop, as Parallel would.

Every request is recorded in `calls` as (method, path, query, json body).
"""

from __future__ import annotations

import base64
import itertools
import time
import uuid
from datetime import UTC, datetime
from typing import Any

import aiohttp
from aiohttp import web
from standardwebhooks import Webhook

from .server import ThreadedServer

API_KEY = "test-parallel-key"
SECRET = "parallel-webhook-secret-for-tests"


class FakeParallel:
    def __init__(self, api_key: str = API_KEY, secret: str = SECRET) -> None:
        self.api_key = api_key
        self.secret = secret
        self.calls: list[tuple[str, str, dict[str, str], Any]] = []
        self.monitors: dict[str, dict[str, Any]] = {}
        self.events: dict[tuple[str, str], list[dict[str, Any]]] = {}
        self.event_failures: int | None = 0  # None: fail until told otherwise
        self.cancel_failures = 0
        self._ids = itertools.count(1)
        app = web.Application()
        app.router.add_post("/v1/monitors", self.create)
        app.router.add_get("/v1/monitors/{monitor_id}", self.retrieve)
        app.router.add_post("/v1/monitors/{monitor_id}/cancel", self.cancel)
        app.router.add_get("/v1/monitors/{monitor_id}/events", self.list_events)
        app.router.add_post("/chat/completions", self.chat)
        self.server = ThreadedServer(app)
        self._stopped = False
        self.url = self.server.url

    def start(self) -> FakeParallel:
        self.server.start()
        return self

    def stop(self) -> None:
        """Stop serving (again: nothing), so a test can make Parallel unreachable."""
        if not self._stopped:
            self._stopped = True
            self.server.stop()

    # test controls -------------------------------------------------------------

    def fail_events(self, times: int | None) -> None:
        self.event_failures = times

    def add_event(
        self, monitor_id: str, event_group_id: str, text: str, urls: list[str], date: str = "2026-05-01"
    ) -> None:
        self.events.setdefault((monitor_id, event_group_id), []).append({
            "event_type": "event_stream",
            "event_id": f"mevt_{uuid.uuid4().hex[:12]}",
            "event_group_id": event_group_id,
            "event_date": date,
            "output": {
                "type": "text",
                "content": text,
                "basis": [{"field": "output", "reasoning": "seen", "citations": [{"url": u} for u in urls]}],
            },
        })

    def calls_to(self, method: str, path: str) -> list[tuple[str, str, dict[str, str], Any]]:
        return [c for c in self.calls if c[0] == method and c[1] == path]

    def signed_headers(
        self, body: bytes, *, webhook_id: str | None = None, timestamp: float | None = None, whsec: bool = False
    ) -> dict[str, str]:
        webhook_id = webhook_id or f"whevent_{uuid.uuid4().hex[:16]}"
        moment = datetime.fromtimestamp(time.time() if timestamp is None else timestamp, tz=UTC)
        signer = Webhook(self.secret) if whsec else Webhook(self.secret.encode())
        return {
            "webhook-id": webhook_id,
            "webhook-timestamp": str(int(moment.timestamp())),
            "webhook-signature": signer.sign(webhook_id, moment, body.decode()),
            "content-type": "application/json",
        }

    def deliver(self, url: str, body: bytes, headers: dict[str, str]) -> tuple[int, str]:
        """POST one webhook to the gateway from the fake's loop; (status, text)."""

        async def send() -> tuple[int, str]:
            async with aiohttp.ClientSession() as session, session.post(url, data=body, headers=headers) as response:
                return response.status, await response.text()

        return self.server.call(send())

    # the API -----------------------------------------------------------------

    def _record(self, request: web.Request, body: Any = None) -> None:
        self.calls.append((request.method, request.path, dict(request.query), body))

    def _authorised(self, request: web.Request) -> bool:
        return request.headers.get("x-api-key") == self.api_key

    @staticmethod
    def _error(status: int, message: str) -> web.Response:
        return web.json_response({"type": "error", "error": {"ref_id": "ref_1", "message": message}}, status=status)

    async def create(self, request: web.Request) -> web.Response:
        body = await request.json()
        self._record(request, body)
        if not self._authorised(request):
            return self._error(401, "Invalid API key")
        monitor_id = f"monitor_{next(self._ids):04d}{uuid.uuid4().hex[:8]}"
        monitor = {
            "monitor_id": monitor_id, "type": body["type"], "status": "active",
            "frequency": body["frequency"], "processor": "lite",
            "settings": {"query": body["settings"]["query"]},
            "webhook": body.get("webhook"), "created_at": datetime.now(UTC).isoformat(),
        }
        self.monitors[monitor_id] = monitor
        return web.json_response(monitor)

    async def retrieve(self, request: web.Request) -> web.Response:
        self._record(request)
        monitor = self.monitors.get(request.match_info["monitor_id"])
        return web.json_response(monitor) if monitor else self._error(404, "Monitor not found")

    async def cancel(self, request: web.Request) -> web.Response:
        self._record(request)
        if not self._authorised(request):
            return self._error(401, "Invalid API key")
        if self.cancel_failures > 0:
            self.cancel_failures -= 1
            return self._error(503, "Try again later")
        monitor = self.monitors.get(request.match_info["monitor_id"])
        if monitor is None:
            return self._error(404, "Monitor not found")
        monitor["status"] = "cancelled"
        return web.json_response(monitor)

    async def list_events(self, request: web.Request) -> web.Response:
        self._record(request)
        if not self._authorised(request):
            return self._error(401, "Invalid API key")
        if self.event_failures is None or self.event_failures > 0:
            if self.event_failures is not None:
                self.event_failures -= 1
            return self._error(500, "Internal error")
        if request.match_info["monitor_id"] not in self.monitors:
            return self._error(404, "Monitor not found")
        key = (request.match_info["monitor_id"], request.query.get("event_group_id", ""))
        return web.json_response({"events": self.events.get(key, []), "next_cursor": None})

    async def chat(self, request: web.Request) -> web.Response:
        body = await request.json()
        self._record(request, body)
        if request.headers.get("authorization") != f"Bearer {self.api_key}":
            return self._error(401, "Invalid API key")
        question = body["messages"][-1]["content"]
        # Parallel leaves id, model and finish_reason empty; the gateway fills them
        return web.json_response({
            "id": "", "object": "", "created": int(time.time()), "model": "",
            "choices": [{"index": 0, "message": {"role": "assistant", "content": f"parallel says: {question}"},
                         "finish_reason": None}],
        })


def whsec(secret_bytes: bytes) -> str:
    return "whsec_" + base64.b64encode(secret_bytes).decode()
