"""The analytics log: one JSON object per request, appended to `LLM_WRAPPER_LOG_FILE`.

Lines are collected in memory and written together by `os.write` on an
`O_APPEND` descriptor (at most every `FLUSH_SECONDS`, or sooner when many are
waiting), so the event loop never waits on the disk for long and lines from
several worker processes never interleave. Records never hold a token or key.
"""

from __future__ import annotations

import asyncio
import os
import time
from pathlib import Path
from typing import Any

import orjson


class AnalyticsLog:
    FLUSH_SECONDS = 1.0
    FLUSH_LINES = 512

    def __init__(self, path: Path) -> None:
        self.path = path
        path.parent.mkdir(parents=True, exist_ok=True)
        self._fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o640)
        self._pending: list[bytes] = []
        self._timer: asyncio.TimerHandle | None = None

    def record(self, **fields: Any) -> None:
        fields["time"] = _iso_now()
        self._pending.append(orjson.dumps(fields) + b"\n")
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
            os.write(self._fd, data)

    def close(self) -> None:
        self.flush()
        if self._fd >= 0:
            os.close(self._fd)
            self._fd = -1


_last_second = 0
_last_text = ""


def _iso_now() -> str:
    """UTC time to the millisecond; the formatted seconds are reused within a second."""
    global _last_second, _last_text
    now = time.time()
    second = int(now)
    if second != _last_second:
        _last_second = second
        _last_text = time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(second))
    return f"{_last_text}.{int((now - second) * 1000):03d}Z"
