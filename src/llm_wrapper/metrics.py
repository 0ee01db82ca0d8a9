"""Prometheus metrics, correct with several worker processes.

With more than one worker, `llm-wrapper serve` points `PROMETHEUS_MULTIPROC_DIR`
at a fresh folder before the workers start; prometheus-client then keeps each
process's values in memory-mapped files there and `/metrics` adds them up
(its "multiprocess mode"). With one worker the ordinary registry is used.
With METRICS_PORT set, the API port has no `/metrics`; `serve_separately` serves
them on their own listener instead.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from typing import TypeVar

from prometheus_client import (
    CONTENT_TYPE_LATEST,
    REGISTRY,
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    generate_latest,
)

M = TypeVar("M", Counter, Gauge, Histogram)

MULTIPROC = bool(os.environ.get("PROMETHEUS_MULTIPROC_DIR"))

LATENCY_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120, 300)

REQUESTS = Counter(
    "llm_wrapper_requests_total", "Chat completion requests answered", ["model", "provider", "status"]
)
LATENCY = Histogram(
    "llm_wrapper_request_seconds", "Time to the last byte of the answer", ["provider"],
    buckets=LATENCY_BUCKETS,
)
TTFB = Histogram(
    "llm_wrapper_time_to_first_byte_seconds", "Time to the first streamed byte", ["provider"],
    buckets=LATENCY_BUCKETS,
)
UPSTREAM_ERRORS = Counter(
    "llm_wrapper_upstream_errors_total", "Provider failures by kind", ["provider", "kind"]
)
UPSTREAM_ATTEMPTS = Counter(
    "llm_wrapper_upstream_attempts_total", "Upstream calls by provider entry and outcome", ["provider", "outcome"]
)
FALLBACKS = Counter(
    "llm_wrapper_fallbacks_total", "Requests that went on to a fallback model", ["model", "fallback"]
)
COOLDOWNS = Counter("llm_wrapper_cooldowns_total", "Cooldowns started, by provider entry", ["provider"])
RATE_LIMITED = Counter("llm_wrapper_rate_limited_total", "Requests refused with 429")
STREAMS_IN_FLIGHT = Gauge(
    "llm_wrapper_streams_in_flight", "Streams being relayed now", multiprocess_mode="livesum"
)
WEBHOOKS = Counter("llm_wrapper_webhook_deliveries_total", "Monitor webhook deliveries", ["outcome"])
WEBHOOK_EVENTS_IGNORED = Counter(
    "llm_wrapper_webhook_events_ignored_total",
    "Monitor webhook deliveries acknowledged but not stored (unknown_monitor, inactive_monitor)", ["reason"],
)
ANALYTICS_LINES_LOST = Counter(
    "llm_wrapper_analytics_lines_lost_total", "Analytics log lines dropped because writing them failed"
)
CONNECTIONS_CUT = Counter(
    "llm_wrapper_connections_cut_total",
    "Connections closed for a request head over its bounds or a head or body sent too slowly",
    ["reason"],
)
ACTIVE_MONITORS = Gauge(  # counted by each process's monitor loop (at least every 30 s), not per scrape
    "llm_wrapper_active_monitors", "Active monitors in the store", multiprocess_mode="livemostrecent"
)


def children(metric: M) -> Callable[..., M]:
    """`metric.labels`, remembering each child: the hot path's label values come from a small
    fixed set (configured names, statuses), and `labels()` checks and locks on every call."""
    known: dict[tuple[str, ...], M] = {}

    def child(*values: str) -> M:
        found = known.get(values)
        if found is None:
            found = known[values] = metric.labels(*values)
        return found

    return child


def attempt_outcome(status: int) -> str:
    """The `outcome` label of one upstream call: a small fixed set, whatever the provider answers."""
    if status < 400:
        return "ok"
    if status == 429:
        return "rate_limited"
    return {502: "unreachable", 504: "timeout", 499: "client_closed"}.get(
        status, "server_error" if status >= 500 else "client_error"
    )


def error_kind(status: int) -> str:
    return {502: "unreachable", 504: "timeout", 499: "client_closed"}.get(
        status, "provider_error" if status >= 400 else "ok"
    )


def registry(multiproc: bool = MULTIPROC) -> CollectorRegistry:
    """What to expose: every worker's values in multiprocess mode, else this process's."""
    if not multiproc:
        return REGISTRY
    from prometheus_client import multiprocess

    combined = CollectorRegistry()
    multiprocess.MultiProcessCollector(combined)
    return combined


def render() -> tuple[bytes, str]:
    """The exposition text for every process of this server."""
    return generate_latest(registry()), CONTENT_TYPE_LATEST


def serve_separately(host: str, port: int) -> None:
    """METRICS_PORT: serve the metrics from a thread of this process on their own listener.

    `llm-wrapper serve` calls it in the process that runs uvicorn: with one worker that is
    the worker itself; with several it is their supervisor, which serves the values every
    worker keeps in PROMETHEUS_MULTIPROC_DIR (so it is decided here, not at import).
    Raises OSError when the address cannot be bound.
    """
    from prometheus_client import start_http_server

    start_http_server(port, addr=host, registry=registry(bool(os.environ.get("PROMETHEUS_MULTIPROC_DIR"))))
