"""Noticing a client that left: its next ASGI message is `http.disconnect`.

uvicorn does not cancel a request's task when the client goes; the only way to
know is to wait on `receive()` beside the work, which costs a task. `ClientWatch`
starts that task only once the work has taken `WATCH_AFTER` seconds (a timer
costs a fraction of a task, and nearly every call that is not an LLM's finishes
sooner); a client that left earlier is noticed then, since `receive()` answers
`http.disconnect` at once for a connection already closed.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Mapping
from typing import Any

Receive = Callable[[], Awaitable[Mapping[str, Any]]]

WATCH_AFTER = 0.05  # seconds


async def until_disconnect(receive: Receive) -> None:
    while (await receive())["type"] != "http.disconnect":
        pass


class ClientWatch:
    """`with ClientWatch(receive):` cancels the current task if the client disconnects inside the
    block; `left` then says so, and the cancel is undone on leaving the block (the caller turns the
    `CancelledError` it caught into its answer). Without `receive` it watches nothing."""

    __slots__ = ("_receive", "_task", "_timer", "_watcher", "left")

    def __init__(self, receive: Receive | None) -> None:
        self._receive = receive
        self._task: asyncio.Task[Any] | None = None
        self._timer: asyncio.TimerHandle | None = None
        self._watcher: asyncio.Future[None] | None = None
        self.left = False

    def __enter__(self) -> ClientWatch:
        if self._receive is not None:
            self._task = asyncio.current_task()
            self._timer = asyncio.get_running_loop().call_later(WATCH_AFTER, self._watch)
        return self

    def _watch(self) -> None:
        self._timer = None
        assert self._receive is not None
        self._watcher = asyncio.ensure_future(until_disconnect(self._receive))
        self._watcher.add_done_callback(self._gone)

    def _gone(self, watcher: asyncio.Future[None]) -> None:
        if not watcher.cancelled() and watcher.exception() is None and self._task is not None:
            self.left = True
            self._task.cancel()

    def __exit__(self, *exc: object) -> None:
        if self._timer is not None:
            self._timer.cancel()
        if self._watcher is not None:
            self._watcher.remove_done_callback(self._gone)
            self._watcher.cancel()
        if self.left and self._task is not None:
            self._task.uncancel()
