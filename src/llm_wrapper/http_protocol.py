"""The HTTP/1.1 connection: uvicorn's httptools protocol, bounded before the app sees a request.

uvicorn's own protocol buffers a request head of any size and waits for ever on a client
that opens a connection and sends a partial head or body. This subclass bounds both:

- the head (request line and headers) may hold `MAX_HEADER_BYTES` bytes and
  `MAX_HEADER_COUNT` headers; past either the client gets 431 and the connection closes.
  Bytes are counted as they arrive, so a head that never ends is cut at the bound too;
- a connection has `HEADER_TIMEOUT_SECONDS` from its opening, or from the first byte of
  each later request, to deliver a complete head, and `BODY_TIMEOUT_SECONDS` from the end
  of the head to deliver the whole body. At either deadline the client gets 408 (when it
  sent part of a request that has no answer yet) and the connection closes. Time the
  server spends not reading (flow control, a pipelined request waiting its turn) does not
  count against the client;
- an idle keep-alive connection is closed by uvicorn's own `timeout_keep_alive`
  (`KEEPALIVE_TIMEOUT_SECONDS`).

Cost on the hot path: one addition per received chunk and one timer per request,
re-armed only when it fires early. It relies on uvicorn's internals; pyproject.toml pins
the versions it was written for and tests/test_http_bounds.py fails when they change.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass
from typing import ClassVar

import httptools
import orjson
from uvicorn.protocols.http.httptools_impl import STATUS_LINE, HttpToolsProtocol

from .errors import GatewayError, status_type
from .settings import Settings


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


_TOO_LARGE = (431, _error_json(
    431, "request_header_fields_too_large", "The request line and headers are larger than this server accepts."
))
_HEAD_TIMEOUT = (408, _error_json(408, "request_timeout", "The request headers did not arrive in time."))
_BODY_TIMEOUT = (408, _error_json(408, "request_timeout", "The request body did not arrive in time."))


class BoundedHttpToolsProtocol(HttpToolsProtocol):
    # uvicorn builds one protocol per connection from its Config, which has no room for
    # these: the app factory, which runs in every worker before it serves, sets them.
    limits: ClassVar[HttpLimits] = HttpLimits.from_settings(Settings())

    def __init__(self, *args, **kwargs) -> None:  # type: ignore[no-untyped-def]
        super().__init__(*args, **kwargs)
        limits = self.limits
        self._max_head_bytes = limits.max_header_bytes
        self._max_header_count = limits.max_header_count
        self._header_timeout = limits.header_timeout
        self._body_timeout = limits.body_timeout
        self._first_check = min(limits.header_timeout, limits.body_timeout)
        self._reading_head = True  # between requests, or inside a head
        self._head_bytes = 0  # bytes received since the current head began
        self._phase_start = 0.0  # when the current head or body began, on the loop's clock
        self._deadline: asyncio.TimerHandle | None = None

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        super().connection_made(transport)
        self._arm()

    def connection_lost(self, exc: Exception | None) -> None:
        self._disarm()
        super().connection_lost(exc)

    def data_received(self, data: bytes) -> None:
        # uvicorn's own, with the head counted and a refusal told apart from a parse error.
        self._unset_keepalive_if_required()
        if self._reading_head:
            if self._deadline is None:  # the first bytes after an idle keep-alive
                self._arm()
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
                self._disarm()
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
        self._phase_start = self.loop.time()
        super().on_headers_complete()

    def on_message_complete(self) -> None:
        self._disarm()
        self._reading_head = True
        self._head_bytes = 0
        super().on_message_complete()

    def _head_size(self) -> int:
        return len(self.url) + sum(len(name) + len(value) + 4 for name, value in self.headers)

    def _arm(self) -> None:
        self._phase_start = now = self.loop.time()
        self._deadline = self.loop.call_at(now + self._first_check, self._on_deadline)

    def _disarm(self) -> None:
        if self._deadline is not None:
            self._deadline.cancel()
            self._deadline = None

    def _on_deadline(self) -> None:
        self._deadline = None
        if self.transport.is_closing():
            return
        now = self.loop.time()
        answering = self.cycle is not None and not self.cycle.response_complete
        if self._reading_head:
            limit = self._header_timeout
            waiting_on_us = answering  # a pipelined head: its turn comes after this answer
        else:
            limit = self._body_timeout
            waiting_on_us = False
        if waiting_on_us or self.flow.read_paused:
            self._phase_start = now
        if now < self._phase_start + limit:
            self._deadline = self.loop.call_at(self._phase_start + limit, self._on_deadline)
            return
        if self._reading_head:
            if self._head_bytes:
                self._refuse(*_HEAD_TIMEOUT)
            else:
                self.transport.close()  # an idle connection: nothing to answer
        else:
            self._refuse(*_BODY_TIMEOUT)

    def _refuse(self, status: int, body: bytes) -> None:
        """Answer `status` unless an answer is already under way on this connection, and close."""
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
