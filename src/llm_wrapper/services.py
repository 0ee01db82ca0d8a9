"""The long-lived objects one app instance holds, built once from its settings."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from .analytics import AnalyticsLog
from .gateway import Gateway
from .providers import ProviderRegistry
from .settings import Settings
from .store import Store


@dataclass
class Services:
    settings: Settings
    registry: ProviderRegistry
    store: Store
    analytics: AnalyticsLog
    gateway: Gateway
    monitors: Any = None  # the MonitorService, when monitors are set up
    extras: dict[str, Any] = field(default_factory=dict)
