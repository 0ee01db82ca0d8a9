"""The HTTP/1.1 connection: uvicorn's httptools protocol, bounded before the app sees a request.

uvicorn's own protocol buffers a request head of any size and waits for ever on a client
that opens a connection and sends nothing, or a partial head or body. This subclass bounds:

- the head (request line and headers): at most `MAX_HEADER_BYTES` bytes and
  `MAX_HEADER_COUNT` headers, else 431 and the connection closes. Bytes are counted as
  they arrive, so a head that never ends is cut at the bound too;
- time: a connection with no request under way is closed after `KEEPALIVE_TIMEOUT_SECONDS`
  (uvicorn's `timeout_keep_alive`), a new one included; a head must be complete
  `HEADER_TIMEOUT_SECONDS` after its first byte, and the body `BODY_TIMEOUT_SECONDS` after
  the end of the head, else 408 (when the request has no answer yet) and the connection
  closes. Time the server spends not reading (flow control, a pipelined request waiting
  its turn) does not count against the client.

Deadlines are checked by one timer per event loop (`_Sweep`), a few times a second: a
timer per request costs more than parsing the request (about 4 µs to arm and cancel with
uvloop), so each request only notes the loop's clock at its phase changes, and idle
keep-alive moves onto the same sweep instead of uvicorn's timer per request.

It relies on uvicorn's internals; pyproject.toml pins the versions it was written for and
tests/test_http_bounds.py fails when the methods it re-implements change.
"""

from __future__ import annotations

import asyncio
import logging
import weakref
from dataclasses import dataclass
from typing import Any, ClassVar

import httptools
import orjson
from uvicorn.protocols.http.httptools_impl import STATUS_LINE, HttpToolsProtocol

from .errors import GatewayError, status_type
from .metrics import CONNECTIONS_CUT
from .settings import Settings

log = logging.getLogger("llm_wrapper")


@dataclass(frozen=True)
class HttpLimits:
    max_header_bytes: int
    max_header_count: int
    header_timeout: float
    body_timeout: float

    @classmethod
    def from_settings(cls, settings: Settings) -> HttpLimits:
        return cls(
            max_header_bytes=settings.max_header_bytes,
            max_header_count=settings.max_header_count,
            header_timeout=settings.header_timeout_seconds,
            body_timeout=settings.body_timeout_seconds,
        )


class _HeadTooLarge(Exception):
    """Raised from a parser callback to stop parsing a head past the bounds."""


def _error_json(status: int, code: str, message: str) -> bytes:
    return orjson.dumps(GatewayError(message, status=status, type=status_type(status), code=code).body())


_TOO_LARGE = ("header_too_large", 431, _error_json(
    431, "request_header_fields_too_large", "The request line and headers are larger than this server accepts."
))
_HEAD_TIMEOUT = ("header_timeout", 408, _error_json(
    408, "request_timeout", "The request headers did not arrive in time."
))
_BODY_TIMEOUT = ("body_timeout", 408, _error_json(408, "request_timeout", "The request body did not arrive in time."))


class _Sweep:
    """The one timer of an event loop that closes its connections past their deadline."""

    def __init__(self, loop: asyncio.AbstractEventLoop, interval: float) -> None:
        self.loop = loop
        self.interval = interval
        self.connections: set[BoundedHttpToolsProtocol] = set()
        self._timer: asyncio.TimerHandle | None = None

    def add(self, connection: BoundedHttpToolsProtocol) -> None:
        self.connections.add(connection)
        if self._timer is None:
            self._timer = self.loop.call_later(self.interval, self._run)

    def _run(self) -> None:
        now = self.loop.time()
        due = [c for c in self.connections if 0 < c._deadline <= now]
        self._timer = self.loop.call_later(self.interval, self._run) if self.connections else None
        for connection in due:
            try:
                connection._on_deadline(now)
            except Exception:  # one broken connection must not stop the sweep for the others
                log.exception("closing a connection at its deadline failed")
                connection.transport.abort()


_sweeps: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, _Sweep] = weakref.WeakKeyDictionary()


class BoundedHttpToolsProtocol(HttpToolsProtocol):
    # uvicorn builds one protocol per connection from its Config, which has no room for
    # these: the app factory, which runs in every worker before it serves, sets them.
    limits: ClassVar[HttpLimits] = HttpLimits.from_settings(Settings.model_validate({}))

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        limits = self.limits
        self._max_head_bytes = limits.max_header_bytes
        self._max_header_count = limits.max_header_count
        self._header_timeout = limits.header_timeout
        self._body_timeout = limits.body_timeout
        self._reading_head = True  # between requests, or inside a head
        self._head_bytes = 0  # bytes received since the current head began
        self._deadline = 0.0  # on the loop's clock; 0 while the app has the request
        sweep = _sweeps.get(self.loop)
        if sweep is None:
            shortest = min(limits.header_timeout, limits.body_timeout, self.timeout_keep_alive)
            sweep = _sweeps[self.loop] = _Sweep(self.loop, min(1.0, shortest / 4))
        self._sweep = sweep

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        super().connection_made(transport)
        self._deadline = self.loop.time() + self.timeout_keep_alive
        self._sweep.add(self)

    def connection_lost(self, exc: Exception | None) -> None:
        self._sweep.connections.discard(self)
        super().connection_lost(exc)

    def data_received(self, data: bytes) -> None:
        # uvicorn's own, with the head counted and a refusal told apart from a parse error;
        # uvicorn's keep-alive timer is never armed (see on_response_complete).
        if self._reading_head:
            if not self._head_bytes:
                self._deadline = self.loop.time() + self._header_timeout
            self._head_bytes += len(data)
        try:
            self.parser.feed_data(data)
        except httptools.HttpParserError as exc:
            if isinstance(exc.__context__, _HeadTooLarge):
                self._refuse(*_TOO_LARGE)
                return
            msg = "Invalid HTTP request received."
            self.logger.warning(msg)
            self.send_400_response(msg)
            return
        except httptools.HttpParserUpgrade:
            if self._should_upgrade():
                self._sweep.connections.discard(self)
                self.handle_websocket_upgrade()
            else:
                self._unsupported_upgrade_warning()
            return
        if self._reading_head and self._head_bytes > self._max_head_bytes:
            self._refuse(*_TOO_LARGE)

    def on_header(self, name: bytes, value: bytes) -> None:
        if len(self.headers) >= self._max_header_count:
            raise _HeadTooLarge
        super().on_header(name, value)

    def on_headers_complete(self) -> None:
        # A head that arrived in one chunk with part of the body is over the count above
        # only with that body; measure the head itself then (rare: large chunks only).
        if self._head_bytes > self._max_head_bytes and self._head_size() > self._max_head_bytes:
            raise _HeadTooLarge
        self._reading_head = False
        self._deadline = self.loop.time() + self._body_timeout
        super().on_headers_complete()

    def on_message_complete(self) -> None:
        self._reading_head = True
        self._head_bytes = 0
        self._deadline = 0.0
        super().on_message_complete()

    def on_response_complete(self) -> None:
        # uvicorn's own, with idle keep-alive on the sweep instead of a timer per request.
        self.server_state.total_requests += 1
        if self.transport.is_closing():
            return
        self.flow.resume_reading()
        if self.pipeline:
            cycle, app = self.pipeline.pop()
            self._start_asgi_task(cycle, app)
        elif self._reading_head and not self._head_bytes:  # else a head or body is under way
            self._deadline = self.loop.time() + self.timeout_keep_alive

    def _head_size(self) -> int:
        return len(self.url) + sum(len(name) + len(value) + 4 for name, value in self.headers)

    def _on_deadline(self, now: float) -> None:
        self._deadline = 0.0
        if self.transport.is_closing():
            return
        answering = self.cycle is not None and not self.cycle.response_complete
        if self.flow.read_paused or (self._reading_head and answering):
            # We are not reading, or a pipelined head waits its turn: not the client's delay.
            self._deadline = now + (self._header_timeout if self._reading_head else self._body_timeout)
        elif not self._reading_head:
            self._refuse(*_BODY_TIMEOUT)
        elif self._head_bytes:
            self._refuse(*_HEAD_TIMEOUT)
        else:
            self.transport.close()  # idle: nothing to answer

    def _refuse(self, reason: str, status: int, body: bytes) -> None:
        """Answer `status` unless an answer is already under way on this connection, and close."""
        CONNECTIONS_CUT.labels(reason).inc()
        cycle = self.cycle
        if self._reading_head:
            can_answer = cycle is None or cycle.response_complete
        else:
            can_answer = not cycle.response_started
            cycle.disconnected = True  # the app's own answer, if it comes, goes nowhere
        if can_answer:
            head = [STATUS_LINE[status]]
            for name, value in self.server_state.default_headers:
                head += [name, b": ", value, b"\r\n"]
            head.append(b"content-type: application/json\r\ncontent-length: %d\r\nconnection: close\r\n\r\n" % len(body))
            self.transport.write(b"".join(head) + body)
        self.transport.close()
