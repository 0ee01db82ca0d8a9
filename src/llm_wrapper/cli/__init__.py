"""The `llm-wrapper` command: serve, tokens, monitors, usage.

    cli/__init__.py   the click group and `main` (the console script's entry point)
    cli/context.py    settings, a store for one piece of work, BadArgument
    cli/output.py     tables and messages, user text made harmless
    cli/serve.py, cli/tokens.py, cli/monitors.py, cli/usage.py   the commands

Bad arguments print one line (`llm-wrapper: error: …`) and exit with status 2,
having written nothing.
"""

from __future__ import annotations

import sys

import click

from ..config import ConfigError
from ..errors import ServiceUnavailable
from ..settings import SettingsError
from .context import BadArgument
from .monitors import monitors
from .output import say
from .serve import serve
from .tokens import tokens
from .usage import usage

__all__ = ["BadArgument", "cli", "main"]


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.pass_context
def cli(ctx: click.Context) -> None:
    """llm-wrapper: an OpenAI-compatible LLM gateway."""
    ctx.obj = None


cli.add_command(serve)
cli.add_command(tokens)
cli.add_command(monitors)
cli.add_command(usage)


def main(argv: list[str] | None = None, prog_name: str = "llm-wrapper") -> None:
    """Entry point: click, with errors kept to one line."""
    try:
        cli.main(args=argv, prog_name=prog_name, standalone_mode=False)
    except click.UsageError as exc:
        say(f"{prog_name}: error: {exc.format_message()}", err=True)
        sys.exit(2)
    except click.ClickException as exc:
        say(f"{prog_name}: error: {exc.format_message()}", err=True)
        sys.exit(exc.exit_code)
    except SettingsError as exc:
        say(f"{prog_name}: error: {exc}", err=True)
        sys.exit(2)
    except (ServiceUnavailable, ConfigError) as exc:
        say(f"{prog_name}: error: {exc}", err=True)
        sys.exit(1)
    except click.exceptions.Abort:
        sys.exit(130)
    except click.exceptions.Exit as exc:
        sys.exit(exc.exit_code)
