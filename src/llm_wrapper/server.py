"""Running the app under uvicorn: workers, HTTPS, and the checks that should stop start-up early."""

from __future__ import annotations

import logging
import os
import signal
import sys
import tempfile
from pathlib import Path
from typing import Any

import uvicorn

from .config import ConfigError, load_config
from .http_protocol import BoundedHttpToolsProtocol, HttpLimits
from .settings import Settings, env_file_path, load_settings

log = logging.getLogger("llm_wrapper")


def configure_logging(level: str) -> None:
    logging.basicConfig(
        level=level.upper(), format="%(asctime)s %(levelname)s %(name)s: %(message)s", stream=sys.stderr
    )


def app_factory():  # called by uvicorn in each worker process
    from .app import create_app

    settings = load_settings()
    configure_logging(settings.log_level)
    BoundedHttpToolsProtocol.limits = HttpLimits.from_settings(settings)
    return create_app(settings)


def _exit_cleanly(signum: int, frame: object) -> None:
    raise SystemExit(0)


def _check_readable(label: str, path: Path) -> None:
    try:
        with open(path, "rb"):
            pass
    except OSError as exc:
        raise SystemExit(f"llm-wrapper: cannot read {label} {path}: {exc.strerror}") from None


def serve(settings: Settings, *, host: str, port: int | None, config_path: Path | None, workers: int) -> None:
    configure_logging(settings.log_level)
    env_path = env_file_path()
    log.info("settings file %s%s", env_path, "" if env_path.is_file() else " (not found; using the environment)")
    if config_path is not None:
        os.environ["LLM_WRAPPER_CONFIG"] = str(config_path)  # workers are new processes: pass it on
        settings = settings.model_copy(update={"llm_wrapper_config": config_path})
    try:
        load_config(settings.llm_wrapper_config)
    except ConfigError as exc:
        raise SystemExit(f"llm-wrapper: {exc}") from None
    ssl: dict[str, Any] = {}
    if settings.ssl_certfile and settings.ssl_keyfile:
        _check_readable("SSL_CERTFILE", settings.ssl_certfile)
        _check_readable("SSL_KEYFILE", settings.ssl_keyfile)
        ssl = {"ssl_certfile": str(settings.ssl_certfile), "ssl_keyfile": str(settings.ssl_keyfile)}
    elif settings.ssl_certfile or settings.ssl_keyfile:
        raise SystemExit("llm-wrapper: HTTPS needs both SSL_CERTFILE and SSL_KEYFILE")
    if workers > 1 and not os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
        # Workers are separate processes: keep their metrics in shared files (see metrics.py).
        os.environ["PROMETHEUS_MULTIPROC_DIR"] = tempfile.mkdtemp(prefix="llm-wrapper-metrics-")
    if settings.metrics_port is not None:
        from .metrics import serve_separately

        try:
            serve_separately(settings.metrics_host, settings.metrics_port)
        except OSError as exc:
            raise SystemExit(
                f"llm-wrapper: cannot serve metrics on {settings.metrics_host}:{settings.metrics_port}: {exc.strerror}"
            ) from None
        log.info("metrics on http://%s:%d/metrics only", settings.metrics_host, settings.metrics_port)
    # uvicorn shuts down gracefully on SIGTERM (requests in flight finish, the lifespan writes the
    # usage still in memory), then raises the signal again under the handler it found: this one,
    # so a clean shutdown exits with status 0 rather than as killed by the signal.
    signal.signal(signal.SIGTERM, _exit_cleanly)
    uvicorn.run(
        "llm_wrapper.server:app_factory",
        factory=True,
        host=host,
        port=port or settings.server_port,
        workers=workers,
        http=BoundedHttpToolsProtocol,
        timeout_keep_alive=settings.keepalive_timeout_seconds,  # type: ignore[arg-type]  # a float works
        log_level=settings.log_level,
        access_log=False,
        timeout_graceful_shutdown=30,
        **ssl,
    )
