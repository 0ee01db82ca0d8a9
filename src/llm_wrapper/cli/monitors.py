"""`llm-wrapper monitors create|list|deactivate|sweep`.

Bad arguments (and a missing Parallel key for `create`) exit 2 with one line,
having written nothing; Parallel failing exits 1 with one line.
"""

from __future__ import annotations

import json
import re
from collections.abc import Awaitable, Callable
from typing import TypeVar

import click

from ..errors import GatewayError, InvalidRequest, NotFound, ServiceUnavailable
from ..monitors.records import EVENT_TYPES, Monitor, cadence_of, parse_frequency
from ..monitors.service import MonitorService
from ..store import Store
from .context import BadArgument, run_with_store, settings_of
from .output import Cell, print_listing, say

T = TypeVar("T")


def with_service(ctx: click.Context, work: Callable[[MonitorService], Awaitable[T]]) -> T:
    settings = settings_of(ctx)

    async def run(store: Store) -> T:
        service = MonitorService(settings, store)
        try:
            return await work(service)
        finally:
            await service.close()

    try:
        return run_with_store(settings, run)
    except InvalidRequest as exc:
        raise BadArgument(exc.message) from None
    except ServiceUnavailable:
        raise
    except GatewayError as exc:
        raise click.ClickException(exc.message) from None


@click.group()
def monitors() -> None:
    """Create, list, deactivate and sweep Parallel monitors."""


@monitors.command("create")
@click.option("--username", required=True, help="Whose monitor it is (one active monitor a user).")
@click.option("--query", required=True, help="What to watch the web for.")
@click.option("--cadence", "--frequency", "cadence", default="daily", show_default=True,
              help="hourly, daily, weekly, every_two_weeks, or a frequency such as 6h (1h–30d).")
@click.option("--webhook-url", "--webhook_url", "webhook_url", default=None,
              help="Where Parallel sends events (default $MONITOR_WEBHOOK_URL).")
@click.option("--event-types", "--event_types", "event_types", multiple=True,
              help=f"Event types to receive (default monitor.event.detected): {', '.join(EVENT_TYPES)}.")
@click.option("--json", "as_json", is_flag=True, help="Print a JSON object.")
@click.argument("more_event_types", nargs=-1, metavar="")
@click.pass_context
def monitors_create(
    ctx: click.Context, username: str, query: str, cadence: str, webhook_url: str | None,
    event_types: tuple[str, ...], as_json: bool, more_event_types: tuple[str, ...],
) -> None:
    """Create a monitor at Parallel; the user's previous monitor is deactivated."""
    if more_event_types and not event_types:
        raise BadArgument(f"unexpected argument {more_event_types[0]!r}")
    types = [t for value in (*event_types, *more_event_types) for t in re.split(r"[,\s]+", value) if t]
    unknown = [t for t in types if t not in EVENT_TYPES]
    if unknown:
        raise BadArgument(f"--event-types: unknown event type {unknown[0]!r} (use {', '.join(EVENT_TYPES)})")
    if not username.strip():
        raise BadArgument("--username must not be empty")
    if not query.strip():
        raise BadArgument("--query must not be empty")
    try:
        parse_frequency(cadence)
    except ValueError as exc:
        raise BadArgument(f"--cadence: {exc}") from None
    settings = settings_of(ctx)
    if not settings.parallel_key:
        raise BadArgument("monitors need a Parallel API key: set PARALLELAI_API_KEY")

    async def work(service: MonitorService) -> tuple[Monitor, str | None]:
        return await service.create(username, query, cadence, webhook_url=webhook_url, event_types=types or None)

    monitor, replaced = with_service(ctx, work)
    if as_json:
        click.echo(json.dumps({**monitor.to_json(), "cadence": cadence_of(monitor.frequency), "replaced": replaced}))
        return
    say(f"Created monitor {monitor.monitor_id} for {monitor.username} ({monitor.frequency}): {monitor.query}")
    if replaced:
        say(f"Deactivated the previous monitor {replaced}.")


@monitors.command("list")
@click.option("--username", default=None, help="Only this user's monitors.")
@click.option("--json", "as_json", is_flag=True, help="Print a JSON array.")
@click.pass_context
def monitors_list(ctx: click.Context, username: str | None, as_json: bool) -> None:
    """Every monitor, newest first, with its state here and at Parallel."""
    print_listing(
        [m.to_json() for m in with_service(ctx, lambda service: service.list(username))],
        as_json=as_json, noun="monitor",
        columns=("monitor_id", "username", "query", "frequency", "created (UTC)", "status"),
        cells=lambda row: (row["monitor_id"], row["username"], row["query"], row["frequency"],
                           row["created_at"], status(row)),
    )


def status(row: dict[str, object]) -> Cell:
    """The status cell: active, or when it was deactivated; a cancel still owed to Parallel is said."""
    if row["active"]:
        text, style = "active", "green"
    else:
        text, style = f"deactivated {row['deactivated_at']}", ""
    if row["cancel_pending"]:
        text, style = f"{text} (cancel pending at Parallel)", "yellow"
    return Cell(text, style)


@monitors.command("deactivate")
@click.argument("monitor_id")
@click.pass_context
def monitors_deactivate(ctx: click.Context, monitor_id: str) -> None:
    """Deactivate a monitor here and cancel it at Parallel (retried by the sweep if that fails)."""

    async def work(service: MonitorService) -> Monitor:
        try:
            return await service.deactivate(monitor_id)
        except NotFound:
            raise BadArgument(f"no monitor {monitor_id!r}") from None

    monitor = with_service(ctx, work)
    note = " (the cancel at Parallel is pending; the sweep retries it)" if monitor.cancel_pending else ""
    say(f"Deactivated monitor {monitor.monitor_id} of {monitor.username}{note}.")


@monitors.command("sweep")
@click.option("--json", "as_json", is_flag=True, help="Print the report as JSON.")
@click.pass_context
def monitors_sweep(ctx: click.Context, as_json: bool) -> None:
    """Deactivate monitors older than MONITOR_TTL_HOURS and retry pending cancels, once, now."""
    report = with_service(ctx, lambda service: service.sweep())
    if as_json:
        click.echo(json.dumps(report.__dict__))
        return
    click.echo(
        f"Deactivated {len(report.deactivated)} expired monitor(s); cancelled {len(report.cancelled)} at Parallel"
        + (f"; {len(report.cancel_failed)} cancel(s) failed and will be retried." if report.cancel_failed else ".")
    )

