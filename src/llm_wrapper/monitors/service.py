"""MonitorService: the monitor lifecycle, webhook ingestion, event fetching and the expiry sweep.

Contracts other modules rely on:

- `create(username, query, frequency_or_cadence, webhook_url=None, event_types=None)`
  -> (Monitor, replaced_id | None). One active monitor a user: the previous one is
  deactivated here and cancelled at Parallel; a cancel that fails is kept pending
  and retried by `sweep`, never dropped.
- `list(username=None)`, `deactivate(monitor_id, username=None)` (another user's
  monitor is NotFound), `active_monitor(username)`, `waiting_updates(username)`.
- `ingest(headers, body)`: a webhook delivery, verified and stored once; its
  content is fetched later by `process_pending`. Deliveries for monitors not
  stored here (or, for detections, no longer active) are acknowledged and
  dropped, so a forged delivery never makes the gateway call Parallel.
- `process_pending(now=None)` (one round of fetches) and `sweep(now=None)` run
  once and return a report (burst mode), so tests and commands need no waiting;
  `worker.run` repeats them.

Raises GatewayErrors: InvalidRequest (400), NotFound (404), AuthenticationFailed
(401, bad signature), ServiceUnavailable (503, no Parallel key), and Parallel's
failures as mapped in `remote.py` (502 unreachable, 504, or Parallel's status).
"""

from __future__ import annotations

import asyncio
import builtins
import logging
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Any

import orjson

from .. import redaction
from ..errors import (
    AuthenticationFailed,
    GatewayError,
    InvalidRequest,
    NotFound,
    ServiceUnavailable,
    UpstreamError,
    clip,
)
from ..metrics import WEBHOOK_EVENTS_IGNORED
from ..store.base import StoreUnavailable
from ..store.database import check_text
from ..tokens import utc_now
from . import signing
from .records import (
    EVENT_DETECTED,
    EVENT_TYPES,
    EXECUTION_FAILED,
    EventGroup,
    Monitor,
    check_id,
    parse_frequency,
)
from .remote import KEY_MISSING, ParallelMonitors

if TYPE_CHECKING:
    from ..settings import Settings
    from ..store import Store

log = logging.getLogger(__name__)

LEASE = timedelta(seconds=120)  # longer than one Parallel call may take
MAX_BACKOFF_SECONDS = 3600.0
BATCH = 50
FINAL_STATUSES = (400, 404, 422)  # Parallel does not know this monitor or event group: no use retrying


@dataclass
class SweepReport:
    deactivated: list[str] = field(default_factory=list)
    cancelled: list[str] = field(default_factory=list)
    cancel_failed: dict[str, str] = field(default_factory=dict)


@dataclass
class FetchReport:
    fetched: list[str] = field(default_factory=list)
    retrying: dict[str, str] = field(default_factory=dict)
    failed: dict[str, str] = field(default_factory=dict)


class MonitorService:
    def __init__(self, settings: Settings, store: Store, *, clock: Callable[[], datetime] = utc_now) -> None:
        self.settings = settings
        self.store = store
        self.clock = clock
        self.wake = asyncio.Event()  # set when there is new work for the background loop
        self._remote: ParallelMonitors | None = None

    def remote(self) -> ParallelMonitors:
        """The Parallel client; ServiceUnavailable (503, names PARALLELAI_API_KEY) without a key."""
        if self._remote is None:
            key = self.settings.parallel_key
            if not key:
                raise ServiceUnavailable(KEY_MISSING, code="parallel_key_missing")
            self._remote = ParallelMonitors(key, self.settings.parallel_base_url)
        return self._remote

    async def close(self) -> None:
        if self._remote is not None:
            await self._remote.close()
            self._remote = None

    # lifecycle ---------------------------------------------------------------

    async def create(
        self,
        username: str,
        query: str,
        frequency_or_cadence: str,
        webhook_url: str | None = None,
        event_types: builtins.list[str] | None = None,
    ) -> tuple[Monitor, str | None]:
        username, query = (username or "").strip(), (query or "").strip()
        if not username:
            raise InvalidRequest("A username is required.", param="username")
        if not query:
            raise InvalidRequest("'query' is required and must not be empty.", param="query")
        check_text(username, "username")  # before Parallel is called: a refused monitor must not exist there
        check_text(query, "query")
        try:
            frequency = parse_frequency(frequency_or_cadence)
        except ValueError as exc:
            raise InvalidRequest(f"Invalid cadence: {exc}.", param="cadence") from None
        types = list(dict.fromkeys(event_types or [EVENT_DETECTED]))
        unknown = [t for t in types if t not in EVENT_TYPES]
        if unknown:
            raise InvalidRequest(
                f"Unknown event type {unknown[0]!r}; use {', '.join(EVENT_TYPES)}.", param="event_types"
            )
        remote = self.remote()
        made = await remote.create(query, frequency, webhook_url or self.settings.monitor_webhook_url, types)
        monitor = Monitor(
            monitor_id=str(made["monitor_id"]), username=username, query=query,
            frequency=str(made.get("frequency") or frequency), created_at=self.clock(),
            remote_state=str(made.get("status") or "active"),
        )
        try:
            replaced = await self.store.insert_monitor(monitor)
        except BaseException:
            await self._try_cancel(monitor)  # not recorded here, so do not leave it running there
            raise
        for old in replaced:
            await self._try_cancel(old)
        return monitor, (replaced[0].monitor_id if replaced else None)

    async def list(self, username: str | None = None) -> builtins.list[Monitor]:
        return await self.store.list_monitors(username)

    async def get(self, monitor_id: str, username: str | None = None) -> Monitor:
        monitor = await self.store.get_monitor(monitor_id)
        if monitor is None or (username is not None and monitor.username != username):
            raise NotFound(f"No monitor {monitor_id!r}.", param="monitor_id", code="monitor_not_found")
        return monitor

    async def deactivate(self, monitor_id: str, username: str | None = None) -> Monitor:
        """Deactivate here, then cancel at Parallel (retried by the sweep if that fails)."""
        await self.get(monitor_id, username)
        monitor = await self.store.deactivate_monitor(monitor_id, self.clock())
        assert monitor is not None
        if monitor.cancel_pending:
            await self._try_cancel(monitor)
        return await self.get(monitor_id)

    async def active_monitor(self, username: str) -> Monitor | None:
        return next((m for m in await self.store.list_monitors(username) if m.active), None)

    async def waiting_updates(self, username: str) -> int:
        """Event groups fetched and not yet delivered to the user (what `speed` would answer now)."""
        return await self.store.count_updates(username)

    # webhooks ------------------------------------------------------------------

    async def ingest(self, headers: Mapping[str, str], body: bytes) -> dict[str, Any]:
        """Verify (when a secret is set), parse and store one delivery; nothing is stored on error.

        `monitor.event.detected` is stored as an event group to fetch; `completed` and
        `failed` only update the monitor's last run; other types are acknowledged. Ids
        that are not short and URL-safe are refused (400); a delivery for a monitor not
        stored here, or a detection for an inactive one, is acknowledged, counted in
        `llm_wrapper_webhook_events_ignored_total` and dropped (`"ignored": reason`).
        """
        secret = self.settings.parallel_webhook_secret
        webhook_id = headers.get("webhook-id") or None
        if secret is not None and secret.get_secret_value():
            try:
                webhook_id = signing.verify(secret.get_secret_value(), headers, body)
            except signing.BadSignature as exc:
                raise AuthenticationFailed(f"Webhook signature refused: {exc}.", code="invalid_signature") from None
        if webhook_id is not None:
            check_id(webhook_id, "webhook-id")
        kind, monitor_id, event = parse_delivery(body)
        if kind not in EVENT_TYPES:
            return {"received": True, "stored": False, "duplicate": False}
        group_id = None
        if kind == EVENT_DETECTED:
            group_id = event.get("event_group_id")
            if not isinstance(group_id, str) or not group_id:
                raise InvalidRequest("data.event.event_group_id is required for monitor.event.detected.")
            check_id(group_id, "data.event.event_group_id")
        monitor = await self.store.get_monitor(monitor_id)
        if monitor is None or (group_id is not None and not monitor.active):
            # answered 2xx so that Parallel stops retrying; a forged delivery costs one lookup, no call out
            reason = "unknown_monitor" if monitor is None else "inactive_monitor"
            WEBHOOK_EVENTS_IGNORED.labels(reason).inc()
            return {"received": True, "stored": False, "duplicate": False, "ignored": reason}
        now = self.clock()
        if group_id is not None:
            stored = await self.store.add_event_group(
                monitor_id=monitor_id, event_group_id=group_id, webhook_id=webhook_id, received_at=now
            )
            await self.store.record_run(monitor_id, "detected", now, None)
            if stored:
                self.wake.set()
            return {"received": True, "stored": stored, "duplicate": not stored}
        error = None
        if kind == EXECUTION_FAILED:
            error = clip(str(event.get("error") or event.get("error_message") or "failed"), 500)
        await self.store.record_run(monitor_id, kind.rsplit(".", 1)[1], now, error)
        return {"received": True, "stored": False, "duplicate": False}

    async def process_pending(self, now: datetime | None = None) -> FetchReport:
        """One round: claim the due event groups (at most one a monitor, at most
        MONITOR_FETCHES_PER_ROUND in all) and fetch each once.

        A failure of any kind is recorded on its group (retried with backoff, given up after
        MONITOR_FETCH_MAX_ATTEMPTS, or at once when Parallel does not know the group) and
        never stops the others; only a database outage ends the round early.
        """
        report = FetchReport()
        moment = now or self.clock()
        limit = max(1, self.settings.monitor_fetches_per_round)
        for group in await self.store.claim_fetches(moment, moment + LEASE, limit):
            try:
                await self._fetch(group, moment, report)
            except (asyncio.CancelledError, StoreUnavailable):
                raise
            except Exception:  # a bug must cost one group, not the round
                log.exception("fetching event group %s failed unexpectedly", _label(group))
        return report

    async def _fetch(self, group: EventGroup, moment: datetime, report: FetchReport) -> None:
        label = _label(group)
        try:
            events = await self.remote().events(group.monitor_id, group.event_group_id)
            if not events:
                raise GatewayError("Parallel returned no events for this event group yet.")
        except asyncio.CancelledError:  # shutting down: hand the claim back at once
            await asyncio.shield(self.store.finish_fetch(group.id, now=moment, error="interrupted", retry_at=moment))
            raise
        except Exception as exc:  # anything at all: an id Parallel's client refuses raises httpx errors
            if isinstance(exc, GatewayError):
                message = exc.message
            else:
                message = redaction.scrub(f"{type(exc).__name__}: {clip(str(exc), 300)}")
            final = isinstance(exc, UpstreamError) and exc.status in FINAL_STATUSES
            if final or group.fetch_attempts >= self.settings.monitor_fetch_max_attempts:
                report.failed[label] = message
                await self.store.finish_fetch(group.id, now=moment, error=message)
                log.error("giving up fetching event group %s: %s", label, message)
            else:
                report.retrying[label] = message
                retry_at = moment + self._backoff(group.fetch_attempts, self.settings.monitor_fetch_retry_seconds)
                await self.store.finish_fetch(group.id, now=moment, error=message, retry_at=retry_at)
                log.warning("fetching event group %s failed (attempt %d): %s", label, group.fetch_attempts, message)
            return
        await self.store.finish_fetch(group.id, now=self.clock(), events=events)
        report.fetched.append(label)

    # the sweep -----------------------------------------------------------------

    async def sweep(self, now: datetime | None = None) -> SweepReport:
        """Deactivate monitors older than MONITOR_TTL_HOURS and retry every due remote cancel."""
        now = now or self.clock()
        report = SweepReport()
        cutoff = now - timedelta(hours=self.settings.monitor_ttl_hours)
        report.deactivated = [m.monitor_id for m in await self.store.expire_monitors(cutoff, now)]
        while True:
            claimed = await self.store.claim_cancels(now, now + LEASE, BATCH)
            for monitor in claimed:
                error = await self._cancel(monitor, attempts=monitor.cancel_attempts, now=now)
                if error is None:
                    report.cancelled.append(monitor.monitor_id)
                else:
                    report.cancel_failed[monitor.monitor_id] = error
            if len(claimed) < BATCH:
                return report

    async def _try_cancel(self, monitor: Monitor) -> None:
        await self._cancel(monitor, attempts=monitor.cancel_attempts + 1, now=self.clock())

    async def _cancel(self, monitor: Monitor, *, attempts: int, now: datetime) -> str | None:
        """Cancel at Parallel and record the outcome; returns the error, or None when done."""
        try:
            state = await self.remote().cancel(monitor.monitor_id)
        except GatewayError as exc:
            retry_at = now + self._backoff(attempts, 60.0)
            await self.store.finish_cancel(monitor.monitor_id, remote_state=None, error=exc.message, retry_at=retry_at)
            log.warning("cancelling monitor %s at Parallel failed; retrying later: %s", monitor.monitor_id, exc.message)
            return exc.message
        await self.store.finish_cancel(monitor.monitor_id, remote_state=state, error=None, retry_at=None)
        return None

    @staticmethod
    def _backoff(attempts: int, first: float) -> timedelta:
        return timedelta(seconds=min(MAX_BACKOFF_SECONDS, first * 2 ** max(0, attempts - 1)))


def parse_delivery(body: bytes) -> tuple[str, str, dict[str, Any]]:
    """(type, monitor_id, data.event) of a webhook body; InvalidRequest (400) when malformed."""
    try:
        payload = orjson.loads(body)
    except orjson.JSONDecodeError:
        raise InvalidRequest("The webhook body is not valid JSON.") from None
    if not isinstance(payload, dict) or not isinstance(payload.get("type"), str):
        raise InvalidRequest("The webhook body must be a JSON object with a string 'type'.")
    data = payload.get("data")
    if not isinstance(data, dict) or not isinstance(data.get("monitor_id"), str) or not data["monitor_id"]:
        raise InvalidRequest("The webhook body needs data.monitor_id.")
    monitor_id = check_id(data["monitor_id"], "data.monitor_id")
    event = data.get("event")
    return payload["type"], monitor_id, event if isinstance(event, dict) else {}


def _label(group: EventGroup) -> str:
    """The group's name for logs and reports (rows stored before ids were checked may be long)."""
    return f"{clip(group.monitor_id)}/{clip(group.event_group_id)}"
