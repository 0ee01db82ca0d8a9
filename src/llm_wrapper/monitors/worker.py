"""The background loop each server process runs: pending event fetches at once, the sweep periodically.

Work is claimed row by row in the database, so any number of processes and
instances may run this loop side by side. It sleeps until the next fetch is
due, the next sweep, a webhook's wake-up, or at most `MAX_IDLE` (to notice work
stored by other processes).
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import TYPE_CHECKING

from ..store.base import StoreUnavailable
from .service import MonitorService

if TYPE_CHECKING:
    from ..settings import Settings

log = logging.getLogger(__name__)

MAX_IDLE = 30.0
AFTER_ERROR = 5.0


async def run(service: MonitorService, sweep_seconds: float) -> None:
    """Run until cancelled; each round's failures are logged and the loop goes on."""
    next_sweep = time.monotonic()
    while True:
        service.wake.clear()
        try:
            if time.monotonic() >= next_sweep:
                report = await service.sweep()
                if report.deactivated or report.cancelled or report.cancel_failed:
                    log.info("monitor sweep: %s", report)
                next_sweep = time.monotonic() + max(1.0, sweep_seconds)
            await service.process_pending()
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


@asynccontextmanager
async def running(service: MonitorService, settings: Settings) -> AsyncIterator[MonitorService]:
    """For the app's lifespan: the background loop, cancelled cleanly (claims handed back) at shutdown."""
    if settings.parallel_webhook_secret is None or not settings.parallel_webhook_secret.get_secret_value():
        log.warning("PARALLEL_WEBHOOK_SECRET is not set: monitor webhooks are accepted unsigned")
    task = asyncio.create_task(run(service, settings.monitor_sweep_seconds), name="monitor-background")
    try:
        yield service
    finally:
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)
        await service.close()
