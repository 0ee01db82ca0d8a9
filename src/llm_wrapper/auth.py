"""Who is calling: the bearer token of a request, admitted (and counted) or identified.

The API layer and the gateway share one `Authorizer`; `tokens.py` holds the
rules it applies (format, hashing, expiry, the daily limit).
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import replace
from datetime import datetime

from . import metrics
from .admissions import Admissions
from .errors import GatewayError, RateLimited
from .store import Store
from .tokens import (
    Grant,
    TokenRecord,
    admit,
    bearer_token,
    identify,
    ratelimit_headers,
    release,
    utc_now,
)

log = logging.getLogger(__name__)


class Authorizer:
    def __init__(self, store: Store, clock: Callable[[], datetime] = utc_now) -> None:
        self.store = store
        self.clock = clock
        self._admissions = Admissions(store)

    async def admit(self, token: str) -> Grant:
        """Authorise and count one request with this token (from `bearer_token`), in one
        statement; raises 401 or 429."""
        try:
            return await admit(self.store, token, self.clock(), self._admissions.authorize)
        except RateLimited:
            metrics.RATE_LIMITED.inc()
            raise

    async def identify(self, authorization: str | None) -> TokenRecord:
        """The caller's token, checked but not counted; raises 401."""
        return await identify(self.store, bearer_token(authorization), self.clock())

    async def give_back(self, token: str, grant: Grant) -> Grant:
        """Give back a request `admit` counted that got no answer through no fault of the caller;
        returns the grant as it now stands. A database that cannot take it back is logged, not raised:
        the caller's error is already the answer."""
        try:
            await release(self.store, token, grant)
        except GatewayError as exc:
            log.warning("could not give back a failed request of %s: %s", grant.username, exc.message)
            return grant
        return replace(grant, requests_today=max(0, grant.requests_today - 1))

    def headers_for(self, grant: Grant | TokenRecord) -> dict[str, str]:
        """The `x-ratelimit-*` headers every authenticated response carries."""
        return ratelimit_headers(grant, self.clock())
