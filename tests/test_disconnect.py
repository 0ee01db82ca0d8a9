"""`ClientWatch`: the work inside it is cancelled when the client disconnects, and only then."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

from llm_wrapper.disconnect import ClientWatch


async def gone() -> dict[str, Any]:
    return {"type": "http.disconnect"}


async def still_here() -> dict[str, Any]:
    await asyncio.Event().wait()
    return {"type": "http.disconnect"}


async def test_a_client_that_left_cancels_the_work_and_the_cancel_is_undone() -> None:
    with ClientWatch(gone) as watch:
        with pytest.raises(asyncio.CancelledError):
            await asyncio.sleep(30)
    assert watch.left
    task = asyncio.current_task()
    assert task is not None and task.cancelling() == 0
    await asyncio.sleep(0)  # not cancelled any more


async def test_a_client_still_there_is_left_alone() -> None:
    with ClientWatch(still_here) as watch:
        await asyncio.sleep(0.1)  # long enough for the watch to start
    assert not watch.left
    with ClientWatch(None) as nothing:
        await asyncio.sleep(0)
    assert not nothing.left


async def test_a_cancel_that_is_not_the_clients_is_not_swallowed() -> None:
    async def work() -> None:
        with ClientWatch(still_here):
            await asyncio.sleep(30)

    task = asyncio.ensure_future(work())
    await asyncio.sleep(0.01)
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
