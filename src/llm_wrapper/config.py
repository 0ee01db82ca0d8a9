"""The provider configuration file (`config.json`), read once into typed objects.

The shape is the original design's: `{"<provider_key>": {"name", "base_url",
"api_key_env", "supported_models", "payload_extra_parameters"}}`. Optional
extras: `timeout` (seconds for one upstream request), `connect_timeout`,
`read_timeout` (longest silence between bytes) and `adapter` (which provider
adapter to use when the key is not one of the built-in names) and `pricing`
(per model: `input_per_mtok`, `cached_input_per_mtok`, `output_per_mtok`,
`per_request`, in USD; see `pricing.py`).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import orjson
from pydantic import BaseModel, ConfigDict, Field, ValidationError


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
    pricing: dict[str, ModelPrice] = Field(default_factory=dict)


def parse_config(data: Any, source: str = "config") -> dict[str, ProviderConfig]:
    if not isinstance(data, dict):
        raise ConfigError(f"{source}: expected a JSON object of providers")
    providers: dict[str, ProviderConfig] = {}
    owner: dict[str, str] = {}
    for key, raw in data.items():
        if not isinstance(raw, dict):
            raise ConfigError(f"{source}: provider {key!r} must be an object")
        try:
            provider = ProviderConfig(**{**raw, "key": key})
        except ValidationError as exc:
            first = exc.errors()[0]
            where = ".".join(str(p) for p in first["loc"])
            raise ConfigError(f"{source}: provider {key!r}: {where}: {first['msg']}") from None
        for model in provider.supported_models:
            if model in owner:
                raise ConfigError(
                    f"{source}: model {model!r} is listed by both {owner[model]!r} and {key!r}"
                )
            owner[model] = key
        providers[key] = provider
    return providers


def load_config(path: Path) -> dict[str, ProviderConfig]:
    try:
        raw = path.read_bytes()
    except OSError as exc:
        raise ConfigError(f"cannot read provider configuration {path}: {exc.strerror}") from None
    try:
        data = orjson.loads(raw)
    except orjson.JSONDecodeError as exc:
        raise ConfigError(f"{path}: not valid JSON ({exc})") from None
    return parse_config(data, str(path))
