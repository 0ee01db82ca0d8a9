"""What can go wrong between the gateway and PostgreSQL, turned into `StoreUnavailable` (503).

Every failure of the server or of the way to it is one: the server refusing or
dropping connections (`PostgresConnectionError`, `CannotConnectNowError`,
`AdminShutdownError` and the other `OperatorInterventionError`s), the client
(`InterfaceError`, `InternalClientError`), the network (`OSError`), a pool or
statement timeout (`TimeoutError`), a schema not migrated yet. Input a caller
could get wrong (a NUL character in text, say) is refused before it is sent
(`database.check_text`), so it never shows up here as an outage. An error that
is neither an outage nor expected (a constraint, a type mismatch: a bug) is
answered the same way but logged with its traceback.
"""

from __future__ import annotations

import logging

import asyncpg

from .database import StoreUnavailable

log = logging.getLogger(__name__)

DATABASE_ERRORS = (asyncpg.PostgresError, asyncpg.InterfaceError, asyncpg.InternalClientError, OSError)

# SQLSTATE classes of a server that cannot serve now: connection exception,
# insufficient resources, operator intervention (shutdown, cannot connect now),
# system error, no such database, bad credentials.
OUTAGE_CLASSES = {"08", "53", "57", "58", "3D", "28"}
NOT_MIGRATED_YET = "42P01"  # undefined table: the server came up before the schema


def unavailable(exc: BaseException) -> StoreUnavailable:
    """The StoreUnavailable to raise for one of DATABASE_ERRORS."""
    if not _is_outage(exc):
        log.error("unexpected PostgreSQL error, answered as the database being unavailable", exc_info=exc)
    return StoreUnavailable(f"The database is not available ({type(exc).__name__}).")


def _is_outage(exc: BaseException) -> bool:
    if isinstance(exc, asyncpg.PostgresError):
        state = str(getattr(exc, "sqlstate", "") or "")
        return state[:2] in OUTAGE_CLASSES or state == NOT_MIGRATED_YET
    return not isinstance(exc, asyncpg.exceptions.DataError)  # a Python value asyncpg cannot send: a bug
