"""The one storage interface; SQLite and PostgreSQL implement it.

Every method is a coroutine. The SQLite store runs its statements directly on
the event loop: each is a few microseconds against a local WAL file, which is
cheaper than a hop to a thread. The PostgreSQL store uses an asyncpg pool.
Methods raise `StoreUnavailable` when the database cannot be reached.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from datetime import datetime

from ..errors import ServiceUnavailable
from ..tokens import Grant, TokenRecord


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
