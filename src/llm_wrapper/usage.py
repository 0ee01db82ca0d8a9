"""Usage recording off the hot path: the request path adds to memory, a flusher writes batches.

`UsageRecorder.add` is a dict lookup and a few additions. About once a second
(`USAGE_FLUSH_SECONDS`) the flusher swaps the pending deltas out and adds them to
the database in one transaction (`UsageStore.add`, which also brings each
touched token's budget spend up to date); a batch the database refused is kept
and tried again with the next one. `close()` (the app's shutdown, after the
requests in flight have finished) writes what is left.

Budgets are checked against the spend as last flushed, so a token can go over
its budget by the cost of the requests in flight when it is crossed plus the
requests that finish within one flush interval (on every process).
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable, Mapping
from datetime import datetime
from typing import Any

from .errors import GatewayError
from .pricing import tokens_of
from .store import Store
from .store.usage import UsageDelta, UsageKey
from .tokens import utc_now

log = logging.getLogger(__name__)


class UsageRecorder:
    def __init__(self, store: Store, clock: Callable[[], datetime] = utc_now, *, every: float = 1.0) -> None:
        self.store = store
        self.clock = clock
        self.every = every
        self._pending: dict[UsageKey, UsageDelta] = {}
        self._task: asyncio.Task[None] | None = None
        self._stop = asyncio.Event()
        self._failing = False

    def add(
        self, token_hash: str, username: str, model: str, *, failed: bool,
        usage: Mapping[str, Any] | None, cost: float, priced: bool,
    ) -> None:
        """Count one admitted request (never raises, never waits)."""
        key = (token_hash, self.clock().date(), model)
        delta = self._pending.get(key)
        if delta is None:
            delta = self._pending[key] = UsageDelta(username)
        delta.requests += 1
        if failed:
            delta.errors += 1
        if usage:
            prompt, _, completion = tokens_of(usage)
            delta.prompt_tokens += prompt
            delta.completion_tokens += completion
            delta.cost_usd += cost
            if not priced:
                delta.unpriced += 1

    def start(self) -> None:
        self._task = asyncio.create_task(self._run(), name="usage-flusher")

    async def _run(self) -> None:
        while not self._stop.is_set():
            try:
                await asyncio.wait_for(self._stop.wait(), self.every)
            except TimeoutError:
                pass
            await self.flush()

    async def flush(self) -> bool:
        """Write what is pending; True when nothing is left pending."""
        if not self._pending:
            return True
        batch, self._pending = self._pending, {}
        try:
            await self.store.usage.add(batch.items(), self.clock())
        except GatewayError as exc:
            for key, delta in batch.items():  # keep it for the next flush, with what came since
                later = self._pending.get(key)
                if later is not None:
                    delta.merge(later)
                self._pending[key] = delta
            if not self._failing:
                self._failing = True
                log.warning("usage: cannot write to the database (%s); keeping it to try again", exc.message)
            return False
        if self._failing:
            self._failing = False
            log.warning("usage: writing again")
        return True

    async def close(self) -> None:
        """Stop the flusher and write what is left (tried a few times if the database is busy)."""
        self._stop.set()  # not a cancel: a flush under way must finish, or its batch is lost
        if self._task is not None:
            await self._task
            self._task = None
        for _ in range(3):
            if await self.flush():
                return
            await asyncio.sleep(0.5)
        log.error("usage: %d rows could not be written at shutdown", len(self._pending))
