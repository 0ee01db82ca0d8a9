"""Requests of one token that arrive together are counted by one statement, and stay exact.

The same tests on both backends (the `store` fixture): SQLite and PostgreSQL.
"""

from __future__ import annotations

import asyncio

import openai
import pytest

from llm_wrapper.admissions import Admissions
from llm_wrapper.store import Store, StoreUnavailable
from llm_wrapper.tokens import hash_token

from .fixtures.inprocess import InProcessGateway
from .fixtures.postgres import open_backend
from .test_store import NOW, add


class Counting:
    """The store, with its `authorize` calls recorded (how many requests each took at once)."""

    def __init__(self, store: Store) -> None:
        self.store = store
        self.calls: list[int] = []

    async def authorize(self, token_hash, now, n=1):  # type: ignore[no-untyped-def]
        self.calls.append(n)
        return await self.store.authorize(token_hash, now, n)


async def test_requests_that_arrive_together_take_one_statement_and_are_numbered_in_order(store: Store) -> None:
    token_hash = hash_token(await add(store, rate_limit=100))
    counting = Counting(store)
    admissions = Admissions(counting)  # type: ignore[arg-type]
    grants = await asyncio.gather(*(admissions.authorize(token_hash, NOW) for _ in range(10)))
    assert counting.calls == [10]
    assert [g.requests_today for g in grants if g] == list(range(1, 11))
    assert [g.remaining for g in grants if g] == list(range(99, 89, -1))
    assert [g.lifetime_requests for g in grants if g] == list(range(1, 11))
    record = await store.get_token(token_hash)
    assert record is not None and (record.request_count, record.lifetime_requests) == (10, 10)


async def test_a_lone_request_is_one_statement_of_one(store: Store) -> None:
    token_hash = hash_token(await add(store, rate_limit=5))
    counting = Counting(store)
    admissions = Admissions(counting)  # type: ignore[arg-type]
    grant = await admissions.authorize(token_hash, NOW)
    assert counting.calls == [1] and grant is not None and grant.requests_today == 1


async def test_when_not_all_fit_the_first_ones_are_admitted_exactly_up_to_the_limit(store: Store) -> None:
    token_hash = hash_token(await add(store, rate_limit=7))
    other = hash_token(await add(store, rate_limit=3, username="bob"))
    counting = Counting(store)
    admissions = Admissions(counting)  # type: ignore[arg-type]
    grants = await asyncio.gather(
        *(admissions.authorize(token_hash, NOW) for _ in range(12)),
        *(admissions.authorize(other, NOW) for _ in range(2)),
    )
    mine, bobs = grants[:12], grants[12:]
    assert [g.requests_today if g else None for g in mine] == [1, 2, 3, 4, 5, 6, 7, *[None] * 5]
    assert [g.username if g else None for g in bobs] == ["bob", "bob"]
    assert counting.calls[0] == 12  # tried together first, then one at a time
    record = await store.get_token(token_hash)
    assert record is not None and record.request_count == 7


async def test_concurrent_batches_from_several_instances_never_exceed_the_limit(
    store: Store, store_backend: tuple[str, str]
) -> None:
    token_hash = hash_token(await add(store, rate_limit=50))
    others = [open_backend(store_backend) for _ in range(2)]
    try:
        admissions = [Admissions(s) for s in [store, *others]]

        async def wave() -> list:
            return await asyncio.gather(*(a.authorize(token_hash, NOW) for _ in range(9) for a in admissions))

        results = [g for batch in await asyncio.gather(*(wave() for _ in range(3))) for g in batch]
    finally:
        for s in others:
            await s.close()
    assert len(results) == 81
    granted = sorted(g.requests_today for g in results if g is not None)
    assert granted == list(range(1, 51))  # each count handed out once: no request counted twice


async def test_an_unknown_token_is_refused_for_each_waiter(store: Store) -> None:
    admissions = Admissions(store)
    assert await asyncio.gather(*(admissions.authorize("0" * 64, NOW) for _ in range(3))) == [None] * 3


async def test_a_store_failure_reaches_every_waiter(store: Store) -> None:
    class Broken:
        async def authorize(self, token_hash, now, n=1):  # type: ignore[no-untyped-def]
            raise StoreUnavailable("The database is not available.")

    admissions = Admissions(Broken())  # type: ignore[arg-type]
    results = await asyncio.gather(*(admissions.authorize(h, NOW) for h in ("a", "a", "b")), return_exceptions=True)
    assert all(isinstance(r, StoreUnavailable) for r in results)
    # and the next turn works again
    token_hash = hash_token(await add(store))
    assert (await Admissions(store).authorize(token_hash, NOW)) is not None


@pytest.mark.parametrize("n", [2, 5])
async def test_a_waiter_that_leaves_does_not_stop_the_others(store: Store, n: int) -> None:
    token_hash = hash_token(await add(store, rate_limit=10))
    admissions = Admissions(store)
    tasks = [asyncio.ensure_future(admissions.authorize(token_hash, NOW)) for _ in range(n)]
    await asyncio.sleep(0)
    tasks[0].cancel()
    results = await asyncio.gather(*tasks, return_exceptions=True)
    assert isinstance(results[0], asyncio.CancelledError)
    assert all(g is not None for g in results[1:])


async def test_the_statements_of_several_tokens_run_side_by_side(store: Store) -> None:
    hashes = [hash_token(await add(store, username=f"user{i}")) for i in range(4)]

    class Slow:
        """A store whose statements take a while, like a PostgreSQL round trip."""

        def __init__(self) -> None:
            self.running = self.most = 0

        async def authorize(self, token_hash, now, n=1):  # type: ignore[no-untyped-def]
            self.running += 1
            self.most = max(self.most, self.running)
            await asyncio.sleep(0.05)
            self.running -= 1
            return await store.authorize(token_hash, now, n)

    slow = Slow()
    admissions = Admissions(slow)  # type: ignore[arg-type]
    grants = await asyncio.gather(*(admissions.authorize(h, NOW) for h in hashes for _ in range(2)))
    assert slow.most == 4  # one statement per token, all four at once
    assert sorted((g.username, g.requests_today) for g in grants if g) == sorted(
        (f"user{i}", k) for i in range(4) for k in (1, 2)
    )


async def test_a_burst_through_the_openai_sdk_is_admitted_exactly_and_numbered(inproc: InProcessGateway) -> None:
    """The official client, many requests at once on one event loop: they share statements, and the
    limit and every answer's remaining count come out as they would one by one."""
    token = await inproc.add_token("burst", rate_limit=7)
    client = inproc.sdk(token)

    async def one() -> int | str:
        try:
            raw = await client.chat.completions.with_raw_response.create(
                model="gpt-test", messages=[{"role": "user", "content": "hi"}]
            )
        except openai.RateLimitError as exc:
            return f"429 {exc.response.headers['x-ratelimit-remaining-requests']}"
        assert raw.parse().object == "chat.completion"
        return int(raw.headers["x-ratelimit-remaining-requests"])

    results = await asyncio.gather(*(one() for _ in range(12)))
    assert sorted(r for r in results if isinstance(r, int)) == list(range(7))  # 6, 5, … 0: each once
    assert [r for r in results if isinstance(r, str)] == ["429 0"] * 5
    record = await inproc.services.store.get_token(hash_token(token))
    assert record is not None and (record.request_count, record.lifetime_requests) == (7, 7)


async def test_garbage_in_a_burst_is_refused_without_counting_the_others_twice(inproc: InProcessGateway) -> None:
    token = await inproc.add_token("mixed", rate_limit=100)
    headers = {"Authorization": f"Bearer {token}", "Content-Type": "application/json"}
    bodies = [b'{"model": "gpt-test", "messages": [{"role": "user", "content": "hi"}]}', b"\xff\x00{", b"[1, 2]"] * 4
    answers = await asyncio.gather(*(inproc.http.post("/v1/chat/completions", content=b, headers=headers) for b in bodies))
    assert sorted(a.status_code for a in answers) == [200] * 4 + [400] * 8
    assert all(set(a.json()["error"]) == {"message", "type", "param", "code"} for a in answers if a.status_code == 400)
    record = await inproc.services.store.get_token(hash_token(token))
    assert record is not None and record.request_count == 12  # a malformed body counts, once (README)
