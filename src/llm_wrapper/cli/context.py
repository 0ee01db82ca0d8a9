"""What every command needs: its settings, a store for one piece of work, and the bad-argument error."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from typing import TypeVar

import click
from pydantic import ValidationError

from ..settings import Settings, SettingsError, load_settings
from ..store import Store, open_store

T = TypeVar("T")


class BadArgument(click.UsageError):
    """A value the user gave is wrong; exit 2 with one line."""


def settings_of(ctx: click.Context) -> Settings:
    """The settings, read from the environment once per invocation (SettingsError: exit 2)."""
    root = ctx.find_root()
    if root.obj is None:
        try:
            root.obj = load_settings()
        except ValidationError as exc:  # a value of the wrong type, e.g. MONITOR_TTL_HOURS=abc
            first = exc.errors()[0]
            name = ".".join(str(part) for part in first["loc"]).upper()
            raise SettingsError(f"{name}: {first['msg']}") from None
    return root.obj


def run_with_store(settings: Settings, work: Callable[[Store], Awaitable[T]]) -> T:
    """Open (and migrate) the store, run `work` with it, close it; `work`'s errors pass on."""

    async def main() -> T:
        store = open_store(settings)
        try:
            await store.migrate()
            return await work(store)
        finally:
            await store.close()

    return asyncio.run(main())
