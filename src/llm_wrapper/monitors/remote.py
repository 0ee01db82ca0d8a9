"""Parallel's V1 Monitor API through the `parallel-web` SDK, its failures turned into gateway errors.

    create  POST /v1/monitors                                   (type event_stream)
    cancel  POST /v1/monitors/{id}/cancel                       (irreversible, idempotent)
    events  GET  /v1/monitors/{id}/events?event_group_id=…      (one run's detections)

The SDK's own retries are off: creating is answered to a waiting caller at
once, and cancels and event fetches are retried durably by the service.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import parallel
from parallel import AsyncParallel

from ..errors import UpstreamError, UpstreamUnreachable
from ..upstream import upstream_failures

TIMEOUT_SECONDS = 30.0
KEY_MISSING = "Monitors need a Parallel API key: set PARALLELAI_API_KEY."


@contextmanager
def parallel_failures() -> Iterator[None]:
    """The SDK's exceptions as the gateway errors a client should see (the one transport mapping)."""
    try:
        with upstream_failures(
            "Parallel", timeouts=(parallel.APITimeoutError,), broken_by=(parallel.APIConnectionError,)
        ):
            yield
    except parallel.APIStatusError as exc:
        raise UpstreamError.from_body("Parallel", exc.status_code, exc.body) from None
    except parallel.ParallelError as exc:
        raise UpstreamUnreachable(f"Parallel answered garbage ({type(exc).__name__}).") from None


class ParallelMonitors:
    """One pooled async SDK client; create it with the key, close it at shutdown."""

    def __init__(self, api_key: str, base_url: str, timeout: float = TIMEOUT_SECONDS) -> None:
        self.client = AsyncParallel(api_key=api_key, base_url=base_url, max_retries=0, timeout=timeout)

    async def close(self) -> None:
        await self.client.close()

    async def create(self, query: str, frequency: str, webhook_url: str, event_types: list[str]) -> dict[str, Any]:
        """Create an event-stream monitor; returns Parallel's monitor as a dict."""
        with parallel_failures():
            made = await self.client.monitor.create(
                type="event_stream",
                frequency=frequency,
                settings={"query": query},
                webhook={"url": webhook_url, "event_types": event_types},  # type: ignore[arg-type]
            )
        return made.model_dump(mode="json")

    async def cancel(self, monitor_id: str) -> str:
        """Cancel at Parallel; returns the status Parallel reports (normally `cancelled`)."""
        try:
            with parallel_failures():
                cancelled = await self.client.monitor.cancel(monitor_id)
        except UpstreamError as error:
            if error.status == 404:
                return "unknown"  # nothing left to stop there
            raise
        return cancelled.status

    async def events(self, monitor_id: str, event_group_id: str) -> list[dict[str, Any]]:
        """The detections of one run, each as {event_id, event_date, text | json, source_urls}."""
        with parallel_failures():
            page = await self.client.monitor.events(monitor_id, event_group_id=event_group_id)
        return [event for raw in page.events if (event := _event(raw.model_dump(mode="json")))]


def _event(raw: dict[str, Any]) -> dict[str, Any] | None:
    """An event-stream or snapshot event in the stored shape; completions and errors are skipped."""
    if "output" in raw and isinstance(raw["output"], dict):
        output = raw["output"]
    elif "changed_output" in raw and isinstance(raw["changed_output"], dict):
        output = raw["changed_output"]
    else:
        return None
    event: dict[str, Any] = {"event_id": raw.get("event_id"), "event_date": raw.get("event_date")}
    if output.get("type") == "json":
        event["json"] = output.get("content")
    else:
        event["text"] = str(output.get("content") or "")
    urls: list[str] = []
    for basis in output.get("basis") or ():
        for citation in (basis or {}).get("citations") or ():
            url = (citation or {}).get("url")
            if url and url not in urls:
                urls.append(url)
    event["source_urls"] = urls
    return event
