"""Monitors and the event groups their webhooks announce, on either database.

Each statement is written once (see `database.py`). A claim is one `UPDATE …
WHERE id IN (SELECT … {skip_locked}) AND <still claimable> RETURNING …`
statement: on PostgreSQL concurrent claimers on any number of instances skip
each other's rows (`FOR UPDATE SKIP LOCKED`) and the outer condition is
re-checked on the row as the winner left it; SQLite runs one writer at a time.
Either way no row is handed out twice.

Identifiers, usernames and queries are refused (InvalidRequest, 400) when they
hold text PostgreSQL cannot store; error messages from elsewhere are stored
with such characters replaced.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

import orjson

from ..monitors.records import EventGroup, Monitor, group_summary
from .database import Database, Executor, Row, check_text, clean_text, sql

USER_LOCK = 0x6D6F6E  # "mon": the lock class for per-user monitor changes
MONITOR = (
    "monitor_id, username, query, frequency, created_at, deactivated_at, remote_state, "
    "cancel_pending, cancel_attempts, last_error, last_run_at, last_run_status"
)
GROUP = (
    "id, monitor_id, event_group_id, webhook_id, received_at, fetch_state, fetch_attempts, "
    "next_attempt_at, last_error, fetched_at, events, event_date, source_urls, processed_at"
)
DEACTIVATE = "UPDATE monitors SET deactivated_at = :now, cancel_pending = {true}, cancel_next_at = :now"
USER_MONITORS = "SELECT monitor_id FROM monitors WHERE username = :user"
WAITING = f"monitor_id IN ({USER_MONITORS}) AND fetch_state = 'fetched' AND processed_at IS NULL"

DEACTIVATE_USERS = sql(
    f"{DEACTIVATE} WHERE username = :user AND deactivated_at IS NULL RETURNING {MONITOR}"
)
INSERT_MONITOR = sql(
    "INSERT INTO monitors (monitor_id, username, query, frequency, created_at, remote_state) "
    "VALUES (:id, :user, :query, :frequency, :now, :remote_state)"
)
GET_MONITOR = sql(f"SELECT {MONITOR} FROM monitors WHERE monitor_id = :id")
LIST_MONITORS = sql(f"SELECT {MONITOR} FROM monitors ORDER BY created_at DESC")
COUNT_ACTIVE = sql("SELECT COUNT(*) FROM monitors WHERE deactivated_at IS NULL")
LIST_USERS_MONITORS = sql(f"SELECT {MONITOR} FROM monitors WHERE username = :user ORDER BY created_at DESC")
DEACTIVATE_MONITOR = sql(f"{DEACTIVATE} WHERE monitor_id = :id AND deactivated_at IS NULL")
EXPIRE_MONITORS = sql(
    f"{DEACTIVATE} WHERE deactivated_at IS NULL AND created_at <= :cutoff RETURNING {MONITOR}"
)
CLAIM_CANCELS = sql(
    "UPDATE monitors SET cancel_next_at = :lease, cancel_attempts = cancel_attempts + 1 "
    "WHERE monitor_id IN (SELECT monitor_id FROM monitors WHERE cancel_pending = {true} "
    "AND (cancel_next_at IS NULL OR cancel_next_at <= :now) ORDER BY cancel_next_at LIMIT :limit {skip_locked}) "
    f"AND cancel_pending = {{true}} AND (cancel_next_at IS NULL OR cancel_next_at <= :now) RETURNING {MONITOR}"
)
CANCEL_DONE = sql(
    "UPDATE monitors SET cancel_pending = {false}, cancel_next_at = NULL, remote_state = :remote_state, "
    "last_error = NULL WHERE monitor_id = :id"
)
CANCEL_FAILED = sql("UPDATE monitors SET last_error = :error, cancel_next_at = :retry_at WHERE monitor_id = :id")
RECORD_RUN = sql(
    "UPDATE monitors SET last_run_at = :at, last_run_status = :status, "
    "last_error = COALESCE(:error, last_error) WHERE monitor_id = :id"
)
ADD_EVENT_GROUP = sql(
    "INSERT INTO event_groups (monitor_id, event_group_id, webhook_id, received_at, next_attempt_at) "
    "VALUES (:monitor_id, :event_group_id, :webhook_id, :at, :at) ON CONFLICT DO NOTHING RETURNING id"
)
DUE = "fetch_state = 'pending' AND next_attempt_at <= :now"
# The oldest due group of each monitor only: deliveries for one monitor cost one fetch a round.
CLAIM_FETCHES = sql(
    "UPDATE event_groups SET next_attempt_at = :lease, fetch_attempts = fetch_attempts + 1 "
    "WHERE id IN (SELECT id FROM event_groups WHERE id IN "
    f"(SELECT MIN(id) FROM event_groups WHERE {DUE} GROUP BY monitor_id) "
    "ORDER BY next_attempt_at LIMIT :limit {skip_locked}) "
    f"AND {DUE} RETURNING {GROUP}"
)
FETCH_DONE = sql(
    "UPDATE event_groups SET fetch_state = 'fetched', fetched_at = :now, next_attempt_at = NULL, "
    "events = :events, event_date = :event_date, source_urls = :source_urls, last_error = NULL WHERE id = :id"
)
FETCH_FAILED = sql(
    "UPDATE event_groups SET fetch_state = :state, next_attempt_at = :retry_at, last_error = :error WHERE id = :id"
)
NEXT_FETCH_DUE = sql("SELECT MIN(next_attempt_at) FROM event_groups WHERE fetch_state = 'pending'")
CLAIM_UPDATES = sql(
    f"UPDATE event_groups SET processed_at = :now WHERE id IN (SELECT id FROM event_groups WHERE {WAITING} "
    f"{{skip_locked}}) AND processed_at IS NULL RETURNING {GROUP}"
)
COUNT_UPDATES = sql(f"SELECT COUNT(*) FROM event_groups WHERE {WAITING}")
COUNT_WAITING = sql(
    "SELECT monitor_id, COUNT(*) FROM event_groups WHERE fetch_state = 'fetched' AND processed_at IS NULL "
    "GROUP BY monitor_id"
)
LAST_PROCESSED_AT = sql(f"SELECT MAX(processed_at) FROM event_groups WHERE monitor_id IN ({USER_MONITORS})")
LIST_EVENT_GROUPS = sql(f"SELECT {GROUP} FROM event_groups ORDER BY received_at, id")
LIST_MONITORS_GROUPS = sql(f"SELECT {GROUP} FROM event_groups WHERE monitor_id = :id ORDER BY received_at, id")


class MonitorStore:
    """The monitor part of the Store; times are aware UTC datetimes."""

    def __init__(self, db: Database) -> None:
        self.db = db

    async def insert_monitor(self, monitor: Monitor) -> list[Monitor]:
        """Store a new active monitor and, in the same transaction, deactivate the user's
        other active ones (their remote cancel pending). Returns those, deactivated."""
        params = {
            "id": check_text(monitor.monitor_id, "monitor_id"), "user": check_text(monitor.username, "username"),
            "query": check_text(monitor.query, "query"), "frequency": check_text(monitor.frequency, "frequency"),
            "remote_state": check_text(monitor.remote_state, "remote_state"), "now": self.db.time(monitor.created_at),
        }

        async def work(tx: Executor) -> list[Row]:
            replaced = await tx.rows(DEACTIVATE_USERS, params)
            await tx.run(INSERT_MONITOR, params)
            return replaced

        # one create per user at a time, on every instance: the second waits, then replaces the first
        return [self._monitor(r) for r in await self.db.transact(work, lock=(USER_LOCK, monitor.username))]

    async def get_monitor(self, monitor_id: str) -> Monitor | None:
        rows = await self.db.rows(GET_MONITOR, {"id": check_text(monitor_id, "monitor_id")})
        return self._monitor(rows[0]) if rows else None

    async def list_monitors(self, username: str | None = None) -> list[Monitor]:
        """Newest first; every user's when `username` is None."""
        if username is None:
            rows = await self.db.rows(LIST_MONITORS)
        else:
            rows = await self.db.rows(LIST_USERS_MONITORS, {"user": check_text(username, "username")})
        return [self._monitor(r) for r in rows]

    async def count_active_monitors(self) -> int:
        rows = await self.db.rows(COUNT_ACTIVE)
        return int(rows[0][0])

    async def deactivate_monitor(self, monitor_id: str, now: datetime) -> Monitor | None:
        """Deactivate (remote cancel pending) unless already; the monitor as stored, None if unknown."""
        await self.db.run(DEACTIVATE_MONITOR, {"id": check_text(monitor_id, "monitor_id"), "now": self.db.time(now)})
        return await self.get_monitor(monitor_id)

    async def expire_monitors(self, cutoff: datetime, now: datetime) -> list[Monitor]:
        """Deactivate, in one statement, every active monitor created at or before `cutoff`;
        returns exactly those (so each is expired by one caller only)."""
        rows = await self.db.rows(EXPIRE_MONITORS, {"cutoff": self.db.time(cutoff), "now": self.db.time(now)})
        return [self._monitor(r) for r in rows]

    async def claim_cancels(self, now: datetime, lease_until: datetime, limit: int) -> list[Monitor]:
        """Claim pending remote cancels that are due: nobody else gets them before `lease_until`.
        Each claim counts one attempt."""
        rows = await self.db.rows(
            CLAIM_CANCELS, {"now": self.db.time(now), "lease": self.db.time(lease_until), "limit": limit}
        )
        return [self._monitor(r) for r in rows]

    async def finish_cancel(
        self, monitor_id: str, *, remote_state: str | None, error: str | None, retry_at: datetime | None
    ) -> None:
        """After a cancel attempt: done (`remote_state` given) or failed, to retry at `retry_at`."""
        params = {"id": check_text(monitor_id, "monitor_id")}
        if remote_state is not None:
            await self.db.run(CANCEL_DONE, {**params, "remote_state": check_text(remote_state, "remote_state")})
        else:
            await self.db.run(
                CANCEL_FAILED, {**params, "error": clean_text(error), "retry_at": self.db.time(retry_at)}
            )

    async def record_run(self, monitor_id: str, status: str, at: datetime, error: str | None) -> None:
        """Note a run's outcome (detected, completed, failed) on the monitor, if known."""
        await self.db.run(RECORD_RUN, {
            "id": check_text(monitor_id, "monitor_id"), "status": check_text(status, "status"),
            "at": self.db.time(at), "error": clean_text(error),
        })

    async def add_event_group(
        self, *, monitor_id: str, event_group_id: str, webhook_id: str | None, received_at: datetime
    ) -> bool:
        """Store a delivery, fetch pending; False (nothing written) when its webhook id or
        its (monitor, event group) is already stored."""
        rows = await self.db.rows(ADD_EVENT_GROUP, {
            "monitor_id": check_text(monitor_id, "monitor_id"),
            "event_group_id": check_text(event_group_id, "event_group_id"),
            "webhook_id": None if webhook_id is None else check_text(webhook_id, "webhook_id"),
            "at": self.db.time(received_at),
        })
        return bool(rows)

    async def claim_fetches(self, now: datetime, lease_until: datetime, limit: int) -> list[EventGroup]:
        """Claim pending fetches that are due until `lease_until`, at most one a monitor (its
        oldest) and `limit` in all; each claim counts one attempt."""
        rows = await self.db.rows(
            CLAIM_FETCHES, {"now": self.db.time(now), "lease": self.db.time(lease_until), "limit": limit}
        )
        return [self._group(r) for r in rows]

    async def finish_fetch(
        self,
        group_id: int,
        *,
        now: datetime,
        events: list[dict] | None = None,
        error: str | None = None,
        retry_at: datetime | None = None,
    ) -> None:
        """After a fetch: the events (fetched), or the error and when to retry (None: give up)."""
        if events is not None:
            text = orjson.dumps(events).decode()
            if "\\u0000" in text:  # PostgreSQL's jsonb cannot hold it
                events = _without_nul(events)
                text = orjson.dumps(events).decode()
            latest, urls = group_summary(events)
            await self.db.run(FETCH_DONE, {
                "id": group_id, "now": self.db.time(now), "events": text, "event_date": latest,
                "source_urls": orjson.dumps(urls).decode(),
            })
        else:
            await self.db.run(FETCH_FAILED, {
                "id": group_id, "state": "pending" if retry_at else "failed",
                "retry_at": self.db.time(retry_at), "error": clean_text(error),
            })

    async def next_fetch_due(self) -> datetime | None:
        """When the earliest pending fetch is due, or None when there is none."""
        rows = await self.db.rows(NEXT_FETCH_DUE)
        return self.db.read_time(rows[0][0]) if rows else None

    async def claim_updates(self, username: str, now: datetime) -> list[EventGroup]:
        """Mark the user's fetched, unprocessed event groups processed in one atomic statement and
        return exactly those, oldest first: two concurrent callers never get the same group."""
        rows = await self.db.rows(CLAIM_UPDATES, {"user": check_text(username, "username"), "now": self.db.time(now)})
        return sorted((self._group(r) for r in rows), key=lambda g: (g.received_at, g.id))

    async def count_updates(self, username: str) -> int:
        """The user's fetched, unprocessed event groups."""
        rows = await self.db.rows(COUNT_UPDATES, {"user": check_text(username, "username")})
        return int(rows[0][0])

    async def count_waiting(self) -> dict[str, int]:
        """Fetched, unprocessed event groups per monitor id (monitors with none are absent)."""
        return {row[0]: int(row[1]) for row in await self.db.rows(COUNT_WAITING)}

    async def last_processed_at(self, username: str) -> datetime | None:
        rows = await self.db.rows(LAST_PROCESSED_AT, {"user": check_text(username, "username")})
        return self.db.read_time(rows[0][0])

    async def list_event_groups(self, monitor_id: str | None = None) -> list[EventGroup]:
        """Oldest first; every monitor's when `monitor_id` is None."""
        if monitor_id is None:
            rows = await self.db.rows(LIST_EVENT_GROUPS)
        else:
            rows = await self.db.rows(LIST_MONITORS_GROUPS, {"id": check_text(monitor_id, "monitor_id")})
        return [self._group(r) for r in rows]

    def _monitor(self, row: Row) -> Monitor:
        t = self.db.read_time
        return Monitor(
            monitor_id=row[0], username=row[1], query=row[2], frequency=row[3],
            created_at=t(row[4]), deactivated_at=t(row[5]), remote_state=row[6],  # type: ignore[arg-type]
            cancel_pending=bool(row[7]), cancel_attempts=row[8], last_error=row[9],
            last_run_at=t(row[10]), last_run_status=row[11],
        )

    def _group(self, row: Row) -> EventGroup:
        t = self.db.read_time
        return EventGroup(
            id=row[0], monitor_id=row[1], event_group_id=row[2], webhook_id=row[3],
            received_at=t(row[4]), fetch_state=row[5], fetch_attempts=row[6],  # type: ignore[arg-type]
            next_attempt_at=t(row[7]), last_error=row[8], fetched_at=t(row[9]),
            events=orjson.loads(row[10]) if row[10] else [], event_date=row[11],
            source_urls=orjson.loads(row[12]) if row[12] else [], processed_at=t(row[13]),
        )


def _without_nul(value: Any) -> Any:
    """`value` (decoded JSON) with NUL characters in its strings replaced."""
    if isinstance(value, str):
        return clean_text(value)
    if isinstance(value, list):
        return [_without_nul(v) for v in value]
    if isinstance(value, dict):
        return {clean_text(k): _without_nul(v) for k, v in value.items()}
    return value
