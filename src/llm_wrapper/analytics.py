"""The analytics log: one JSON object per request, appended to `LLM_WRAPPER_LOG_FILE`.

Lines are collected in memory and written together by `os.write` on an
`O_APPEND` descriptor (at most every `FLUSH_SECONDS`, or sooner when many are
waiting), so the event loop never waits on the disk for long and lines from
several worker processes never interleave. Records never hold a token or key.

The log never fails a request: lines that cannot be written (a full disk, an I/O
error) are dropped, counted in `llm_wrapper_analytics_lines_lost_total`, and said
once in a warning (again only after writing has worked in between). A string
from a client is bounded: past `MAX_STRING` characters it is cut, with a marker
saying how much was left out.
"""

from __future__ import annotations

import asyncio
import logging
import os
import time
from pathlib import Path
from typing import Any

import orjson

from . import metrics

log = logging.getLogger(__name__)

MAX_STRING = 256


class AnalyticsLog:
    FLUSH_SECONDS = 1.0
    FLUSH_LINES = 512

    def __init__(self, path: Path) -> None:
        self.path = path
        path.parent.mkdir(parents=True, exist_ok=True)
        self._fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o640)
        self._pending: list[bytes] = []
        self._timer: asyncio.TimerHandle | None = None
        self._failing = False  # the last write failed (and that was said once)
        self._torn = False  # a short write left half a line: end it before the next one
        self._second = 0  # the second `_second_text` shows: formatted once a second
        self._second_text = ""

    def record(self, **fields: Any) -> None:
        """Queue one line; never raises for a full disk or a field's value."""
        for key, value in fields.items():
            if type(value) is str:
                if len(value) > MAX_STRING:
                    fields[key] = bounded(value)
            elif isinstance(value, dict | list | tuple) and not _short(value):
                fields[key] = bounded(value)
        fields["time"] = self._iso_now()
        self._pending.append(orjson.dumps(fields, default=str) + b"\n")
        if len(self._pending) >= self.FLUSH_LINES:
            self.flush()
        elif self._timer is None:
            try:
                loop = asyncio.get_running_loop()
            except RuntimeError:
                self.flush()
                return
            self._timer = loop.call_later(self.FLUSH_SECONDS, self.flush)

    def flush(self) -> None:
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        if self._pending and self._fd >= 0:
            data, self._pending = b"".join(self._pending), []
            self._write(data)

    def close(self) -> None:
        self.flush()
        if self._fd >= 0:
            os.close(self._fd)
            self._fd = -1

    def _write(self, lines: bytes) -> None:
        prefix = b"\n" if self._torn else b""
        data, written = prefix + lines, 0
        try:
            while written < len(data):  # a short write means the disk is filling; the next one says so
                written += os.write(self._fd, data[written:])
        except OSError as exc:
            metrics.ANALYTICS_LINES_LOST.inc(data.count(b"\n", max(written, len(prefix))))
            if written:
                self._torn = data[written - 1:written] != b"\n"
            if not self._failing:
                self._failing = True
                log.warning("analytics log %s: cannot write (%s); dropping lines until it can",
                            self.path, exc.strerror or exc)
            return
        self._torn = False
        if self._failing:
            self._failing = False
            log.warning("analytics log %s: writing again", self.path)

    def _iso_now(self) -> str:
        """UTC time to the millisecond; the formatted seconds are reused within a second."""
        now = time.time()
        second = int(now)
        if second != self._second:
            self._second = second
            self._second_text = time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(second))
        return f"{self._second_text}.{int((now - second) * 1000):03d}Z"


def _short(value: dict[Any, Any] | list[Any] | tuple[Any, ...]) -> bool:
    """True if no string in `value` can be over MAX_STRING: its whole JSON is not (one call to
    orjson instead of a Python call per item; a usage object or an attempt list nearly always is)."""
    try:
        return len(orjson.dumps(value)) <= MAX_STRING
    except TypeError:
        return False


def bounded(value: Any) -> Any:
    """`value` with every string in it (in lists and dicts too) cut to MAX_STRING characters."""
    if isinstance(value, str):
        if len(value) <= MAX_STRING:
            return value
        return f"{value[:MAX_STRING]}…(+{len(value) - MAX_STRING} chars)"
    if isinstance(value, dict):
        return {bounded(key): bounded(item) for key, item in value.items()}
    if isinstance(value, list | tuple):
        return [bounded(item) for item in value]
    return value
