"""The long-lived objects one app instance holds, built once from its settings."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from .analytics import AnalyticsLog
from .auth import Authorizer
from .gateway import Gateway
from .monitors.service import MonitorService
from .providers import ProviderRegistry
from .settings import Settings
from .store import Store
from .usage import UsageRecorder


@dataclass
class Services:
    settings: Settings
    registry: ProviderRegistry
    store: Store
    analytics: AnalyticsLog
    auth: Authorizer
    gateway: Gateway
    monitors: MonitorService
    extras: dict[str, Any] = field(default_factory=dict)
    usage: UsageRecorder | None = None
