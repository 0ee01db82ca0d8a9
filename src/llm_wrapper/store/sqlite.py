"""The embedded store: one SQLite file in WAL mode, shared safely by several worker processes.

Statements run on the event loop, the fast path: each takes microseconds. The
busy timeout is 0, so when another process holds the write lock SQLite says so
at once (SQLITE_BUSY) and the statement is tried again after `asyncio.sleep`
(1 ms, doubling up to 50 ms) until `timeout` seconds have passed; then
StoreUnavailable. The loop never blocks on a lock. A transaction is retried
whole, from BEGIN IMMEDIATE: a failed attempt committed nothing, so nothing is
applied twice. Every other failure (disk full, I/O error, a file that cannot
be opened or written …) is StoreUnavailable too.

The connection is shared by every task of the process, so a transaction must
not let another task in: it runs to its end without awaiting anything but its
own statements, which never wait inside a transaction (see `_run_to_end`).
"""

from __future__ import annotations

import asyncio
import logging
import sqlite3
import time
from collections.abc import Callable, Coroutine
from datetime import UTC, date, datetime
from pathlib import Path
from typing import Any, TypeVar

from ..tokens import format_time
from .base import Store
from .database import NO_PARAMS, Database, Executor, Params, Query, Row, StoreUnavailable, sql
from .migrations import MIGRATIONS

T = TypeVar("T")
log = logging.getLogger(__name__)

FIRST_WAIT, LONGEST_WAIT = 0.001, 0.05
LOCKED = {sqlite3.SQLITE_BUSY, sqlite3.SQLITE_LOCKED}
PING = sql("SELECT 1")


class _Locked(Exception):
    """A statement inside a transaction met another process's lock: start the transaction again."""


def sqlite_path(url: str) -> Path:
    """`sqlite:///relative/path` or `sqlite:////absolute/path`, as SQLAlchemy spells them."""
    rest = url.split(":", 1)[1]
    if rest.startswith("///"):
        rest = rest[3:]
    elif rest.startswith("//"):
        rest = rest[2:]
    if not rest:
        raise ValueError("a SQLite DATABASE_URL needs a file path: sqlite:///PATH")
    return Path(rest)


class SQLiteDatabase(Database):
    dialect = "sqlite"

    def __init__(self, path: Path, *, timeout: float = 5.0) -> None:
        self.path, self.timeout = path, timeout
        self._db: sqlite3.Connection | None = None
        self._closed = False
        self._in_transaction = False

    def connection(self) -> sqlite3.Connection:
        """The connection (autocommit, WAL, busy timeout 0), opened on first use."""
        if self._db is None:
            if self._closed:
                raise StoreUnavailable("The database is closed.")
            self.path.parent.mkdir(parents=True, exist_ok=True)
            db = sqlite3.connect(str(self.path), isolation_level=None, check_same_thread=False, timeout=0)
            try:
                db.execute("PRAGMA journal_mode=WAL")
                db.execute("PRAGMA synchronous=NORMAL")
                db.execute("PRAGMA foreign_keys=ON")
            except BaseException:
                db.close()
                raise
            self._db = db
        return self._db

    async def rows(self, query: Query, params: Params = NO_PARAMS) -> list[Row]:
        # fetchall, not fetchone: the statement must run to its end, which commits and
        # releases the write lock now rather than when the cursor happens to be freed.
        try:
            return (self._db or self.connection()).execute(query.sqlite, params).fetchall()
        except (sqlite3.Error, OSError) as exc:
            return await self._again(exc, lambda db: db.execute(query.sqlite, params).fetchall())

    async def run(self, query: Query, params: Params = NO_PARAMS) -> int:
        try:
            return (self._db or self.connection()).execute(query.sqlite, params).rowcount
        except (sqlite3.Error, OSError) as exc:
            return await self._again(exc, lambda db: db.execute(query.sqlite, params).rowcount)

    async def _again(self, error: Exception, attempt: Callable[[sqlite3.Connection], T]) -> T:
        """After `error` from a statement on its own: wait out a lock and try again, or raise."""
        patience = _Patience(self.timeout)
        while True:
            if not _locked(error):
                raise _unavailable(error) from error
            if self._in_transaction:
                raise _Locked from error  # no waiting here: `transact` starts again from BEGIN
            self._end_transaction()  # a read that met a lock may leave one open
            await patience.wait()
            try:
                return attempt(self._db or self.connection())
            except (sqlite3.Error, OSError) as exc:
                error = exc

    async def transact(
        self, work: Callable[[Executor], Coroutine[Any, Any, T]], *, lock: tuple[int, str] | None = None
    ) -> T:
        patience = _Patience(self.timeout)
        while True:
            try:
                return self._transaction(work)
            except _Locked:
                pass
            except (sqlite3.Error, OSError) as exc:
                if not _locked(exc):
                    raise _unavailable(exc) from exc
            await patience.wait()

    def _transaction(self, work: Callable[[Executor], Coroutine[Any, Any, T]]) -> T:
        """One attempt: BEGIN IMMEDIATE (the write lock, or SQLITE_BUSY at once), work, COMMIT."""
        db = self.connection()
        db.execute("BEGIN IMMEDIATE")
        self._in_transaction = True
        try:
            result = _run_to_end(work(self))
            db.execute("COMMIT")
            return result
        except BaseException:
            self._end_transaction()
            raise
        finally:
            self._in_transaction = False

    def _end_transaction(self) -> None:
        if self._db is not None and self._db.in_transaction:
            try:
                self._db.execute("ROLLBACK")
            except sqlite3.Error:
                pass  # the failure that brought us here is the one to report

    async def migrate(self) -> list[str]:
        async def work(_tx: Executor) -> list[str]:
            db = self.connection()  # one process migrates; the others wait, then see it done
            db.execute("CREATE TABLE IF NOT EXISTS schema_migrations (name TEXT PRIMARY KEY, applied_at TEXT NOT NULL)")
            done = {row[0] for row in db.execute("SELECT name FROM schema_migrations")}
            applied = []
            for name, statements, _ in MIGRATIONS:
                if name not in done:
                    for statement in statements:
                        db.execute(statement)
                    db.execute("INSERT INTO schema_migrations (name, applied_at) VALUES (?, ?)",
                               (name, format_time(datetime.now(UTC))))
                    applied.append(name)
            return applied

        return await self.transact(work)

    async def ping(self) -> None:
        await self.rows(PING)

    async def close(self) -> None:
        self._closed = True
        if self._db is not None:
            self._db.close()
            self._db = None

    # SQLite keeps moments as UTC text ('YYYY-MM-DD HH:MM:SS[.ffffff]'), which sorts in time order.

    def time(self, moment: datetime | None) -> str | None:
        return None if moment is None else moment.astimezone(UTC).replace(tzinfo=None).isoformat(" ", "microseconds")

    def seconds(self, moment: datetime | None) -> str | None:
        return None if moment is None else format_time(moment)

    def day(self, value: date | None) -> str | None:
        return None if value is None else value.isoformat()

    def read_time(self, value: Any) -> datetime | None:
        if not value:
            return None
        moment = datetime.fromisoformat(value)
        return moment.replace(tzinfo=UTC) if moment.tzinfo is None else moment.astimezone(UTC)

    def read_day(self, value: Any) -> date | None:
        return date.fromisoformat(value) if value else None


class SQLiteStore(Store):
    db: SQLiteDatabase

    def __init__(self, path: Path, *, timeout: float = 5.0) -> None:
        super().__init__(SQLiteDatabase(path, timeout=timeout))


def _run_to_end(coroutine: Coroutine[Any, Any, T]) -> T:
    """Run a transaction's work, which must finish without waiting: the connection is shared."""
    try:
        coroutine.send(None)
    except StopIteration as done:
        return done.value
    coroutine.close()
    raise RuntimeError("a SQLite transaction waited for something other than its own statements")


def _locked(exc: Exception) -> bool:
    if not isinstance(exc, sqlite3.Error):
        return False
    code = getattr(exc, "sqlite_errorcode", None)
    if code is not None:
        return code & 0xFF in LOCKED
    return "locked" in str(exc)


def _unavailable(exc: Exception) -> StoreUnavailable:
    # Disk full, I/O errors, an unreadable or read-only file are the database being
    # unavailable; anything else (a constraint, a closed cursor) is a bug: say so in the log.
    if not isinstance(exc, (sqlite3.OperationalError, OSError)) and type(exc) is not sqlite3.DatabaseError:
        log.error("unexpected SQLite error, answered as the database being unavailable", exc_info=exc)
    return StoreUnavailable(f"The database is not available: {exc}")


class _Patience:
    """How long to wait for another process's lock: 1 ms, doubling up to 50 ms, `timeout` s in all."""

    def __init__(self, timeout: float) -> None:
        self.timeout = timeout
        self.deadline = time.monotonic() + timeout
        self.pause = FIRST_WAIT

    async def wait(self) -> None:
        """Sleep before the next attempt; StoreUnavailable once the time is up."""
        left = self.deadline - time.monotonic()
        if left <= 0:
            raise StoreUnavailable(f"The database is locked by another process (waited {self.timeout:g} s).")
        await asyncio.sleep(min(self.pause, left))
        self.pause = min(self.pause * 2, LONGEST_WAIT)
