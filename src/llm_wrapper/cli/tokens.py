"""`llm-wrapper tokens add|list|update|delete|import`."""

from __future__ import annotations

import json
import sqlite3
from datetime import UTC, date, datetime
from pathlib import Path
from typing import Any

import click

from .. import allowlist
from ..store import Store
from ..tokens import (
    BUDGET_PERIODS,
    MAX_RATE_LIMIT,
    TokenInputError,
    TokenRecord,
    apply_changes,
    check_budget,
    check_models,
    check_new_token,
    format_time,
    hash_token,
    issue_token,
    parse_expiry,
    utc_now,
)
from .context import BadArgument, run_with_store, settings_of
from .output import Cell, print_listing, say


@click.group()
def tokens() -> None:
    """Add, list, delete and import bearer tokens."""


@tokens.command("add")
@click.option("--username", required=True, help="Who the token is for.")
@click.option("--expiry", required=True, help="'YYYY-MM-DD HH:MM:SS', read as UTC.")
@click.option("--rate-limit", "--rate_limit", "rate_limit", required=True, type=int,
              help="Requests admitted per UTC day.")
@click.option("--budget-usd", type=float, default=None, help="Spend allowed per budget period, in USD.")
@click.option("--budget-period", type=click.Choice(BUDGET_PERIODS), default=None,
              help="The budget's period, UTC (default: month).")
@click.option("--models", default=None, help="Allowed models, comma-separated; '*' matches any text.")
@click.option("--json", "as_json", is_flag=True, help="Print a JSON object.")
@click.pass_context
def tokens_add(
    ctx: click.Context, username: str, expiry: str, rate_limit: int, budget_usd: float | None,
    budget_period: str | None, models: str | None, as_json: bool,
) -> None:
    """Create a token and print it: the only time it is shown."""
    try:  # before the store is opened: bad input writes nothing
        check_new_token(username, expiry, rate_limit)
        check_budget(budget_usd, budget_period)
        allowed = check_models(allowlist.split(models))
    except TokenInputError as exc:
        raise bad(exc) from None
    issued = run_with_store(
        settings_of(ctx),
        lambda store: issue_token(
            store, username=username, expiry=expiry, rate_limit=rate_limit, now=utc_now(),
            budget_usd=budget_usd, budget_period=budget_period, models=allowed,
        ),
    )
    if as_json:
        click.echo(json.dumps(issued.to_json()))
    else:
        expires = format_time(issued.expiry)
        say(f"Token for {issued.username} (expires {expires} UTC, {issued.rate_limit} requests a day):")
        click.echo(issued.token)
        click.echo("Keep it now: it is stored only as a hash and cannot be shown again.", err=True)


@tokens.command("list")
@click.option("--json", "as_json", is_flag=True, help="Print a JSON array.")
@click.pass_context
def tokens_list(ctx: click.Context, as_json: bool) -> None:
    """Every token with its limit and usage (never the secret).

    Piped, one tab-separated line per token under a header line; on a terminal, a table.
    """
    records = run_with_store(settings_of(ctx), lambda store: store.list_tokens())
    now = utc_now()
    print_listing(
        [r.to_json(now) for r in records], as_json=as_json, noun="token",
        columns=("id", "username", "expiry (UTC)", "status", "today / limit", "lifetime", "spent / budget (USD)",
                 "models"),
        cells=lambda row: (
            row["id"], row["username"], row["expiry"] or "never",
            Cell("expired", "red") if row["expired"] else Cell("active", "green"),
            f"{row['requests_today']} / {row['rate_limit']}", row["lifetime_requests"],
            f"{row['spent_usd']:.4f} / " + (
                f"{row['budget_usd']:g} a {row['budget_period']}" if row["budget_usd"] is not None else "none"
            ),
            ",".join(row["models"]) if row["models"] is not None else "all",  # type: ignore[arg-type]
        ),
    )


@tokens.command("update")
@click.option("--id", "token_id", default=None, help="The token's id, as `tokens list` shows it.")
@click.option("--token", "token", default=None, help="The token itself.")
@click.option("--rate-limit", "--rate_limit", "rate_limit", type=int, default=None, help="Requests per UTC day.")
@click.option("--expiry", default=None, help="'YYYY-MM-DD HH:MM:SS', read as UTC.")
@click.option("--budget-usd", type=float, default=None, help="Spend allowed per budget period, in USD.")
@click.option("--no-budget", is_flag=True, help="Remove the budget.")
@click.option("--budget-period", type=click.Choice(BUDGET_PERIODS), default=None, help="The budget's period (UTC).")
@click.option("--models", default=None, help="Allowed models, comma-separated; '*' matches any text.")
@click.option("--all-models", is_flag=True, help="Allow every model.")
@click.option("--json", "as_json", is_flag=True, help="Print the token as `tokens list --json` does.")
@click.pass_context
def tokens_update(
    ctx: click.Context, token_id: str | None, token: str | None, rate_limit: int | None, expiry: str | None,
    budget_usd: float | None, no_budget: bool, budget_period: str | None, models: str | None,
    all_models: bool, as_json: bool,
) -> None:
    """Change a token in place: its secret, counts and usage stay."""
    if bool(token) == bool(token_id):
        raise BadArgument("give exactly one of --token or --id")
    if budget_usd is not None and no_budget:
        raise BadArgument("give at most one of --budget-usd or --no-budget")
    if models is not None and all_models:
        raise BadArgument("give at most one of --models or --all-models")
    changes: dict[str, Any] = {}
    for name, value in (("rate_limit", rate_limit), ("expiry", expiry), ("budget_usd", budget_usd),
                        ("budget_period", budget_period), ("models", models)):
        if value is not None:
            changes[name] = value
    if no_budget:
        changes["budget_usd"] = None
    if all_models:
        changes["models"] = None
    if not changes:
        raise BadArgument("nothing to change: give at least one of the options")
    if "models" in changes:
        changes["models"] = allowlist.split(changes["models"])
    target = token_id or (token or "").strip()

    async def work(store: Store) -> TokenRecord:
        record = await _find(store, token_id=token_id, token=token)
        if record is None:
            raise BadArgument(f"no token {'with id ' if token_id else ''}{target!r}")
        try:
            changed = apply_changes(record, changes)
        except TokenInputError as exc:
            raise bad(exc) from None
        updated = await store.update_token(changed, utc_now())
        if updated is None:
            raise BadArgument(f"no token {target!r}")
        return updated

    updated = run_with_store(settings_of(ctx), work)
    if as_json:
        click.echo(json.dumps(updated.to_json(utc_now())))
    else:
        say(f"Updated the token {updated.id} of {updated.username}.")


async def _find(store: Store, *, token_id: str | None, token: str | None) -> TokenRecord | None:
    if token:
        return await store.get_token(hash_token(token.strip()))
    for record in await store.list_tokens():
        if record.id == token_id:
            return record
    return None


def bad(exc: TokenInputError) -> BadArgument:
    """A bad token field as the command line names it (`--rate-limit must be …`)."""
    return BadArgument(f"--{exc.field.replace('_', '-')}: {exc}")


@tokens.command("delete")
@click.option("--token", "token", default=None, help="The token itself.")
@click.option("--id", "token_id", default=None, help="The token's id, as `tokens list` shows it.")
@click.pass_context
def tokens_delete(ctx: click.Context, token: str | None, token_id: str | None) -> None:
    """Delete a token; requests with it are refused from then on."""
    if bool(token) == bool(token_id):
        raise BadArgument("give exactly one of --token or --id")

    async def work(store: Store) -> str | None:
        record = await _find(store, token_id=token_id, token=token)
        if record is None or not await store.delete_token(record.token_hash):
            return None
        return record.username

    username = run_with_store(settings_of(ctx), work)
    if username is None:
        raise BadArgument("no such token")
    say(f"Deleted the token of {username}.")


@tokens.command("import")
@click.argument("path", type=click.Path(path_type=Path))
@click.pass_context
def tokens_import(ctx: click.Context, path: Path) -> None:
    """Import the original system's auth_tokens.db (plaintext tokens), storing them hashed."""
    records = read_original_tokens(path)

    async def work(store: Store) -> int:
        return sum([await store.import_token(record) for record in records])

    added = run_with_store(settings_of(ctx), work)
    click.echo(f"Imported {added} token(s); {len(records) - added} already present.")


def read_original_tokens(path: Path) -> list[TokenRecord]:
    if not path.is_file():
        raise BadArgument(f"{path}: no such file")
    try:
        db = sqlite3.connect(f"file:{path}?mode=ro", uri=True)
        try:
            db.row_factory = sqlite3.Row
            rows = db.execute("SELECT * FROM tokens").fetchall()
        finally:
            db.close()
    except sqlite3.DatabaseError as exc:
        raise BadArgument(f"{path}: not a token database ({exc})") from None
    records = []
    for number, row in enumerate(rows, 1):
        try:
            records.append(_original_record(row))
        except (ValueError, TypeError, IndexError) as exc:
            raise BadArgument(f"{path}: row {number} of the tokens table: {exc}") from None
    return records


def _original_record(row: sqlite3.Row) -> TokenRecord:
    """One row of the original schema (plaintext token) as a record holding only its hash."""
    keys = row.keys()
    if not row["token"] or not str(row["username"] or "").strip():
        raise ValueError("the token and the username must not be empty")
    expiry = parse_expiry(str(row["expiry"])) if row["expiry"] else None
    rate_limit = int(row["rate_limit"])
    if not 0 <= rate_limit <= MAX_RATE_LIMIT:
        raise ValueError(f"rate_limit {rate_limit} is out of range")
    last = row["last_request_date"] if "last_request_date" in keys else None
    return TokenRecord(
        token_hash=hash_token(str(row["token"])),
        username=str(row["username"]).strip(),
        expiry=expiry,
        rate_limit=rate_limit,
        request_count=int(row["request_count"] or 0) if "request_count" in keys else 0,
        last_request_date=date.fromisoformat(str(last)[:10]) if last else None,
        lifetime_requests=int(row["lifetime_requests"] or 0) if "lifetime_requests" in keys else 0,
        created_at=datetime.now(UTC),
    )
