"""Each deployment's health over the last hour in this process, for `GET /v1/admin/providers`.

A ring of 60 per-minute buckets (requests, errors, and up to `SAMPLES` latencies
each, kept in preallocated lists): recording one upstream attempt is O(1) and
allocates nothing once a bucket's list has grown; a bucket older than an hour is
reset when its slot comes round again. Percentiles are computed only when asked.

In memory, per process: with several workers or instances each one counts the
attempts it made itself (the README says so).
"""

from __future__ import annotations

import time
from collections.abc import Callable

MINUTES = 60  # the window
SAMPLES = 64  # latencies kept per minute (the first ones of that minute; enough for p95 at a glance)


class Health:
    """One deployment's last hour: request and error counts and latency samples per minute."""

    __slots__ = ("_errors", "_latencies", "_minutes", "_requests", "clock")

    def __init__(self, clock: Callable[[], float] = time.time) -> None:
        self.clock = clock
        self._minutes = [-1] * MINUTES  # which minute (since the epoch) each slot holds
        self._requests = [0] * MINUTES
        self._errors = [0] * MINUTES
        self._latencies: list[list[float]] = [[] for _ in range(MINUTES)]

    def record(self, ms: float, error: bool) -> None:
        """One upstream attempt that took `ms` milliseconds (to its first byte or whole answer)."""
        minute = int(self.clock() // 60)
        slot = minute % MINUTES
        if self._minutes[slot] != minute:
            self._minutes[slot] = minute
            self._requests[slot] = self._errors[slot] = 0
            self._latencies[slot].clear()
        self._requests[slot] += 1
        if error:
            self._errors[slot] += 1
        samples = self._latencies[slot]
        if len(samples) < SAMPLES:
            samples.append(ms)

    def summary(self) -> dict[str, float | int | None]:
        """requests, errors, error_rate (0..1), p50_ms and p95_ms over the last hour (None with no samples)."""
        first = int(self.clock() // 60) - MINUTES + 1
        requests = errors = 0
        latencies: list[float] = []
        for slot in range(MINUTES):
            if self._minutes[slot] >= first:
                requests += self._requests[slot]
                errors += self._errors[slot]
                latencies.extend(self._latencies[slot])
        latencies.sort()
        return {
            "requests": requests,
            "errors": errors,
            "error_rate": round(errors / requests, 4) if requests else 0.0,
            "p50_ms": percentile(latencies, 50),
            "p95_ms": percentile(latencies, 95),
        }


def percentile(ordered: list[float], p: int) -> float | None:
    """The nearest-rank percentile of sorted values, or None for none."""
    if not ordered:
        return None
    rank = max(1, -(-len(ordered) * p // 100))  # ceil(n * p / 100)
    return round(ordered[rank - 1], 2)
