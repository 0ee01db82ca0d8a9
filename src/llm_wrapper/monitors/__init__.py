"""Parallel monitors: lifecycle, webhook ingestion, event fetching, the `speed` update answer, the sweep.

    records.py   Monitor, EventGroup, cadence/frequency rules (no I/O)
    remote.py    Parallel's V1 Monitor API through the `parallel-web` SDK
    signing.py   Standard Webhooks signature checks (both secret forms)
    service.py   MonitorService: create/list/deactivate, ingest, fetch, sweep
    worker.py    the background loop the server runs (fetches, periodic sweep)
    speed.py     the `speed` answerer for "any updates?" questions

The store imports `records` while it is itself being imported, so the heavier
names here are loaded on first use.
"""

from __future__ import annotations

from typing import Any

from .records import CADENCES, EVENT_TYPES, EventGroup, Monitor, cadence_of, parse_frequency

__all__ = [
    "CADENCES",
    "EVENT_TYPES",
    "EventGroup",
    "Monitor",
    "MonitorService",
    "SpeedUpdates",
    "cadence_of",
    "parse_frequency",
]


def __getattr__(name: str) -> Any:
    if name == "MonitorService":
        from .service import MonitorService

        return MonitorService
    if name == "SpeedUpdates":
        from .speed import SpeedUpdates

        return SpeedUpdates
    raise AttributeError(name)
