"""The background loop each server process runs: pending event fetches at once, the sweep periodically.

Work is claimed row by row in the database, so any number of processes and
instances may run this loop side by side. It sleeps until the next fetch is
due, the next sweep, a webhook's wake-up, or at most `MAX_IDLE` (to notice work
stored by other processes). A round fetches at most one event group a monitor
and MONITOR_FETCHES_PER_ROUND in all, and rounds that fetched start at least
`ROUND_SECONDS` apart, so no flood of webhooks makes more calls than that.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import TYPE_CHECKING

from ..metrics import ACTIVE_MONITORS
from ..store.base import StoreUnavailable
from .service import MonitorService

if TYPE_CHECKING:
    from ..settings import Settings

log = logging.getLogger(__name__)

MAX_IDLE = 30.0
AFTER_ERROR = 5.0
ROUND_SECONDS = 1.0  # rounds that fetched start at least this far apart: bounds calls to Parallel


async def run(service: MonitorService, sweep_seconds: float) -> None:
    """Run until cancelled; each round's failures are logged and the loop goes on."""
    next_sweep = time.monotonic()
    while True:
        service.wake.clear()
        started, fetched = time.monotonic(), False
        try:
            if time.monotonic() >= next_sweep:
                swept = await service.sweep()
                if swept.deactivated or swept.cancelled or swept.cancel_failed:
                    log.info("monitor sweep: %s", swept)
                next_sweep = time.monotonic() + max(1.0, sweep_seconds)
            ACTIVE_MONITORS.set(await service.store.count_active_monitors())  # scrapes never query
            round_ = await service.process_pending()
            fetched = bool(round_.fetched or round_.retrying or round_.failed)
            wait = min(MAX_IDLE, next_sweep - time.monotonic())
            due = await service.store.next_fetch_due()
            if due is not None:
                wait = min(wait, (due - service.clock()).total_seconds())
        except asyncio.CancelledError:
            raise
        except StoreUnavailable as exc:
            log.warning("monitor background work waits for the database: %s", exc.message)
            wait = AFTER_ERROR
        except Exception:
            log.exception("monitor background work failed; trying again shortly")
            wait = AFTER_ERROR
        try:
            await asyncio.wait_for(service.wake.wait(), timeout=max(0.05, wait))
        except TimeoutError:
            pass
        if fetched:  # however many webhooks woke us meanwhile
            await asyncio.sleep(max(0.0, started + ROUND_SECONDS - time.monotonic()))


@asynccontextmanager
async def running(service: MonitorService, settings: Settings) -> AsyncIterator[MonitorService]:
    """For the app's lifespan: the background loop, cancelled cleanly (claims handed back) at shutdown."""
    if settings.parallel_webhook_secret is None or not settings.parallel_webhook_secret.get_secret_value():
        log.warning(
            "PARALLEL_WEBHOOK_SECRET is not set: monitor webhooks are accepted unsigned, so anyone who can "
            "reach /webhooks/parallel-monitor can make this gateway fetch events from Parallel for any "
            "monitor id it knows (at most %d fetches a second a process) and mark runs of them; "
            "set it to the signing secret Parallel shows for your account",
            settings.monitor_fetches_per_round,
        )
    task = asyncio.create_task(run(service, settings.monitor_sweep_seconds), name="monitor-background")
    try:
        yield service
    finally:
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)
        await service.close()
