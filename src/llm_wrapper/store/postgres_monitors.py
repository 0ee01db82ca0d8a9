"""Monitors and event groups in PostgreSQL (a mixin of `PostgresStore`).

Claims are one `UPDATE … WHERE id IN (SELECT … FOR UPDATE SKIP LOCKED) AND <still
claimable> RETURNING …` statement: concurrent claimers on any number of
instances skip each other's rows, and the outer condition is re-checked on the
row as the winner left it, so no row is handed out twice.
"""

from __future__ import annotations

from datetime import datetime
from typing import TYPE_CHECKING, Any, TypeVar

import asyncpg
import orjson

from ..monitors.records import EventGroup, Monitor, group_summary
from .postgres_guard import guarded

T = TypeVar("T")

MONITOR_COLUMNS = (
    "monitor_id, username, query, frequency, created_at, deactivated_at, remote_state, "
    "cancel_pending, cancel_attempts, last_error, last_run_at, last_run_status"
)
GROUP_COLUMNS = (
    "id, monitor_id, event_group_id, webhook_id, received_at, fetch_state, fetch_attempts, "
    "next_attempt_at, last_error, fetched_at, events::text AS events, event_date, "
    "source_urls::text AS source_urls, processed_at"
)
USER_GROUPS = "SELECT monitor_id FROM monitors WHERE username = $1"
USER_LOCK = 0x6D6F6E  # "mon": advisory lock class for per-user monitor changes



def _monitor(row: asyncpg.Record) -> Monitor:
    return Monitor(**dict(row))


def _group(row: asyncpg.Record) -> EventGroup:
    data = dict(row)
    data["events"] = orjson.loads(data["events"]) if data["events"] else []
    data["source_urls"] = orjson.loads(data["source_urls"]) if data["source_urls"] else []
    return EventGroup(**data)


class PostgresMonitorStore:
    """Needs `pool()`, `_fetch`, `_execute` and `timeout` of `PostgresStore`."""

    timeout: float

    if TYPE_CHECKING:

        async def pool(self) -> asyncpg.Pool: ...
        async def _fetch(self, sql: str, *args: Any) -> list[asyncpg.Record]: ...
        async def _execute(self, sql: str, *args: Any) -> str: ...

    @guarded
    async def insert_monitor(self, monitor: Monitor) -> list[Monitor]:
        pool = await self.pool()
        async with pool.acquire() as conn, conn.transaction():
            # one create per user at a time, on every instance: the second waits, then replaces the first
            await conn.execute(
                "SELECT pg_advisory_xact_lock($1, hashtext($2))", USER_LOCK, monitor.username, timeout=self.timeout
            )
            replaced = await conn.fetch(
                "UPDATE monitors SET deactivated_at = $2, cancel_pending = TRUE, cancel_next_at = $2 "
                f"WHERE username = $1 AND deactivated_at IS NULL RETURNING {MONITOR_COLUMNS}",
                monitor.username, monitor.created_at, timeout=self.timeout,
            )
            await conn.execute(
                "INSERT INTO monitors (monitor_id, username, query, frequency, created_at, remote_state) "
                "VALUES ($1, $2, $3, $4, $5, $6)",
                monitor.monitor_id, monitor.username, monitor.query, monitor.frequency,
                monitor.created_at, monitor.remote_state, timeout=self.timeout,
            )
        return [_monitor(r) for r in replaced]

    @guarded
    async def get_monitor(self, monitor_id: str) -> Monitor | None:
        rows = await self._fetch(f"SELECT {MONITOR_COLUMNS} FROM monitors WHERE monitor_id = $1", monitor_id)
        return _monitor(rows[0]) if rows else None

    @guarded
    async def list_monitors(self, username: str | None = None) -> list[Monitor]:
        if username is None:
            rows = await self._fetch(f"SELECT {MONITOR_COLUMNS} FROM monitors ORDER BY created_at DESC")
        else:
            rows = await self._fetch(
                f"SELECT {MONITOR_COLUMNS} FROM monitors WHERE username = $1 ORDER BY created_at DESC", username
            )
        return [_monitor(r) for r in rows]

    @guarded
    async def deactivate_monitor(self, monitor_id: str, now: datetime) -> Monitor | None:
        await self._execute(
            "UPDATE monitors SET deactivated_at = $2, cancel_pending = TRUE, cancel_next_at = $2 "
            "WHERE monitor_id = $1 AND deactivated_at IS NULL",
            monitor_id, now,
        )
        return await self.get_monitor(monitor_id)

    @guarded
    async def expire_monitors(self, cutoff: datetime, now: datetime) -> list[Monitor]:
        rows = await self._fetch(
            "UPDATE monitors SET deactivated_at = $2, cancel_pending = TRUE, cancel_next_at = $2 "
            f"WHERE deactivated_at IS NULL AND created_at <= $1 RETURNING {MONITOR_COLUMNS}",
            cutoff, now,
        )
        return [_monitor(r) for r in rows]

    @guarded
    async def claim_cancels(self, now: datetime, lease_until: datetime, limit: int) -> list[Monitor]:
        rows = await self._fetch(
            "UPDATE monitors SET cancel_next_at = $2, cancel_attempts = cancel_attempts + 1 "
            "WHERE monitor_id IN (SELECT monitor_id FROM monitors WHERE cancel_pending "
            "AND (cancel_next_at IS NULL OR cancel_next_at <= $1) ORDER BY cancel_next_at LIMIT $3 "
            "FOR UPDATE SKIP LOCKED) "
            f"AND cancel_pending AND (cancel_next_at IS NULL OR cancel_next_at <= $1) RETURNING {MONITOR_COLUMNS}",
            now, lease_until, limit,
        )
        return [_monitor(r) for r in rows]

    @guarded
    async def finish_cancel(
        self, monitor_id: str, *, remote_state: str | None, error: str | None, retry_at: datetime | None
    ) -> None:
        if remote_state is not None:
            await self._execute(
                "UPDATE monitors SET cancel_pending = FALSE, cancel_next_at = NULL, remote_state = $2, "
                "last_error = NULL WHERE monitor_id = $1",
                monitor_id, remote_state,
            )
        else:
            await self._execute(
                "UPDATE monitors SET last_error = $2, cancel_next_at = $3 WHERE monitor_id = $1",
                monitor_id, error, retry_at,
            )

    @guarded
    async def record_run(self, monitor_id: str, status: str, at: datetime, error: str | None) -> None:
        await self._execute(
            "UPDATE monitors SET last_run_at = $2, last_run_status = $3, "
            "last_error = COALESCE($4, last_error) WHERE monitor_id = $1",
            monitor_id, at, status, error,
        )

    @guarded
    async def add_event_group(
        self, *, monitor_id: str, event_group_id: str, webhook_id: str | None, received_at: datetime
    ) -> bool:
        rows = await self._fetch(
            "INSERT INTO event_groups (monitor_id, event_group_id, webhook_id, received_at, next_attempt_at) "
            "VALUES ($1, $2, $3, $4, $4) ON CONFLICT DO NOTHING RETURNING id",
            monitor_id, event_group_id, webhook_id, received_at,
        )
        return bool(rows)

    @guarded
    async def claim_fetches(self, now: datetime, lease_until: datetime, limit: int) -> list[EventGroup]:
        rows = await self._fetch(
            "UPDATE event_groups SET next_attempt_at = $2, fetch_attempts = fetch_attempts + 1 "
            "WHERE id IN (SELECT id FROM event_groups WHERE fetch_state = 'pending' "
            "AND next_attempt_at <= $1 ORDER BY next_attempt_at LIMIT $3 FOR UPDATE SKIP LOCKED) "
            f"AND fetch_state = 'pending' AND next_attempt_at <= $1 RETURNING {GROUP_COLUMNS}",
            now, lease_until, limit,
        )
        return [_group(r) for r in rows]

    @guarded
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
            await self._execute(
                "UPDATE event_groups SET fetch_state = 'fetched', fetched_at = $2, next_attempt_at = NULL, "
                "events = $3::jsonb, event_date = $4, source_urls = $5::jsonb, last_error = NULL WHERE id = $1",
                group_id, now, orjson.dumps(events).decode(), latest,
                orjson.dumps(urls).decode(),
            )
        else:
            await self._execute(
                "UPDATE event_groups SET fetch_state = $2, next_attempt_at = $3, last_error = $4 WHERE id = $1",
                group_id, "pending" if retry_at else "failed", retry_at, error,
            )

    @guarded
    async def next_fetch_due(self) -> datetime | None:
        rows = await self._fetch("SELECT MIN(next_attempt_at) FROM event_groups WHERE fetch_state = 'pending'")
        return rows[0][0] if rows else None

    @guarded
    async def claim_updates(self, username: str, now: datetime) -> list[EventGroup]:
        rows = await self._fetch(
            "UPDATE event_groups SET processed_at = $2 WHERE id IN (SELECT id FROM event_groups "
            f"WHERE monitor_id IN ({USER_GROUPS}) AND fetch_state = 'fetched' AND processed_at IS NULL "
            f"FOR UPDATE SKIP LOCKED) AND processed_at IS NULL RETURNING {GROUP_COLUMNS}",
            username, now,
        )
        return sorted((_group(r) for r in rows), key=lambda g: (g.received_at, g.id))

    @guarded
    async def count_updates(self, username: str) -> int:
        rows = await self._fetch(
            f"SELECT COUNT(*) FROM event_groups WHERE monitor_id IN ({USER_GROUPS}) "
            "AND fetch_state = 'fetched' AND processed_at IS NULL",
            username,
        )
        return int(rows[0][0])

    @guarded
    async def last_processed_at(self, username: str) -> datetime | None:
        rows = await self._fetch(
            f"SELECT MAX(processed_at) FROM event_groups WHERE monitor_id IN ({USER_GROUPS})", username
        )
        return rows[0][0]

    @guarded
    async def list_event_groups(self, monitor_id: str | None = None) -> list[EventGroup]:
        if monitor_id is None:
            rows = await self._fetch(f"SELECT {GROUP_COLUMNS} FROM event_groups ORDER BY received_at, id")
        else:
            rows = await self._fetch(
                f"SELECT {GROUP_COLUMNS} FROM event_groups WHERE monitor_id = $1 ORDER BY received_at, id",
                monitor_id,
            )
        return [_group(r) for r in rows]
