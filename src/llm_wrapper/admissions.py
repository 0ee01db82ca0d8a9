"""Admitting the requests of one token that arrive together with one statement.

Under load, many requests of the same token arrive in the same turn of the event
loop. Each used to cost its own write (a SQLite commit, a PostgreSQL round trip);
now they wait for the end of that turn and are counted together: one statement per token
takes all `n` of them if `n` are left of the day's limit (`TokenStore.authorize`),
and each gets its own grant, numbered in the order they came. If not all fit, or
the token is refused, each is tried again on its own, exactly as before, so the
limit holds to the request on any number of workers and instances. A lone request
waits only for the rest of the current turn.
"""

from __future__ import annotations

import asyncio
from dataclasses import replace
from datetime import datetime

from .store import Store
from .tokens import Grant


class Admissions:
    def __init__(self, store: Store) -> None:
        self.store = store
        self._waiting: dict[str, list[asyncio.Future[Grant | None]]] = {}
        self._now: datetime | None = None

    async def authorize(self, token_hash: str, now: datetime) -> Grant | None:
        """`store.authorize(token_hash, now)`, counted together with this turn's others."""
        loop = asyncio.get_running_loop()
        answer: asyncio.Future[Grant | None] = loop.create_future()
        if not self._waiting:
            self._now = now
            loop.call_soon(self._admit_waiting)
        waiting = self._waiting.get(token_hash)
        if waiting is None:
            self._waiting[token_hash] = [answer]
        else:
            waiting.append(answer)
        return await answer

    def _admit_waiting(self) -> None:
        batch, self._waiting = self._waiting, {}
        assert self._now is not None
        task = asyncio.ensure_future(self._admit(batch, self._now))
        task.add_done_callback(_retrieve)

    async def _admit(self, batch: dict[str, list[asyncio.Future[Grant | None]]], now: datetime) -> None:
        try:
            if len(batch) == 1:
                await self._admit_token(*next(iter(batch.items())), now)
            else:  # several tokens: their statements run side by side (on PostgreSQL, each its round trip)
                await asyncio.gather(*(self._admit_token(h, answers, now) for h, answers in batch.items()))
        finally:  # cancelled (shutting down): nobody may wait for ever
            for answers in batch.values():
                for answer in answers:
                    if not answer.done():
                        answer.cancel()

    async def _admit_token(self, token_hash: str, answers: list[asyncio.Future[Grant | None]], now: datetime) -> None:
        try:
            await self._count(token_hash, answers, now)
        except Exception as exc:  # the store's error is each waiter's, as it would be alone
            for answer in answers:
                if not answer.done():
                    answer.set_exception(exc)

    async def _count(self, token_hash: str, answers: list[asyncio.Future[Grant | None]], now: datetime) -> None:
        n = len(answers)
        last = await self.store.authorize(token_hash, now, n) if n > 1 else None
        if last is None:  # alone, or not all of them fit (or none do): one at a time, in order
            for answer in answers:
                _settle(answer, await self.store.authorize(token_hash, now))
            return
        for i, answer in enumerate(answers):
            behind = n - 1 - i
            _settle(answer, replace(
                last, requests_today=last.requests_today - behind, lifetime_requests=last.lifetime_requests - behind,
            ))


def _settle(answer: asyncio.Future[Grant | None], grant: Grant | None) -> None:
    # A request cancelled while it waited (its client left) stays counted if it was admitted,
    # as one whose client leaves later does (README, "abandoned requests").
    if not answer.done():
        answer.set_result(grant)


def _retrieve(task: asyncio.Task[None]) -> None:
    if not task.cancelled():
        task.exception()  # handed to the waiters already; retrieved so that asyncio does not log it
