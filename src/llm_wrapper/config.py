"""The provider configuration file (`config.json`), read once into typed objects.

The shape is the original design's: `{"<provider_key>": {"name", "base_url",
"api_key_env", "supported_models", "payload_extra_parameters"}}`. Optional
extras: `timeout` (seconds for one upstream request), `connect_timeout`,
`read_timeout` (longest silence between bytes), `adapter` (which provider
adapter to use when the key is not one of the built-in names), `pricing`
(per model: `input_per_mtok`, `cached_input_per_mtok`, `output_per_mtok`,
`per_request`, in USD; see `pricing.py`), and for routing `model_map`,
`priority` and `weight`. The top-level key `routing` is not a provider: it
holds the routing policy (`RoutingConfig`). A model listed by several entries
is served by all of them (its group of deployments, see `routing.py`).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import orjson
from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator


class ConfigError(Exception):
    """The configuration file is missing or invalid; the message says where."""


class ModelPrice(BaseModel):
    """A price override for one model: the fields given replace the shipped ones."""

    model_config = ConfigDict(extra="forbid")

    input_per_mtok: float = Field(0.0, ge=0, allow_inf_nan=False)
    cached_input_per_mtok: float | None = Field(None, ge=0, allow_inf_nan=False)
    output_per_mtok: float = Field(0.0, ge=0, allow_inf_nan=False)
    per_request: float = Field(0.0, ge=0, allow_inf_nan=False)


class ProviderConfig(BaseModel):
    model_config = ConfigDict(extra="allow")

    key: str = ""
    name: str
    base_url: str
    api_key_env: str
    supported_models: list[str] = Field(default_factory=list)
    payload_extra_parameters: dict[str, Any] = Field(default_factory=dict)
    timeout: float = Field(600.0, gt=0, description="Overall bound on one upstream request.")
    connect_timeout: float = Field(10.0, gt=0)
    read_timeout: float = Field(300.0, gt=0, description="Longest wait for the next bytes.")
    adapter: str | None = None
    model_map: dict[str, str] = Field(
        default_factory=dict, description="Public model name -> the name the provider knows."
    )
    priority: int = Field(0, description="Lower is tried first.")
    weight: float = Field(1.0, gt=0, description="Share of traffic among deployments of equal priority.")
    pricing: dict[str, ModelPrice] = Field(default_factory=dict)

    @model_validator(mode="after")
    def _serves_renamed_models(self) -> ProviderConfig:
        """A model in `model_map` is served under its public name, listed in `supported_models` or not."""
        self.supported_models += [m for m in self.model_map if m not in self.supported_models]
        return self


class RoutingConfig(BaseModel):
    """The top-level `routing` block; every field optional (these are the defaults)."""

    model_config = ConfigDict(extra="forbid")

    strategy: Literal["priority", "weighted", "least-busy"] = "priority"
    retries: int = Field(default=1, ge=0, le=10)
    retry_on: list[int] = Field(default_factory=lambda: [408, 409, 429, 500, 502, 503, 504])
    cooldown_seconds: float = Field(default=30.0, ge=0)
    allowed_fails: int = Field(default=3, ge=1)
    fallbacks: dict[str, list[str]] = Field(default_factory=dict)
    max_attempts: int = Field(default=6, ge=1, le=50)


@dataclass(frozen=True)
class Config:
    providers: dict[str, ProviderConfig]
    routing: RoutingConfig = field(default_factory=lambda: RoutingConfig())


def parse_config(data: Any, source: str = "config") -> Config:
    if not isinstance(data, dict):
        raise ConfigError(f"{source}: expected a JSON object of providers")
    providers: dict[str, ProviderConfig] = {}
    for key, raw in data.items():
        if key == "routing":
            continue
        if not isinstance(raw, dict):
            raise ConfigError(f"{source}: provider {key!r} must be an object")
        try:
            provider = ProviderConfig(**{**raw, "key": key})
        except ValidationError as exc:
            raise ConfigError(f"{source}: provider {key!r}: {_first_error(exc)}") from None
        providers[key] = provider
    return Config(providers, _routing(data.get("routing", {}), providers, source))


def _routing(raw: Any, providers: dict[str, ProviderConfig], source: str) -> RoutingConfig:
    if not isinstance(raw, dict):
        raise ConfigError(f"{source}: 'routing' must be an object (a provider may not be named 'routing')")
    try:
        routing = RoutingConfig(**raw)
    except ValidationError as exc:
        hint = " ('routing' is the routing policy; a provider may not be named 'routing')" if "base_url" in raw else ""
        raise ConfigError(f"{source}: routing: {_first_error(exc)}{hint}") from None
    served = {m for p in providers.values() for m in p.supported_models}
    for model, fallbacks in routing.fallbacks.items():
        for name in (model, *fallbacks):
            if name not in served:
                raise ConfigError(f"{source}: routing.fallbacks: no provider serves the model {name!r}")
    return routing


def _first_error(exc: ValidationError) -> str:
    first = exc.errors()[0]
    return f"{'.'.join(str(p) for p in first['loc'])}: {first['msg']}"


def load_config(path: Path) -> Config:
    try:
        raw = path.read_bytes()
    except OSError as exc:
        raise ConfigError(f"cannot read provider configuration {path}: {exc.strerror}") from None
    try:
        data = orjson.loads(raw)
    except orjson.JSONDecodeError as exc:
        raise ConfigError(f"{path}: not valid JSON ({exc})") from None
    return parse_config(data, str(path))
