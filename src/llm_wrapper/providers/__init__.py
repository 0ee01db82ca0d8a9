"""The provider registry: which adapter serves a config entry, and which provider serves a model.

Adding a provider is one module with a `Provider` subclass and one line in `ADAPTERS`.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Iterable, Mapping

from ..config import ProviderConfig
from .base import Call, Exchange, Provider, ResponsesCall
from .openai import OpenAIProvider
from .parallel import ParallelProvider
from .perplexity import PerplexityProvider
from .sambanova import SambaNovaProvider
from .together import TogetherProvider
from .xai import XAIProvider

__all__ = ["ADAPTERS", "Call", "Exchange", "Provider", "ProviderRegistry", "ResponsesCall", "adapter_for"]

log = logging.getLogger(__name__)

ADAPTERS: dict[str, type[Provider]] = {
    "openai": OpenAIProvider,
    "xai": XAIProvider,
    "perplexity": PerplexityProvider,
    "sambanova": SambaNovaProvider,
    "together": TogetherProvider,
    "parallel": ParallelProvider,
}

# Other spellings seen in existing config files, matched as whole words of the key or the name.
_ALIASES = {"grok": "xai", "x.ai": "xai", "pplx": "perplexity", "samba": "sambanova"}


def adapter_for(config: ProviderConfig) -> type[Provider]:
    """The adapter named by `adapter`, else the first word of the key (then of the name) that names
    one (`together_b` is Together's, `samba_openai` SambaNova's), else plain OpenAI-compatible."""
    if config.adapter:
        if config.adapter not in ADAPTERS:
            raise ValueError(f"provider {config.key!r}: unknown adapter {config.adapter!r}")
        return ADAPTERS[config.adapter]
    for text in (config.key, config.name):
        for word in re.findall(r"[a-z0-9.]+", text.lower()):
            word = word.strip(".")
            name = word if word in ADAPTERS else _ALIASES.get(word)
            if name:
                return ADAPTERS[name]
    return OpenAIProvider


class ProviderRegistry:
    """Every configured provider (which of them serves a request is `routing.Router`'s choice)."""

    def __init__(self, providers: Iterable[Provider]) -> None:
        self.providers = {p.key: p for p in providers}

    @classmethod
    def from_config(cls, configs: Mapping[str, ProviderConfig], secret) -> ProviderRegistry:
        """Build adapters; `secret(name)` looks up a key. A missing key disables with one warning."""
        providers = []
        for config in configs.values():
            provider = adapter_for(config)(config, secret(config.api_key_env))
            if not provider.enabled:
                log.warning(
                    "provider %s disabled: %s is not set (its models will answer 503)",
                    config.key,
                    config.api_key_env,
                )
            providers.append(provider)
        return cls(providers)

    def enabled_models(self) -> list[tuple[str, Provider]]:
        """Each model an enabled provider serves, once, with the first such provider."""
        listed: dict[str, Provider] = {}
        for provider in self.providers.values():
            if provider.enabled:
                for model in provider.models:
                    listed.setdefault(model, provider)
        return list(listed.items())

    async def start(self) -> None:
        for provider in self.providers.values():
            await provider.start()

    async def close(self) -> None:
        for provider in self.providers.values():
            await provider.close()
