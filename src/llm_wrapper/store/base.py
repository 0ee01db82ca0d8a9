"""The one storage interface; SQLite and PostgreSQL implement it.

Every method is a coroutine. The SQLite store runs its statements directly on
the event loop: each is a few microseconds against a local WAL file, which is
cheaper than a hop to a thread. The PostgreSQL store uses an asyncpg pool.
Methods raise `StoreUnavailable` when the database cannot be reached.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from datetime import datetime
from typing import TYPE_CHECKING

from ..errors import ServiceUnavailable
from ..tokens import Grant, TokenRecord

if TYPE_CHECKING:
    from ..monitors.records import EventGroup, Monitor


class StoreUnavailable(ServiceUnavailable):
    code = "database_unavailable"


class Store(ABC):
    dialect: str

    @abstractmethod
    async def migrate(self) -> list[str]:
        """Apply the migrations not yet recorded; safe when several processes start at once."""

    @abstractmethod
    async def close(self) -> None: ...

    @abstractmethod
    async def ping(self) -> None:
        """Raise StoreUnavailable unless the database answers."""

    # tokens ---------------------------------------------------------------

    @abstractmethod
    async def authorize(self, token_hash: str, now: datetime) -> Grant | None:
        """Admit and count one request in one atomic statement.

        Returns the grant, or None when the token is unknown, expired or out of
        requests for today (then nothing was counted; `get_token` says which).
        """

    @abstractmethod
    async def add_token(
        self, *, token_hash: str, username: str, expiry: datetime, rate_limit: int, now: datetime
    ) -> None: ...

    @abstractmethod
    async def import_token(self, record: TokenRecord) -> bool:
        """Store a token (by hash) unless it is already there; True when it was added."""

    @abstractmethod
    async def get_token(self, token_hash: str) -> TokenRecord | None: ...

    @abstractmethod
    async def list_tokens(self) -> list[TokenRecord]: ...

    @abstractmethod
    async def delete_token(self, token_hash: str) -> bool: ...

    # monitors (records in `monitors/records.py`; times are UTC datetimes) ---

    @abstractmethod
    async def insert_monitor(self, monitor: Monitor) -> list[Monitor]:
        """Store a new active monitor and, in the same transaction, deactivate the user's
        other active ones (their remote cancel pending). Returns those, deactivated."""

    @abstractmethod
    async def get_monitor(self, monitor_id: str) -> Monitor | None: ...

    @abstractmethod
    async def list_monitors(self, username: str | None = None) -> list[Monitor]:
        """Newest first; every user's when `username` is None."""

    @abstractmethod
    async def deactivate_monitor(self, monitor_id: str, now: datetime) -> Monitor | None:
        """Deactivate (remote cancel pending) unless already; the monitor as stored, None if unknown."""

    @abstractmethod
    async def expire_monitors(self, cutoff: datetime, now: datetime) -> list[Monitor]:
        """Deactivate, in one statement, every active monitor created at or before `cutoff`;
        returns exactly those (so each is expired by one caller only)."""

    @abstractmethod
    async def claim_cancels(self, now: datetime, lease_until: datetime, limit: int) -> list[Monitor]:
        """Claim pending remote cancels that are due: nobody else gets them before `lease_until`.
        Each claim counts one attempt."""

    @abstractmethod
    async def finish_cancel(
        self, monitor_id: str, *, remote_state: str | None, error: str | None, retry_at: datetime | None
    ) -> None:
        """After a cancel attempt: done (`remote_state` given) or failed, to retry at `retry_at`."""

    @abstractmethod
    async def record_run(self, monitor_id: str, status: str, at: datetime, error: str | None) -> None:
        """Note a run's outcome (detected, completed, failed) on the monitor, if known."""

    @abstractmethod
    async def add_event_group(
        self, *, monitor_id: str, event_group_id: str, webhook_id: str | None, received_at: datetime
    ) -> bool:
        """Store a delivery, fetch pending; False (nothing written) when its webhook id or
        its (monitor, event group) is already stored."""

    @abstractmethod
    async def claim_fetches(self, now: datetime, lease_until: datetime, limit: int) -> list[EventGroup]:
        """Claim pending fetches that are due until `lease_until`; each claim counts one attempt."""

    @abstractmethod
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

    @abstractmethod
    async def next_fetch_due(self) -> datetime | None:
        """When the earliest pending fetch is due, or None when there is none."""

    @abstractmethod
    async def claim_updates(self, username: str, now: datetime) -> list[EventGroup]:
        """Mark the user's fetched, unprocessed event groups processed in one atomic statement and
        return exactly those, oldest first: two concurrent callers never get the same group."""

    @abstractmethod
    async def count_updates(self, username: str) -> int:
        """The user's fetched, unprocessed event groups."""

    @abstractmethod
    async def last_processed_at(self, username: str) -> datetime | None: ...

    @abstractmethod
    async def list_event_groups(self, monitor_id: str | None = None) -> list[EventGroup]:
        """Oldest first; every monitor's when `monitor_id` is None."""
