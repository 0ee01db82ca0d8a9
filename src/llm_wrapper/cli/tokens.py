"""`llm-wrapper tokens add|list|delete|import`."""

from __future__ import annotations

import json
import sqlite3
from datetime import UTC, date, datetime
from pathlib import Path

import click

from ..store import Store
from ..tokens import (
    MAX_RATE_LIMIT,
    TokenInputError,
    TokenRecord,
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
@click.option("--json", "as_json", is_flag=True, help="Print a JSON object.")
@click.pass_context
def tokens_add(ctx: click.Context, username: str, expiry: str, rate_limit: int, as_json: bool) -> None:
    """Create a token and print it: the only time it is shown."""
    flags = {"username": "--username", "expiry": "--expiry", "rate_limit": "--rate-limit"}
    try:
        check_new_token(username, expiry, rate_limit)  # before the store is opened: bad input writes nothing
    except TokenInputError as exc:
        raise BadArgument(f"{flags[exc.field]} {exc}" if exc.field != "expiry" else f"--expiry: {exc}") from None
    issued = run_with_store(
        settings_of(ctx),
        lambda store: issue_token(store, username=username, expiry=expiry, rate_limit=rate_limit, now=utc_now()),
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
        columns=("id", "username", "expiry (UTC)", "status", "today / limit", "lifetime"),
        cells=lambda row: (
            row["id"], row["username"], row["expiry"] or "never",
            Cell("expired", "red") if row["expired"] else Cell("active", "green"),
            f"{row['requests_today']} / {row['rate_limit']}", row["lifetime_requests"],
        ),
    )


@tokens.command("delete")
@click.option("--token", "token", default=None, help="The token itself.")
@click.option("--id", "token_id", default=None, help="The token's id, as `tokens list` shows it.")
@click.pass_context
def tokens_delete(ctx: click.Context, token: str | None, token_id: str | None) -> None:
    """Delete a token; requests with it are refused from then on."""
    if bool(token) == bool(token_id):
        raise BadArgument("give exactly one of --token or --id")

    async def work(store: Store) -> str | None:
        if token:
            token_hash = hash_token(token.strip())
        else:
            matches = [r.token_hash for r in await store.list_tokens() if r.id == token_id]
            if not matches:
                return None
            token_hash = matches[0]
        record = await store.get_token(token_hash)
        if record is None or not await store.delete_token(token_hash):
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
