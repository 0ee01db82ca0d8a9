"""`llm-wrapper usage`: requests, tokens and cost per day, user and model, from the usage rollups."""

from __future__ import annotations

import json

import click

from ..reports import GROUPS, KEYS, grouped, period
from ..store import Store
from ..tokens import utc_now
from .context import BadArgument, run_with_store, settings_of
from .output import print_table

HEADINGS = {"date": "date (UTC)", "username": "user", "model": "model"}


@click.command("usage")
@click.option("--username", default=None, help="Only this user's usage.")
@click.option("--since", default=None, help="First UTC day, YYYY-MM-DD (default: 29 days before --until).")
@click.option("--until", default=None, help="Last UTC day, YYYY-MM-DD (default: today).")
@click.option("--by", type=click.Choice(GROUPS), default=None,
              help="One row per day, model or user (default: per day, user and model).")
@click.option("--json", "as_json", is_flag=True, help="Print a JSON array.")
@click.pass_context
def usage(
    ctx: click.Context, username: str | None, since: str | None, until: str | None, by: str | None, as_json: bool
) -> None:
    """Usage per day, user and model: requests (failed ones included), errors, tokens, cost in USD.

    A request to a model without a known price costs 0 and is counted under `unpriced`.
    """
    try:
        first, last = period(since, until, utc_now().date())
    except ValueError as exc:
        raise BadArgument(str(exc).replace("start", "--since", 1).replace("end", "--until", 1)) from None
    if username is not None and (not username.strip() or "\x00" in username):
        raise BadArgument("--username must be a user's name")

    async def work(store: Store) -> list[dict[str, object]]:
        return grouped(await store.usage.usage(first, last, username), by)

    rows = run_with_store(settings_of(ctx), work)
    if as_json:
        for row in rows:
            row.pop("unpriced_requests")
        click.echo(json.dumps(rows, indent=2))
        return
    keys = KEYS[by]
    columns = (*(HEADINGS[k] for k in keys), "requests", "errors", "prompt", "completion", "total", "cost (USD)",
               "unpriced")
    print_table(
        f"Usage {first} to {last}" + (f" of {username}" if username else ""),
        columns,
        [(*(row[k] for k in keys), row["requests"], row["errors"], row["prompt_tokens"], row["completion_tokens"],
          row["total_tokens"], f"{row['cost_usd']:.6f}", row["unpriced_requests"]) for row in rows],
    )
