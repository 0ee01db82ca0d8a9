"""What a request cost: the price table shipped in `data/prices.json`, with `config.json` overrides.

Prices are USD per million input, cached-input and output tokens, plus a fee
per request (Perplexity's search fee). The table is read once when the app is
built; a provider's `"pricing": {"<model>": {...}}` in `config.json` overrides
the shipped fields it names or adds a model. A model with no price costs 0 and
is reported as unpriced.

The cost is computed from the usage the provider reported, in OpenAI's shape:
`prompt_tokens` of which `prompt_tokens_details.cached_tokens` were read from
the provider's cache (priced at the cached rate), and `completion_tokens`,
which already include any reasoning tokens.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, replace
from importlib import resources
from typing import Any

import orjson

from .config import ModelPrice, ProviderConfig

PER_MTOK = 1_000_000


@dataclass(frozen=True, slots=True)
class Price:
    input_per_mtok: float = 0.0
    cached_input_per_mtok: float | None = None  # None: the input rate
    output_per_mtok: float = 0.0
    per_request: float = 0.0

    def cost(self, usage: Mapping[str, Any] | None) -> float:
        prompt, cached, completion = tokens_of(usage)
        cached_rate = self.input_per_mtok if self.cached_input_per_mtok is None else self.cached_input_per_mtok
        return (
            (prompt - cached) * self.input_per_mtok + cached * cached_rate + completion * self.output_per_mtok
        ) / PER_MTOK + self.per_request


def tokens_of(usage: Mapping[str, Any] | None) -> tuple[int, int, int]:
    """(prompt, cached prompt, completion) tokens from a provider's usage; missing or odd values are 0."""
    if not usage:
        return 0, 0, 0
    prompt = _count(usage.get("prompt_tokens"))
    completion = _count(usage.get("completion_tokens"))
    details = usage.get("prompt_tokens_details")
    cached = min(prompt, _count(details.get("cached_tokens"))) if isinstance(details, dict) else 0
    return prompt, cached, completion


def _count(value: Any) -> int:
    if isinstance(value, int) and not isinstance(value, bool) and value > 0:
        return value
    return 0


class PriceTable:
    """Prices by model name, and a provider entry's own prices; `cost` is a dict lookup or two and
    a few multiplications.

    A model served by several deployments (see `routing.py`) costs what the deployment that
    answered charges: its entry's `pricing` for the model (by either name), else the shipped
    price of the name that provider knows it by, else of the public name.
    """

    def __init__(
        self, prices: Mapping[str, Price], own: Mapping[tuple[str, str], Price] | None = None
    ) -> None:
        self.prices = dict(prices)
        self.own = dict(own or {})  # (provider key, model) -> that entry's price

    @classmethod
    def load(cls, providers: Mapping[str, ProviderConfig] = {}) -> PriceTable:  # noqa: B006 (read only)
        """The shipped table, and every provider entry's `pricing` over it."""
        prices = shipped_prices()
        own: dict[tuple[str, str], Price] = {}
        for key, provider in providers.items():
            for model, override in provider.pricing.items():
                base = prices.get(provider.model_map.get(model, model)) or prices.get(model) or Price()
                own[(key, model)] = apply(base, override)
        return cls(prices, own)

    def price(self, model: str | None, provider: str | None = None, upstream: str | None = None) -> Price | None:
        """The price of `model` as served by `provider` under the name `upstream` (when known)."""
        if not model:
            return None
        if provider is not None and self.own:
            price = self.own.get((provider, upstream or model)) or self.own.get((provider, model))
            if price is not None:
                return price
        return (self.prices.get(upstream) if upstream else None) or self.prices.get(model)

    def cost(
        self,
        model: str | None,
        usage: Mapping[str, Any] | None,
        provider: str | None = None,
        upstream: str | None = None,
    ) -> tuple[float, bool]:
        """(USD, priced): what one request to `model` (answered by `provider`, which knows it as
        `upstream`) with this usage cost; (0, False) without a price. A request without usage
        (no answer) costs nothing, its per-request fee included."""
        price = self.price(model, provider, upstream)
        if price is None:
            return 0.0, False
        return (price.cost(usage) if usage else 0.0), True


def shipped_prices() -> dict[str, Price]:
    raw = resources.files("llm_wrapper").joinpath("data/prices.json").read_bytes()
    return {
        model: Price(
            input_per_mtok=entry["input_per_mtok"],
            cached_input_per_mtok=entry.get("cached_input_per_mtok"),
            output_per_mtok=entry["output_per_mtok"],
            per_request=entry.get("per_request", 0.0),
        )
        for model, entry in orjson.loads(raw)["models"].items()
    }


def apply(price: Price, override: ModelPrice) -> Price:
    return replace(price, **override.model_dump(exclude_unset=True))
