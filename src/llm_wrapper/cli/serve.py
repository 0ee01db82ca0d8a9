"""`llm-wrapper serve`."""

from __future__ import annotations

from pathlib import Path

import click

from .context import settings_of


@click.command()
@click.option("--host", default="0.0.0.0", show_default=True, help="Address to listen on.")
@click.option("--port", type=int, default=None, help="Port (default $SERVER_PORT or 8080).")
@click.option("--config", "config_path", type=click.Path(path_type=Path), default=None,
              help="Provider configuration (default $LLM_WRAPPER_CONFIG or ./config.json).")
@click.option("--workers", type=click.IntRange(min=1), default=1, show_default=True,
              help="Worker processes.")
@click.pass_context
def serve(ctx: click.Context, host: str, port: int | None, config_path: Path | None, workers: int) -> None:
    """Start the gateway."""
    from ..server import serve as run_server  # the server's imports only when serving

    run_server(settings_of(ctx), host=host, port=port, config_path=config_path, workers=workers)
