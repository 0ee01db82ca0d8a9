"""The ways a PostgreSQL server can be unreachable, turned into `StoreUnavailable` (503)."""

from __future__ import annotations

import asyncio
import functools
from collections.abc import Callable, Coroutine
from typing import Any, ParamSpec, TypeVar

import asyncpg

from .base import StoreUnavailable

P = ParamSpec("P")
T = TypeVar("T")

UNAVAILABLE = (
    OSError,
    asyncio.TimeoutError,
    asyncpg.InterfaceError,
    asyncpg.PostgresConnectionError,
    asyncpg.CannotConnectNowError,
    asyncpg.AdminShutdownError,
    # The schema is not there yet: the server started before the database and is still migrating.
    asyncpg.UndefinedTableError,
)


def guarded(method: Callable[P, Coroutine[Any, Any, T]]) -> Callable[P, Coroutine[Any, Any, T]]:
    """Decorate a store method: an unreachable database raises StoreUnavailable, nothing else changes."""

    @functools.wraps(method)
    async def wrapper(*args: P.args, **kwargs: P.kwargs) -> T:
        try:
            return await method(*args, **kwargs)
        except UNAVAILABLE as exc:
            raise StoreUnavailable(f"The database is not available ({type(exc).__name__}).") from None

    return wrapper
