"""The monitor part of the Store, on SQLite and PostgreSQL: one active monitor a user, leases, claims."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta

from llm_wrapper.monitors.records import Monitor

from .fixtures.postgres import open_backend

T0 = datetime(2026, 5, 1, 12, 0, tzinfo=UTC)


def monitor(monitor_id: str, username: str = "alice", at: datetime = T0) -> Monitor:
    return Monitor(monitor_id=monitor_id, username=username, query="q", frequency="1d", created_at=at)


async def fetched_group(store, monitor_id: str, group: str, at: datetime = T0) -> None:
    assert await store.add_event_group(monitor_id=monitor_id, event_group_id=group, webhook_id=None, received_at=at)
    (claimed,) = [g for g in await store.claim_fetches(at, at + timedelta(minutes=2), 10) if g.event_group_id == group]
    await store.finish_fetch(claimed.id, now=at, events=[
        {"event_id": "e1", "event_date": "2026-05-01", "text": f"news of {group}", "source_urls": ["https://a.example"]}
    ])


async def test_one_active_monitor_a_user(store):
    assert await store.insert_monitor(monitor("m1")) == []
    assert await store.insert_monitor(monitor("b1", "bob")) == []
    (replaced,) = await store.insert_monitor(monitor("m2", at=T0 + timedelta(hours=1)))
    assert replaced.monitor_id == "m1" and not replaced.active and replaced.cancel_pending
    listed = await store.list_monitors("alice")
    assert [(m.monitor_id, m.active) for m in listed] == [("m2", True), ("m1", False)]
    assert len(await store.list_monitors()) == 3
    assert (await store.get_monitor("b1")).active


async def test_concurrent_creates_leave_one_active(store_backend, store):
    other = open_backend(store_backend)
    try:
        await other.migrate()
        await asyncio.gather(*(
            (store if i % 2 else other).insert_monitor(monitor(f"m{i}", at=T0 + timedelta(seconds=i)))
            for i in range(6)
        ))
        assert sum(m.active for m in await store.list_monitors("alice")) == 1
    finally:
        await other.close()


async def test_expiry_and_cancel_claims(store):
    await store.insert_monitor(monitor("old", at=T0))
    await store.insert_monitor(monitor("new", "bob", at=T0 + timedelta(hours=30)))
    now = T0 + timedelta(hours=31)
    assert [m.monitor_id for m in await store.expire_monitors(now - timedelta(hours=24), now)] == ["old"]
    assert await store.expire_monitors(now - timedelta(hours=24), now) == []  # each expired once
    (claimed,) = await store.claim_cancels(now, now + timedelta(minutes=2), 10)
    assert claimed.monitor_id == "old" and claimed.cancel_attempts == 1
    assert await store.claim_cancels(now, now + timedelta(minutes=2), 10) == []  # leased
    await store.finish_cancel("old", remote_state=None, error="boom", retry_at=now + timedelta(minutes=1))
    assert await store.claim_cancels(now + timedelta(seconds=30), now + timedelta(minutes=3), 10) == []
    (again,) = await store.claim_cancels(now + timedelta(minutes=1), now + timedelta(minutes=3), 10)
    assert again.cancel_attempts == 2 and again.last_error == "boom"
    await store.finish_cancel("old", remote_state="cancelled", error=None, retry_at=None)
    done = await store.get_monitor("old")
    assert not done.cancel_pending and done.remote_state == "cancelled" and done.last_error is None
    assert await store.claim_cancels(now + timedelta(days=1), now + timedelta(days=2), 10) == []


async def test_event_groups_are_stored_once_and_fetches_are_leased(store):
    await store.insert_monitor(monitor("m1"))
    assert await store.add_event_group(monitor_id="m1", event_group_id="g1", webhook_id="w1", received_at=T0)
    assert not await store.add_event_group(monitor_id="m1", event_group_id="g1", webhook_id="w2", received_at=T0)
    assert not await store.add_event_group(monitor_id="m1", event_group_id="g2", webhook_id="w1", received_at=T0)
    assert await store.next_fetch_due() == T0
    (group,) = await store.claim_fetches(T0, T0 + timedelta(minutes=2), 10)
    assert group.fetch_attempts == 1 and await store.claim_fetches(T0, T0 + timedelta(minutes=2), 10) == []
    await store.finish_fetch(group.id, now=T0, error="500", retry_at=T0 + timedelta(seconds=5))
    assert await store.next_fetch_due() == T0 + timedelta(seconds=5)
    assert await store.count_updates("alice") == 0
    (group,) = await store.claim_fetches(T0 + timedelta(seconds=5), T0 + timedelta(minutes=3), 10)
    events = [{"event_id": "e", "event_date": "2026-04-30", "text": "t", "source_urls": ["https://u", "https://v"]}]
    await store.finish_fetch(group.id, now=T0, events=events)
    (stored,) = await store.list_event_groups("m1")
    assert stored.fetch_state == "fetched" and stored.events == events and stored.event_date == "2026-04-30"
    assert stored.source_urls == ["https://u", "https://v"] and await store.next_fetch_due() is None
    assert await store.count_updates("alice") == 1 and await store.count_updates("bob") == 0


async def test_failed_fetch_given_up_is_not_claimed_again(store):
    await store.insert_monitor(monitor("m1"))
    await store.add_event_group(monitor_id="m1", event_group_id="g1", webhook_id=None, received_at=T0)
    (group,) = await store.claim_fetches(T0, T0 + timedelta(minutes=2), 10)
    await store.finish_fetch(group.id, now=T0, error="gone")
    assert (await store.list_event_groups())[0].fetch_state == "failed"
    assert await store.claim_fetches(T0 + timedelta(days=1), T0 + timedelta(days=2), 10) == []


async def test_claim_updates_hands_each_group_to_one_caller(store_backend, store):
    await store.insert_monitor(monitor("m1"))
    await store.insert_monitor(monitor("b1", "bob"))
    for group in ("g1", "g2", "g3"):
        await fetched_group(store, "m1", group)
    await fetched_group(store, "b1", "gb")
    others = [open_backend(store_backend) for _ in range(3)]
    try:
        stores = [store, *others]
        results = await asyncio.gather(*(s.claim_updates("alice", T0 + timedelta(hours=1)) for s in stores * 3))
    finally:
        for other in others:
            await other.close()
    claimed = [g.event_group_id for result in results for g in result]
    assert sorted(claimed) == ["g1", "g2", "g3"]
    assert await store.count_updates("alice") == 0 and await store.count_updates("bob") == 1
    assert await store.last_processed_at("alice") == T0 + timedelta(hours=1)
    assert await store.last_processed_at("bob") is None
    assert await store.claim_updates("alice", T0 + timedelta(hours=2)) == []
