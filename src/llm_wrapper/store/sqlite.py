"""The embedded store: one SQLite file in WAL mode, shared safely by several worker processes."""

from __future__ import annotations

import sqlite3
from datetime import UTC, date, datetime
from pathlib import Path

from ..tokens import Grant, TokenRecord, format_time
from .base import Store, StoreUnavailable
from .migrations import MIGRATIONS
from .sqlite_monitors import SQLiteMonitorStore

# One statement checks and counts, so no two processes can both take the last request.
# `last_request_date >= :today` rather than `=`: an instance whose clock lags a few
# seconds behind another's just after midnight keeps counting the newer day instead
# of restarting it. Dates and times are ISO text, which compares in time order.
AUTHORIZE = """
UPDATE tokens SET
    request_count = CASE WHEN last_request_date >= :today THEN request_count + 1 ELSE 1 END,
    last_request_date = CASE WHEN last_request_date >= :today THEN last_request_date ELSE :today END,
    lifetime_requests = lifetime_requests + 1
WHERE token_hash = :hash
  AND (expiry IS NULL OR expiry > :now)
  AND (CASE WHEN last_request_date >= :today THEN request_count ELSE 0 END) < rate_limit
RETURNING username, rate_limit, request_count, lifetime_requests, expiry
"""

TOKEN_COLUMNS = (
    "token_hash, username, expiry, rate_limit, request_count, last_request_date, "
    "lifetime_requests, created_at"
)


def _time(text: str | None) -> datetime | None:
    if not text:
        return None
    return datetime.fromisoformat(text).replace(tzinfo=UTC)


def _record(row: tuple) -> TokenRecord:
    return TokenRecord(
        token_hash=row[0],
        username=row[1],
        expiry=_time(row[2]),
        rate_limit=row[3],
        request_count=row[4],
        last_request_date=date.fromisoformat(row[5]) if row[5] else None,
        lifetime_requests=row[6],
        created_at=_time(row[7]),
    )


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


class SQLiteStore(SQLiteMonitorStore, Store):
    dialect = "sqlite"

    def __init__(self, path: Path, *, timeout: float = 5.0) -> None:
        self.path = path
        path.parent.mkdir(parents=True, exist_ok=True)
        self.db = sqlite3.connect(
            str(path), isolation_level=None, check_same_thread=False, timeout=timeout
        )
        self.db.execute("PRAGMA journal_mode=WAL")
        self.db.execute("PRAGMA synchronous=NORMAL")
        self.db.execute("PRAGMA foreign_keys=ON")

    def execute(self, sql: str, params: tuple | dict = ()) -> sqlite3.Cursor:
        try:
            return self.db.execute(sql, params)
        except sqlite3.OperationalError as exc:
            if "locked" in str(exc) or "unable to open" in str(exc) or "disk I/O" in str(exc):
                raise StoreUnavailable(f"The database is not available: {exc}") from None
            raise

    async def migrate(self) -> list[str]:
        applied: list[str] = []
        self.db.execute("BEGIN IMMEDIATE")  # one process migrates; the others wait, then see it done
        try:
            self.db.execute(
                "CREATE TABLE IF NOT EXISTS schema_migrations (name TEXT PRIMARY KEY, applied_at TEXT NOT NULL)"
            )
            done = {row[0] for row in self.db.execute("SELECT name FROM schema_migrations")}
            for name, statements, _ in MIGRATIONS:
                if name in done:
                    continue
                for statement in statements:
                    self.db.execute(statement)
                self.db.execute(
                    "INSERT INTO schema_migrations (name, applied_at) VALUES (?, ?)",
                    (name, format_time(datetime.now(UTC))),
                )
                applied.append(name)
            self.db.execute("COMMIT")
        except BaseException:
            self.db.execute("ROLLBACK")
            raise
        return applied

    async def close(self) -> None:
        self.db.close()

    async def ping(self) -> None:
        self.execute("SELECT 1").fetchone()

    async def authorize(self, token_hash: str, now: datetime) -> Grant | None:
        today = now.astimezone(UTC).date().isoformat()
        # fetchall, not fetchone: the statement must run to its end, which commits and
        # releases the write lock now rather than when the cursor happens to be freed.
        rows = self.execute(AUTHORIZE, {"hash": token_hash, "today": today, "now": format_time(now)}).fetchall()
        if not rows:
            return None
        row = rows[0]
        return Grant(row[0], row[1], row[2], row[3], _time(row[4]))

    async def add_token(
        self, *, token_hash: str, username: str, expiry: datetime, rate_limit: int, now: datetime
    ) -> None:
        self.execute(
            "INSERT INTO tokens (token_hash, username, expiry, rate_limit, created_at) VALUES (?, ?, ?, ?, ?)",
            (token_hash, username, format_time(expiry), rate_limit, format_time(now)),
        )

    async def import_token(self, record: TokenRecord) -> bool:
        cursor = self.execute(
            f"INSERT INTO tokens ({TOKEN_COLUMNS}) VALUES (?, ?, ?, ?, ?, ?, ?, ?) "
            "ON CONFLICT (token_hash) DO NOTHING",
            (
                record.token_hash,
                record.username,
                format_time(record.expiry) if record.expiry else None,
                record.rate_limit,
                record.request_count,
                record.last_request_date.isoformat() if record.last_request_date else None,
                record.lifetime_requests,
                format_time(record.created_at or datetime.now(UTC)),
            ),
        )
        return cursor.rowcount == 1

    async def get_token(self, token_hash: str) -> TokenRecord | None:
        row = self.execute(f"SELECT {TOKEN_COLUMNS} FROM tokens WHERE token_hash = ?", (token_hash,)).fetchone()
        return _record(row) if row else None

    async def list_tokens(self) -> list[TokenRecord]:
        rows = self.execute(f"SELECT {TOKEN_COLUMNS} FROM tokens ORDER BY username, created_at").fetchall()
        return [_record(r) for r in rows]

    async def delete_token(self, token_hash: str) -> bool:
        return self.execute("DELETE FROM tokens WHERE token_hash = ?", (token_hash,)).rowcount == 1
