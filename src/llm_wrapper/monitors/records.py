"""What the monitor feature stores: monitors, event groups, and the frequency rules.

Nothing here touches the network or the database, so the store can build these
records without importing the service.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from ..errors import InvalidRequest

EVENT_DETECTED = "monitor.event.detected"
EXECUTION_COMPLETED = "monitor.execution.completed"
EXECUTION_FAILED = "monitor.execution.failed"
EVENT_TYPES = (EVENT_DETECTED, EXECUTION_COMPLETED, EXECUTION_FAILED)

CADENCES = {"hourly": "1h", "daily": "1d", "weekly": "1w", "every_two_weeks": "2w"}
_FREQUENCY = re.compile(r"^([1-9][0-9]*)([hdw])$")
_HOURS = {"h": 1, "d": 24, "w": 168}
MAX_HOURS = 30 * 24  # Parallel accepts 1h to 30d inclusive
# Parallel's ids look like `monitor_…`, `mevtgrp_…`, `whevent_…`: short and URL-safe. Anything else
# is refused before it is stored or put into a URL.
_ID = re.compile(r"[A-Za-z0-9_.:-]{1,128}")


def check_id(value: object, param: str) -> str:
    """`value` if it is a plausible Parallel id (1–128 of `A-Za-z0-9_.:-`); InvalidRequest (400) if not."""
    if not isinstance(value, str) or not _ID.fullmatch(value):
        raise InvalidRequest(
            f"'{param}' must be 1 to 128 letters, digits or `_.:-` characters.", param=param
        )
    return value


def parse_frequency(value: str) -> str:
    """`hourly|daily|weekly|every_two_weeks` or `<n>h|d|w` (1h–30d) as Parallel's frequency.

    Raises ValueError with a message fit for the user.
    """
    text = (value or "").strip().lower().replace("-", "_")
    if text in CADENCES:
        return CADENCES[text]
    match = _FREQUENCY.match(text)
    if match and int(match.group(1)) * _HOURS[match.group(2)] <= MAX_HOURS:
        return text
    raise ValueError(
        f"cadence must be hourly, daily, weekly, every_two_weeks or a frequency "
        f"such as 6h, 2d or 1w between 1h and 30d (got {value!r})"
    )


def cadence_of(frequency: str) -> str:
    """The cadence word for a frequency when there is one, else the frequency itself."""
    for word, freq in CADENCES.items():
        if freq == frequency:
            return word
    return frequency


@dataclass(slots=True)
class Monitor:
    """A monitor as stored here; `active` means not deactivated locally."""

    monitor_id: str
    username: str
    query: str
    frequency: str
    created_at: datetime
    deactivated_at: datetime | None = None
    remote_state: str = "active"  # Parallel's status as last seen: active or cancelled
    cancel_pending: bool = False  # deactivated here, Parallel not yet told
    cancel_attempts: int = 0
    last_error: str | None = None
    last_run_at: datetime | None = None
    last_run_status: str | None = None  # detected, completed or failed (from webhooks)

    @property
    def active(self) -> bool:
        return self.deactivated_at is None

    def to_json(self) -> dict[str, Any]:
        return {
            "monitor_id": self.monitor_id,
            "username": self.username,
            "query": self.query,
            "frequency": self.frequency,
            "cadence": cadence_of(self.frequency),
            "created_at": iso(self.created_at),
            "active": self.active,
            "deactivated_at": iso(self.deactivated_at),
            "remote_state": self.remote_state,
            "cancel_pending": self.cancel_pending,
            "last_error": self.last_error,
            "last_run_at": iso(self.last_run_at),
            "last_run_status": self.last_run_status,
        }


@dataclass(slots=True)
class EventGroup:
    """One run's detections, announced by a webhook and fetched from Parallel afterwards.

    `events` holds, per event: `event_id`, `event_date`, `text` (text output) or
    `json` (structured output), and `source_urls`.
    """

    id: int
    monitor_id: str
    event_group_id: str
    webhook_id: str | None
    received_at: datetime
    fetch_state: str = "pending"  # pending, fetched or failed
    fetch_attempts: int = 0
    next_attempt_at: datetime | None = None
    last_error: str | None = None
    fetched_at: datetime | None = None
    events: list[dict[str, Any]] = field(default_factory=list)
    event_date: str | None = None
    source_urls: list[str] = field(default_factory=list)
    processed_at: datetime | None = None


def iso(moment: datetime | None) -> str | None:
    return moment.isoformat().replace("+00:00", "Z") if moment else None


def group_summary(events: list[dict[str, Any]]) -> tuple[str | None, list[str]]:
    """An event group's latest event date and its source URLs (each once, in order)."""
    dates = sorted(e["event_date"] for e in events if e.get("event_date"))
    urls = list(dict.fromkeys(u for e in events for u in e.get("source_urls") or ()))
    return (dates[-1] if dates else None), urls
