"""Every setting, declared once with its default and help, loaded once at start-up.

Values come from the environment first, then from a `.env` file
(`$LLM_WRAPPER_ENV_FILE`, default `./.env`; a missing file is fine). Provider
keys are looked up by the variable name each provider's `api_key_env` gives,
through `Settings.secret(name)`, from the same two sources.
"""

from __future__ import annotations

import os
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from dotenv import dotenv_values
from pydantic import Field, SecretStr, field_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

DEFAULT_WEBHOOK_URL = "https://knowledge.learnwitharobot.com/webhooks/parallel-monitor"
DEFAULT_UPDATE_KEYWORDS = (
    "update,updates,latest,recent news,what's new,whats new,what is new,any news,news"
)


class SettingsError(ValueError):
    """A setting has a value the gateway cannot use; the message names it."""


class Settings(BaseSettings):
    """The gateway's typed settings. Field names are the variable names, lower-cased."""

    model_config = SettingsConfigDict(extra="ignore", case_sensitive=False)

    database_url: str = Field(
        "sqlite:///./data/llm_wrapper.db",
        description="sqlite:///PATH (embedded) or postgresql://USER:PASS@HOST:PORT/DB (shared).",
    )
    llm_wrapper_config: Path = Field(Path("config.json"), description="Provider configuration file.")
    llm_wrapper_log_file: Path = Field(
        Path("llm_proxy.log"), description="Analytics log, one JSON object per line."
    )
    server_port: int = Field(8080, description="Port the server listens on.")
    ssl_certfile: Path | None = Field(None, description="TLS certificate; HTTPS when set with the key.")
    ssl_keyfile: Path | None = Field(None, description="TLS private key.")
    parallel_base_url: str = Field(
        "https://api.parallel.ai", description="Parallel's REST API (monitors, events)."
    )
    parallelai_api_key: SecretStr | None = Field(None, description="Parallel API key.")
    parallel_api_key: SecretStr | None = Field(
        None, description="Parallel API key (the SDK's name; PARALLELAI_API_KEY wins)."
    )
    monitor_webhook_url: str = Field(
        DEFAULT_WEBHOOK_URL, description="Public URL Parallel calls with monitor events."
    )
    parallel_webhook_secret: SecretStr | None = Field(
        None, description="When set, monitor webhooks must carry a valid signature."
    )
    monitor_ttl_hours: float = Field(24, description="Monitors older than this are deactivated.")
    monitor_sweep_seconds: float = Field(3600, description="How often the monitor sweep runs.")
    monitor_fetch_retry_seconds: float = Field(
        5, description="First wait before retrying a failed event fetch; doubles each time, at most 1 h."
    )
    monitor_fetch_max_attempts: int = Field(
        12, description="Event fetch attempts before an event group is given up as failed."
    )
    monitor_fetches_per_round: int = Field(
        20, description="Event fetches a server process starts at most per second (one per monitor at a time)."
    )
    speed_update_keywords: str = Field(
        DEFAULT_UPDATE_KEYWORDS,
        description="Comma-separated phrases that make a `speed` question an update request.",
    )
    llm_wrapper_admin_key: SecretStr | None = Field(
        None, description="Bearer key for the admin API; unset turns it off."
    )
    max_body_bytes: int = Field(
        32 * 1024 * 1024,
        description="Largest request body accepted (413 above it); vision requests carry images inline.",
    )
    max_header_bytes: int = Field(
        64 * 1024, gt=0, description="Largest request head (request line and headers) accepted; 431 above it."
    )
    max_header_count: int = Field(100, gt=0, description="Most request headers accepted; 431 above it.")
    header_timeout_seconds: float = Field(
        10, gt=0, description="Time a client has to send a complete request head, from connecting or its first byte; then 408."
    )
    body_timeout_seconds: float = Field(
        60, gt=0, description="Time a client has to send the whole request body once its head has arrived; then 408."
    )
    keepalive_timeout_seconds: float = Field(
        5, gt=0, description="An idle keep-alive connection is closed after this long."
    )
    db_pool_min_size: int = Field(1, description="PostgreSQL pool: connections kept open.")
    db_pool_max_size: int = Field(10, description="PostgreSQL pool: most connections per process.")
    db_timeout_seconds: float = Field(
        5.0, description="Longest wait for the database (connect, lock, statement)."
    )
    usage_flush_seconds: float = Field(
        1.0, gt=0, le=3600, description="How often each process writes the usage it has counted in memory."
    )
    log_level: str = Field("info", description="Server log level.")
    public_base_url: str | None = Field(
        None, description="How clients reach this server (https://host[:port][/prefix]); pages and redirects use it."
    )
    api_docs: bool = Field(False, description="Serve /docs, /redoc and /openapi.json.")
    metrics_port: int | None = Field(
        None, ge=1, le=65535, description="Serve /metrics on this port only (not on the API port)."
    )
    metrics_host: str = Field("127.0.0.1", description="Address the separate metrics listener binds.")

    @field_validator("public_base_url")
    @classmethod
    def _public_base_url(cls, value: str | None) -> str | None:
        if not value:
            return None
        from .api.origin import plausible_host

        parts = urlsplit(value)
        if parts.scheme not in ("http", "https") or not plausible_host(parts.netloc) or parts.query or parts.fragment:
            raise ValueError("must be http(s)://host[:port][/prefix], e.g. https://llm.example.com")
        return value.rstrip("/")

    @field_validator("metrics_port", mode="before")
    @classmethod
    def _metrics_port(cls, value: object) -> object:
        return None if value == "" else value

    @classmethod
    def settings_customise_sources(cls, settings_cls, init_settings, *args, **kwargs):
        """Only `load_settings` reads the environment, so tests can pass their own."""
        return (init_settings,)

    # Not a setting: the merged environment, kept to look up provider keys by name.
    environ: Mapping[str, str] = Field(default_factory=dict, exclude=True, repr=False)

    def secret(self, name: str) -> str | None:
        """The value of an arbitrary variable (a provider key), or None when unset or empty."""
        value = self.environ.get(name) or None
        if value is None and name == "PARALLELAI_API_KEY":
            value = self.environ.get("PARALLEL_API_KEY") or None
        return value

    def secret_values(self, key_names: Iterable[str]) -> list[str]:
        """Every secret this process knows: the named provider keys, the Parallel, admin and
        webhook keys, and the database password, for scrubbing from messages and logs."""
        values = [self.secret(name) for name in key_names]
        for field in (self.parallelai_api_key, self.parallel_api_key, self.llm_wrapper_admin_key,
                      self.parallel_webhook_secret):
            if field is not None:
                values.append(field.get_secret_value())
        values.append(urlsplit(self.database_url).password)
        return [v for v in values if v]

    @property
    def parallel_key(self) -> str | None:
        for key in (self.parallelai_api_key, self.parallel_api_key):
            if key is not None and key.get_secret_value():
                return key.get_secret_value()
        return None

    @property
    def update_keywords(self) -> tuple[str, ...]:
        return tuple(k.strip().lower() for k in self.speed_update_keywords.split(",") if k.strip())


def env_file_path(environ: Mapping[str, str] | None = None) -> Path:
    environ = os.environ if environ is None else environ
    return Path(environ.get("LLM_WRAPPER_ENV_FILE", ".env")).resolve()


def load_settings(environ: Mapping[str, str] | None = None, **overrides: object) -> Settings:
    """Read the environment and the `.env` file once; the environment wins on a clash."""
    environ = dict(os.environ if environ is None else environ)
    path = env_file_path(environ)
    from_file = {k: v for k, v in dotenv_values(path).items() if v is not None} if path.is_file() else {}
    merged = {**from_file, **environ}
    known = {name.upper() for name in Settings.model_fields if name != "environ"}
    values: dict[str, Any] = {k.lower(): v for k, v in merged.items() if k.upper() in known}
    values.update(overrides)
    return Settings(**values, environ=merged)
