"""The one storage interface: a token store and a monitor store over one database.

`Store.tokens` (`TokenStore`), `Store.monitors` (`MonitorStore`) and
`Store.usage` (`UsageStore`, the daily usage rollups) hold the
SQL, written once for both databases; `Store.db` is the backend (`Database`:
SQLite or PostgreSQL). The Store also answers every token and monitor method
itself (`store.authorize(…)` is `store.tokens.authorize(…)`), so callers need
not know which part holds what.

Every method is a coroutine. The SQLite store runs its statements directly on
the event loop: each is a few microseconds against a local WAL file, which is
cheaper than a hop to a thread; when another process holds the write lock it
waits with `asyncio.sleep`, never blocking the loop. The PostgreSQL store uses
an asyncpg pool. Methods raise `StoreUnavailable` (503) when the database
cannot be used, and `InvalidRequest` (400) for text no database can store.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, Concatenate, Generic, ParamSpec, TypeVar, overload

from .database import Database, StoreUnavailable
from .monitors import MonitorStore
from .tokens import TokenStore
from .usage import UsageStore

__all__ = ["Store", "StoreUnavailable"]

P = ParamSpec("P")
R = TypeVar("R")


class part(Generic[P, R]):
    """`name = part("tokens", TokenStore.name)`: `store.name(…)` calls `store.tokens.name(…)`.

    The bound method is kept on the instance at first use, so later calls cost
    no more than calling the part directly.
    """

    def __init__(self, holder: str, method: Callable[Concatenate[Any, P], R]) -> None:
        self.holder, self.name = holder, method.__name__
        self.__doc__ = method.__doc__

    @overload
    def __get__(self, store: None, owner: type) -> part[P, R]: ...
    @overload
    def __get__(self, store: object, owner: type) -> Callable[P, R]: ...

    def __get__(self, store: object | None, owner: type) -> part[P, R] | Callable[P, R]:
        if store is None:
            return self
        bound: Callable[P, R] = getattr(getattr(store, self.holder), self.name)
        store.__dict__[self.name] = bound
        return bound


class Store:
    def __init__(self, db: Database) -> None:
        self.db = db
        self.tokens = TokenStore(db)
        self.monitors = MonitorStore(db)
        self.usage = UsageStore(db)

    @property
    def dialect(self) -> str:
        return self.db.dialect

    async def migrate(self) -> list[str]:
        """Apply the migrations not yet recorded; safe when several processes start at once."""
        return await self.db.migrate()

    async def close(self) -> None:
        await self.db.close()

    async def ping(self) -> None:
        """Raise StoreUnavailable unless the database answers."""
        await self.db.ping()

    # tokens (see TokenStore)
    authorize = part("tokens", TokenStore.authorize)
    release = part("tokens", TokenStore.release)
    add_token = part("tokens", TokenStore.add_token)
    import_token = part("tokens", TokenStore.import_token)
    get_token = part("tokens", TokenStore.get_token)
    list_tokens = part("tokens", TokenStore.list_tokens)
    delete_token = part("tokens", TokenStore.delete_token)
    update_token = part("tokens", TokenStore.update_token)

    # monitors (see MonitorStore; records in `monitors/records.py`)
    insert_monitor = part("monitors", MonitorStore.insert_monitor)
    get_monitor = part("monitors", MonitorStore.get_monitor)
    list_monitors = part("monitors", MonitorStore.list_monitors)
    count_active_monitors = part("monitors", MonitorStore.count_active_monitors)
    count_waiting = part("monitors", MonitorStore.count_waiting)
    deactivate_monitor = part("monitors", MonitorStore.deactivate_monitor)
    expire_monitors = part("monitors", MonitorStore.expire_monitors)
    claim_cancels = part("monitors", MonitorStore.claim_cancels)
    finish_cancel = part("monitors", MonitorStore.finish_cancel)
    record_run = part("monitors", MonitorStore.record_run)
    add_event_group = part("monitors", MonitorStore.add_event_group)
    claim_fetches = part("monitors", MonitorStore.claim_fetches)
    finish_fetch = part("monitors", MonitorStore.finish_fetch)
    next_fetch_due = part("monitors", MonitorStore.next_fetch_due)
    claim_updates = part("monitors", MonitorStore.claim_updates)
    count_updates = part("monitors", MonitorStore.count_updates)
    last_processed_at = part("monitors", MonitorStore.last_processed_at)
    list_event_groups = part("monitors", MonitorStore.list_event_groups)
