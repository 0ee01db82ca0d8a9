"""What the token and monitor stores need of a database, and SQL written once for both.

A statement is written once with named parameters (`:name`) and slots for what
the dialects spell differently (`{true}`, `{false}`, `{skip_locked}`). `sql()`
renders it for both dialects when the module defining it is imported: sqlite3
takes `:name` with a dict, asyncpg takes `$1, $2, …` with the values in
`Query.names` order.

A backend implements `Database`: it runs statements on its connection or pool
and turns every database failure into `StoreUnavailable` (503); it runs
transactions; and it encodes what its driver does not take as it is (SQLite
keeps times and dates as ISO text, PostgreSQL takes datetimes and dates).

Text that PostgreSQL cannot store (a NUL character, a lone surrogate) is
refused by `check_text` with `InvalidRequest` (400) before it reaches either
database, so a caller's bad input is never mistaken for an outage.
"""

from __future__ import annotations

import re
from abc import ABC, abstractmethod
from collections.abc import Callable, Coroutine, Mapping, Sequence
from dataclasses import dataclass
from datetime import date, datetime
from typing import Any, Protocol, TypeVar

from ..errors import InvalidRequest, ServiceUnavailable

T = TypeVar("T")
Row = Sequence[Any]
Params = Mapping[str, Any]
NO_PARAMS: Params = {}


class StoreUnavailable(ServiceUnavailable):
    """The database cannot be used now (down, locked for too long, disk full …): 503."""

    code = "database_unavailable"


def check_text(value: object, param: str) -> str:
    """`value` as text either database can store; InvalidRequest (400) naming `param` if not."""
    if not isinstance(value, str):
        raise InvalidRequest(f"'{param}' must be a string.", param=param)
    if "\x00" in value:
        raise InvalidRequest(f"'{param}' must not contain NUL characters.", param=param)
    try:
        value.encode("utf-8")
    except UnicodeEncodeError:
        raise InvalidRequest(f"'{param}' is not valid Unicode text.", param=param) from None
    return value


def clean_text(value: str | None) -> str | None:
    """Free text from elsewhere (an error message), stored with NUL characters replaced."""
    if value is None or "\x00" not in value:
        return value
    return value.replace("\x00", "\ufffd")


# SQL written once ------------------------------------------------------------

SLOTS = {
    "sqlite": {"true": "1", "false": "0", "skip_locked": ""},
    "postgresql": {"true": "TRUE", "false": "FALSE", "skip_locked": "FOR UPDATE SKIP LOCKED"},
}
_PARAMETER = re.compile(r"(?<![:\w]):([A-Za-z_]\w*)")  # `:name`, not a `::type` cast


@dataclass(frozen=True, slots=True)
class Query:
    """One statement in both dialects; on PostgreSQL `$n` takes `params[names[n - 1]]`."""

    sqlite: str
    postgres: str
    names: tuple[str, ...]


def sql(text: str, **parts: str | Mapping[str, str]) -> Query:
    """Render a statement written with `:name` parameters and `{slot}`s for both dialects;
    `parts` fill further `{name}`s, the same in both or one text per dialect."""
    names: list[str] = []

    def number(match: re.Match[str]) -> str:
        if match.group(1) not in names:
            names.append(match.group(1))
        return f"${names.index(match.group(1)) + 1}"

    def render(dialect: str) -> str:
        filled = {k: v if isinstance(v, str) else v[dialect] for k, v in parts.items()}
        return text.format_map({**SLOTS[dialect], **filled})

    return Query(render("sqlite"), _PARAMETER.sub(number, render("postgresql")), tuple(names))


# what a backend provides ---------------------------------------------------------


class Executor(Protocol):
    """Runs statements: on their own (each commits) or inside `Database.transact`."""

    async def rows(self, query: Query, params: Params = NO_PARAMS) -> list[Row]:
        """Every row the statement returns (a RETURNING statement is run to its end)."""
        ...

    async def run(self, query: Query, params: Params = NO_PARAMS) -> int:
        """Run a statement without RETURNING; the number of rows it changed."""
        ...


class Database(ABC):
    """One backend. Every method raises StoreUnavailable when the database cannot be used."""

    dialect: str

    @abstractmethod
    async def rows(self, query: Query, params: Params = NO_PARAMS) -> list[Row]: ...

    @abstractmethod
    async def run(self, query: Query, params: Params = NO_PARAMS) -> int: ...

    @abstractmethod
    async def transact(
        self, work: Callable[[Executor], Coroutine[Any, Any, T]], *, lock: tuple[int, str] | None = None
    ) -> T:
        """Run `work` in one transaction and commit, or roll back if it raises.

        `work` only runs statements on the executor it is given (it may be run
        again from the start: SQLite retries a transaction that met a lock).
        `lock` (a class and a key) serialises transactions with the same lock
        across every process; SQLite has one writer at a time anyway.
        """

    @abstractmethod
    async def migrate(self) -> list[str]:
        """Apply the migrations not yet recorded; safe when several processes start at once."""

    @abstractmethod
    async def ping(self) -> None:
        """Raise StoreUnavailable unless the database answers."""

    @abstractmethod
    async def close(self) -> None: ...

    # encoding: each returns what the driver takes, or reads back what it gave

    @abstractmethod
    def time(self, moment: datetime | None) -> Any:
        """A moment to the microsecond (monitor columns)."""

    @abstractmethod
    def seconds(self, moment: datetime | None) -> Any:
        """A moment to the second (token columns; SQLite keeps their original text format)."""

    @abstractmethod
    def day(self, value: date | None) -> Any: ...

    @abstractmethod
    def read_time(self, value: Any) -> datetime | None:
        """A stored moment as an aware UTC datetime; ValueError or TypeError if unreadable."""

    @abstractmethod
    def read_day(self, value: Any) -> date | None: ...
