"""What the commands print: tables and messages, with text from users made harmless.

Usernames, queries and monitor ids come from token holders and from Parallel, so
they are printed literally (never read as rich markup) and with every control
character replaced by U+FFFD: no escape, hyperlink or cursor sequence reaches the
operator's terminal. Tables are whole either way: piped (stdout not a terminal),
one tab-separated line per row under a header line, nothing shortened and no
colour, for `grep`, `cut` and `awk`; on a terminal, a rich table whose columns
fold long values onto more lines instead of cutting them.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import click
from rich.console import Console
from rich.table import Table
from rich.text import Text

Row = Sequence["object | Cell"]

# C0 controls, DEL and C1 controls (Unicode category Cc), and the bidirectional overrides
# and isolates, which reorder what a terminal shows ("Trojan Source").
_UNSAFE = re.compile("[\x00-\x1f\x7f-\x9f\u202a-\u202e\u2066-\u2069]")
REPLACEMENT = "\ufffd"


def printable(value: object) -> str:
    """`str(value)` with every control character replaced by U+FFFD; other Unicode is kept."""
    return _UNSAFE.sub(REPLACEMENT, str(value))


def say(message: str, *, err: bool = False) -> None:
    """Print one message line; whatever it quotes is made printable."""
    click.echo(printable(message), err=err)


@dataclass(frozen=True)
class Cell:
    """A table cell with a style (a rich style name) used only on a terminal."""

    value: object
    style: str = ""


def print_listing(
    rows: list[dict[str, object]], *, as_json: bool, noun: str, columns: Sequence[str],
    cells: Callable[[dict[str, object]], Row],
) -> None:
    """What a `list` command prints: with `--json` the rows as a JSON array, else a table."""
    if as_json:
        click.echo(json.dumps(rows, indent=2))
    else:
        print_table(f"{len(rows)} {noun}(s)", columns, [cells(row) for row in rows])


def print_table(title: str, columns: Sequence[str], rows: Sequence[Row]) -> None:
    """Every row whole: tab-separated lines when piped, a folding rich table on a terminal."""
    console = Console(highlight=False)
    if not console.is_terminal:
        for line in (columns, *rows):
            click.echo("\t".join(printable(_value(cell)) for cell in line))
        return
    table = Table(title=title, title_justify="left")
    for column in columns:
        table.add_column(column, overflow="fold")  # never `min_width`: too wide a table is cropped
    for row in rows:
        table.add_row(*(Text(printable(_value(cell)), style=_style(cell)) for cell in row))
    narrowest = 1 + 5 * len(columns)  # borders, padding and 2 characters a column
    if console.width < narrowest:  # narrower, rich would give some columns no room at all
        console = Console(highlight=False, width=narrowest)  # the terminal wraps the long lines
    console.print(table)


def _value(cell: object) -> object:
    return cell.value if isinstance(cell, Cell) else cell


def _style(cell: object) -> str:
    return cell.style if isinstance(cell, Cell) else ""
