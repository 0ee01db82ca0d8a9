"""Monitors and event groups in SQLite (a mixin of `SQLiteStore`).

Times are stored as fixed-width UTC text with microseconds, which sorts in time
order. Each claim is one `UPDATE … WHERE id IN (SELECT …) RETURNING` statement:
SQLite runs one writer at a time, so two claimers never get the same row.
Statements with RETURNING are read to the end (`fetchall`) so they finish, and
commit, at once.
"""

from __future__ import annotations

import sqlite3
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

import orjson

from ..monitors.records import EventGroup, Monitor, group_summary

TIME_FORMAT = "%Y-%m-%d %H:%M:%S.%f"
MONITOR_COLUMNS = (
    "monitor_id, username, query, frequency, created_at, deactivated_at, remote_state, "
    "cancel_pending, cancel_attempts, last_error, last_run_at, last_run_status"
)
GROUP_COLUMNS = (
    "id, monitor_id, event_group_id, webhook_id, received_at, fetch_state, fetch_attempts, "
    "next_attempt_at, last_error, fetched_at, events, event_date, source_urls, processed_at"
)
USER_GROUPS = "SELECT monitor_id FROM monitors WHERE username = :user"


def _t(moment: datetime | None) -> str | None:
    return moment.astimezone(UTC).strftime(TIME_FORMAT) if moment else None


def _dt(text: str | None) -> datetime | None:
    if not text:
        return None
    return datetime.strptime(text, TIME_FORMAT).replace(tzinfo=UTC)


def _monitor(row: tuple) -> Monitor:
    return Monitor(
        monitor_id=row[0], username=row[1], query=row[2], frequency=row[3],
        created_at=_dt(row[4]), deactivated_at=_dt(row[5]), remote_state=row[6],  # type: ignore[arg-type]
        cancel_pending=bool(row[7]), cancel_attempts=row[8], last_error=row[9],
        last_run_at=_dt(row[10]), last_run_status=row[11],
    )


def _group(row: tuple) -> EventGroup:
    return EventGroup(
        id=row[0], monitor_id=row[1], event_group_id=row[2], webhook_id=row[3],
        received_at=_dt(row[4]), fetch_state=row[5], fetch_attempts=row[6],  # type: ignore[arg-type]
        next_attempt_at=_dt(row[7]), last_error=row[8], fetched_at=_dt(row[9]),
        events=orjson.loads(row[10]) if row[10] else [], event_date=row[11],
        source_urls=orjson.loads(row[12]) if row[12] else [], processed_at=_dt(row[13]),
    )


class SQLiteMonitorStore:
    """Needs `execute(sql, params)` and the autocommit connection `db` of `SQLiteStore`."""

    db: sqlite3.Connection

    if TYPE_CHECKING:

        def execute(self, sql: str, params: tuple | dict = ()) -> sqlite3.Cursor: ...

    def _rows(self, sql: str, params: tuple | dict = ()) -> list[Any]:
        return self.execute(sql, params).fetchall()

    async def insert_monitor(self, monitor: Monitor) -> list[Monitor]:
        now = _t(monitor.created_at)
        self.execute("BEGIN IMMEDIATE")  # one writer: the user's active monitor cannot change meanwhile
        try:
            replaced = self._rows(
                "UPDATE monitors SET deactivated_at = :now, cancel_pending = 1, cancel_next_at = :now "
                f"WHERE username = :user AND deactivated_at IS NULL RETURNING {MONITOR_COLUMNS}",
                {"now": now, "user": monitor.username},
            )
            self.execute(
                "INSERT INTO monitors (monitor_id, username, query, frequency, created_at, remote_state) "
                "VALUES (?, ?, ?, ?, ?, ?)",
                (monitor.monitor_id, monitor.username, monitor.query, monitor.frequency, now, monitor.remote_state),
            )
            self.execute("COMMIT")
        except BaseException:
            self.db.execute("ROLLBACK")
            raise
        return [_monitor(r) for r in replaced]

    async def get_monitor(self, monitor_id: str) -> Monitor | None:
        rows = self._rows(f"SELECT {MONITOR_COLUMNS} FROM monitors WHERE monitor_id = ?", (monitor_id,))
        return _monitor(rows[0]) if rows else None

    async def list_monitors(self, username: str | None = None) -> list[Monitor]:
        where, params = ("WHERE username = ?", (username,)) if username is not None else ("", ())
        rows = self._rows(f"SELECT {MONITOR_COLUMNS} FROM monitors {where} ORDER BY created_at DESC", params)
        return [_monitor(r) for r in rows]

    async def deactivate_monitor(self, monitor_id: str, now: datetime) -> Monitor | None:
        self._rows(
            "UPDATE monitors SET deactivated_at = :now, cancel_pending = 1, cancel_next_at = :now "
            "WHERE monitor_id = :id AND deactivated_at IS NULL RETURNING monitor_id",
            {"now": _t(now), "id": monitor_id},
        )
        return await self.get_monitor(monitor_id)

    async def expire_monitors(self, cutoff: datetime, now: datetime) -> list[Monitor]:
        rows = self._rows(
            "UPDATE monitors SET deactivated_at = :now, cancel_pending = 1, cancel_next_at = :now "
            f"WHERE deactivated_at IS NULL AND created_at <= :cutoff RETURNING {MONITOR_COLUMNS}",
            {"now": _t(now), "cutoff": _t(cutoff)},
        )
        return [_monitor(r) for r in rows]

    async def claim_cancels(self, now: datetime, lease_until: datetime, limit: int) -> list[Monitor]:
        rows = self._rows(
            "UPDATE monitors SET cancel_next_at = :lease, cancel_attempts = cancel_attempts + 1 "
            "WHERE monitor_id IN (SELECT monitor_id FROM monitors WHERE cancel_pending = 1 "
            "AND (cancel_next_at IS NULL OR cancel_next_at <= :now) ORDER BY cancel_next_at LIMIT :limit) "
            f"AND cancel_pending = 1 RETURNING {MONITOR_COLUMNS}",
            {"now": _t(now), "lease": _t(lease_until), "limit": limit},
        )
        return [_monitor(r) for r in rows]

    async def finish_cancel(
        self, monitor_id: str, *, remote_state: str | None, error: str | None, retry_at: datetime | None
    ) -> None:
        if remote_state is not None:
            self.execute(
                "UPDATE monitors SET cancel_pending = 0, cancel_next_at = NULL, remote_state = ?, "
                "last_error = NULL WHERE monitor_id = ?",
                (remote_state, monitor_id),
            )
        else:
            self.execute(
                "UPDATE monitors SET last_error = ?, cancel_next_at = ? WHERE monitor_id = ?",
                (error, _t(retry_at), monitor_id),
            )

    async def record_run(self, monitor_id: str, status: str, at: datetime, error: str | None) -> None:
        self.execute(
            "UPDATE monitors SET last_run_at = ?, last_run_status = ?, "
            "last_error = COALESCE(?, last_error) WHERE monitor_id = ?",
            (_t(at), status, error, monitor_id),
        )

    async def add_event_group(
        self, *, monitor_id: str, event_group_id: str, webhook_id: str | None, received_at: datetime
    ) -> bool:
        rows = self._rows(
            "INSERT INTO event_groups (monitor_id, event_group_id, webhook_id, received_at, next_attempt_at) "
            "VALUES (?, ?, ?, ?, ?) ON CONFLICT DO NOTHING RETURNING id",
            (monitor_id, event_group_id, webhook_id, _t(received_at), _t(received_at)),
        )
        return bool(rows)

    async def claim_fetches(self, now: datetime, lease_until: datetime, limit: int) -> list[EventGroup]:
        rows = self._rows(
            "UPDATE event_groups SET next_attempt_at = :lease, fetch_attempts = fetch_attempts + 1 "
            "WHERE id IN (SELECT id FROM event_groups WHERE fetch_state = 'pending' "
            "AND next_attempt_at <= :now ORDER BY next_attempt_at LIMIT :limit) "
            f"AND fetch_state = 'pending' RETURNING {GROUP_COLUMNS}",
            {"now": _t(now), "lease": _t(lease_until), "limit": limit},
        )
        return [_group(r) for r in rows]

    async def finish_fetch(
        self,
        group_id: int,
        *,
        now: datetime,
        events: list[dict] | None = None,
        error: str | None = None,
        retry_at: datetime | None = None,
    ) -> None:
        if events is not None:
            latest, urls = group_summary(events)
            self.execute(
                "UPDATE event_groups SET fetch_state = 'fetched', fetched_at = ?, next_attempt_at = NULL, "
                "events = ?, event_date = ?, source_urls = ?, last_error = NULL WHERE id = ?",
                (_t(now), orjson.dumps(events).decode(), latest,
                 orjson.dumps(urls).decode(), group_id),
            )
        else:
            self.execute(
                "UPDATE event_groups SET fetch_state = ?, next_attempt_at = ?, last_error = ? WHERE id = ?",
                ("pending" if retry_at else "failed", _t(retry_at), error, group_id),
            )

    async def next_fetch_due(self) -> datetime | None:
        rows = self._rows("SELECT MIN(next_attempt_at) FROM event_groups WHERE fetch_state = 'pending'")
        return _dt(rows[0][0]) if rows else None

    async def claim_updates(self, username: str, now: datetime) -> list[EventGroup]:
        rows = self._rows(
            "UPDATE event_groups SET processed_at = :now WHERE id IN (SELECT id FROM event_groups "
            f"WHERE monitor_id IN ({USER_GROUPS}) AND fetch_state = 'fetched' AND processed_at IS NULL) "
            f"AND processed_at IS NULL RETURNING {GROUP_COLUMNS}",
            {"now": _t(now), "user": username},
        )
        return sorted((_group(r) for r in rows), key=lambda g: (g.received_at, g.id))

    async def count_updates(self, username: str) -> int:
        rows = self._rows(
            f"SELECT COUNT(*) FROM event_groups WHERE monitor_id IN ({USER_GROUPS}) "
            "AND fetch_state = 'fetched' AND processed_at IS NULL",
            {"user": username},
        )
        return int(rows[0][0])

    async def last_processed_at(self, username: str) -> datetime | None:
        rows = self._rows(
            f"SELECT MAX(processed_at) FROM event_groups WHERE monitor_id IN ({USER_GROUPS})",
            {"user": username},
        )
        return _dt(rows[0][0])

    async def list_event_groups(self, monitor_id: str | None = None) -> list[EventGroup]:
        where, params = ("WHERE monitor_id = ?", (monitor_id,)) if monitor_id is not None else ("", ())
        rows = self._rows(f"SELECT {GROUP_COLUMNS} FROM event_groups {where} ORDER BY received_at, id", params)
        return [_group(r) for r in rows]
