"""Routing: which deployment answers a request, and what is tried next when one fails.

A *deployment* is one provider entry serving one model; the entries serving a
model form its *group*. The `Router` holds every group, built once at start-up,
and each deployment's health in this process (failures in a row, cooldown,
requests in flight). A `Plan` is one request's walk through them:

    the group's pick (by strategy)   retried `retries` times on a retryable failure
    -> the group's next deployment   (by strategy, skipping those cooling down)
    -> each of `fallbacks[model]`    each as a group, in order
    at most `max_attempts` upstream calls; any other failure is the answer at once

Retryable: a refused or reset connection, a timeout before the first byte, an
HTTP status in `retry_on`. A deployment cools down after a 429 or `allowed_fails`
retryable failures in a row; a group whose deployments all cool down still gets
one attempt (the cooldown that ends first), so no request is refused untried.

Pure logic: no HTTP here; the clock and the random source are injected. A model
with one deployment costs one dict lookup and one small object per request.
"""

from __future__ import annotations

import random
import time
from collections.abc import Callable, Iterable, Sequence
from datetime import UTC, datetime
from email.utils import parsedate_to_datetime
from typing import Any

from . import metrics
from .config import RoutingConfig
from .errors import (
    GatewayError,
    ModelNotFound,
    ServiceUnavailable,
    UpstreamError,
    UpstreamTimeout,
    UpstreamUnreachable,
    clip,
)
from .health import Health
from .providers import Provider

FIRST_BACKOFF = 0.25  # seconds before the first retry of one deployment; doubled each time
MAX_RETRY_AFTER = 10.0  # a provider's Retry-After up to this is waited out; longer ones are not


class Deployment:
    """One provider entry serving one model, and its health in this process."""

    __slots__ = ("cool_until", "fails", "health", "in_flight", "key", "model", "ok", "priority", "provider",
                 "renamed", "upstream_model", "weight")

    def __init__(self, provider: Provider, model: str) -> None:
        config = provider.config
        self.provider = provider
        self.key = provider.key
        self.model = model  # the public name
        self.upstream_model = config.model_map.get(model, model)
        self.renamed = self.upstream_model != model
        self.priority = config.priority
        self.weight = config.weight
        self.fails = 0  # retryable failures in a row
        self.cool_until = 0.0  # on the router's clock
        self.in_flight = 0
        self.ok = metrics.UPSTREAM_ATTEMPTS.labels(self.key, "ok")  # bound once: the hot path's counter
        self.health = Health()  # the last hour, for the operator console

    def __repr__(self) -> str:
        return f"<Deployment {self.key}:{self.model}>"


class Router:
    """Every model's group of deployments, the policy, and the pick."""

    def __init__(
        self,
        providers: Iterable[Provider],
        policy: RoutingConfig | None = None,
        *,
        clock: Callable[[], float] = time.monotonic,
        rng: random.Random | None = None,
    ) -> None:
        self.policy = policy or RoutingConfig()
        self.retry_on = frozenset(self.policy.retry_on)
        self.clock = clock
        self.rng = rng or random.Random()
        groups: dict[str, list[Deployment]] = {}
        self._disabled: dict[str, Provider] = {}  # models no enabled provider serves: 503 names the first
        for provider in providers:
            for model in provider.models:
                if provider.enabled:
                    groups.setdefault(model, []).append(Deployment(provider, model))
                else:
                    self._disabled.setdefault(model, provider)
        self.groups = {m: tuple(sorted(g, key=lambda d: d.priority)) for m, g in groups.items()}
        self.fallbacks = {m: tuple(f) for m, f in self.policy.fallbacks.items()}

    def plan(self, model: str) -> Plan:
        """The walk for one request to `model`; raises 404 for an unknown model, 503 when every
        provider serving it is disabled."""
        group = self.groups.get(model)
        if group is None:
            provider = self._disabled.get(model)
            if provider is None:
                raise ModelNotFound(f"The model '{clip(model)}' does not exist or is not served here.", param="model")
            raise ServiceUnavailable(
                f"The provider for model '{model}' ({provider.name}) is disabled: "
                f"set {provider.config.api_key_env} to enable it.",
                code="provider_disabled",
                final=True,
            )
        return Plan(self, group)

    def speaks_responses(self, model: str) -> bool:
        """Whether every deployment a request to `model` could reach (its group and its fallbacks'
        groups) takes the Responses API itself: only then may a `/v1/responses` request use what
        the translation through Chat Completions cannot carry (`previous_response_id`, built-in tools)."""
        group = self.groups.get(model)
        if not group:
            return False
        groups = [group, *(self.groups.get(m, ()) for m in self.fallbacks.get(model, ()))]
        return all(d.provider.speaks_responses for g in groups for d in g)

    # health ------------------------------------------------------------

    def retryable(self, error: GatewayError) -> bool:
        if isinstance(error, UpstreamError):
            return error.status in self.retry_on
        if isinstance(error, UpstreamTimeout):
            return True
        # A refused, reset or broken connection; not garbage, and not our key refused.
        return type(error) is UpstreamUnreachable and error.code == "upstream_unreachable"

    def failed(self, deployment: Deployment, error: GatewayError, retry_after: float | None) -> None:
        """Count a retryable failure; a 429 or `allowed_fails` in a row start a cooldown."""
        deployment.fails += 1
        if error.status == 429 or deployment.fails >= self.policy.allowed_fails:
            seconds = max(self.policy.cooldown_seconds, retry_after or 0.0)
            deployment.cool_until = max(deployment.cool_until, self.clock() + seconds)
            deployment.fails = 0
            metrics.COOLDOWNS.labels(deployment.key).inc()

    def health_rows(self) -> list[dict[str, Any]]:
        """One row per deployment (by provider, then model): the last hour in this process and
        the cooldown now, as `GET /v1/admin/providers` serves it."""
        now, wall = self.clock(), time.time()
        rows: list[dict[str, Any]] = []
        for deployment in sorted((d for g in self.groups.values() for d in g), key=lambda d: (d.key, d.model)):
            cooling = deployment.cool_until > now
            until = datetime.fromtimestamp(wall + deployment.cool_until - now, UTC) if cooling else None
            iso = until.isoformat(timespec="seconds").replace("+00:00", "Z") if until else None
            rows.append({
                "provider": deployment.key, "model": deployment.model, **deployment.health.summary(),
                "cooling_down_until": iso,
            })
        return rows

    # the pick ----------------------------------------------------------

    def pick(self, group: Sequence[Deployment], tried: Sequence[Deployment] = (), *, must: bool = True) -> Deployment | None:
        """The next deployment of `group` not in `tried`, by strategy, skipping those cooling down.

        With `must` (nothing tried in this group yet) and all of them cooling down, the one whose
        cooldown ends first; else None.
        """
        if len(group) == 1 and not tried:
            return group[0]
        now = self.clock()
        left = [d for d in group if d not in tried]
        ready = [d for d in left if d.cool_until <= now]
        if not ready:
            return min(left, key=lambda d: d.cool_until) if left and must else None
        if len(ready) == 1:
            return ready[0]
        strategy = self.policy.strategy
        if strategy == "weighted":
            return self._by_weight(ready)
        if strategy == "least-busy":
            fewest = min(d.in_flight for d in ready)
            ready = [d for d in ready if d.in_flight == fewest]
        best = ready[0].priority  # groups are sorted by priority
        return self._by_weight([d for d in ready if d.priority == best])

    def _by_weight(self, deployments: list[Deployment]) -> Deployment:
        if len(deployments) == 1:
            return deployments[0]
        point = self.rng.random() * sum(d.weight for d in deployments)
        for deployment in deployments:
            point -= deployment.weight
            if point < 0:
                return deployment
        return deployments[-1]

    def backoff(self, retry: int) -> float:
        """Seconds before the `retry`-th retry (1, 2, …) of one deployment: 0.25 s doubling, ±25 % jitter."""
        return FIRST_BACKOFF * 2 ** (retry - 1) * self.rng.uniform(0.75, 1.25)


class Plan:
    """One request's attempts: `deployment` is the one to call now; after a failure, `next(error)`
    says whether (and after how many seconds) there is another."""

    __slots__ = ("_fallback", "_retried", "_tried", "attempts", "deployment", "group", "requested", "router")

    def __init__(self, router: Router, group: tuple[Deployment, ...]) -> None:
        self.router = router
        self.group = group
        self.requested = group[0].model  # the model the client asked for
        self.deployment: Deployment = router.pick(group)  # type: ignore[assignment]  # a group is never empty
        self.attempts = 1  # upstream calls made or about to be made
        self._retried = 0  # retries of `deployment`
        self._tried: list[Deployment] | None = None  # given up on in the current group
        self._fallback = 0  # fallbacks of the requested model tried so far

    def next(self, error: GatewayError) -> float | None:
        """After `deployment` failed with `error`: the seconds to wait before calling the (new)
        `deployment`, or None when `error` is the answer."""
        router, current = self.router, self.deployment
        if not router.retryable(error):
            return None
        retry_after = retry_after_seconds(error.headers.get("Retry-After"))
        router.failed(current, error, retry_after)
        if self.attempts >= router.policy.max_attempts:
            return None
        tried = self._tried = self._tried or []
        tried.append(current)
        if self._retried < router.policy.retries and not self._better_than_waiting(current):
            tried.pop()
            self._retried += 1
            self.attempts += 1
            if retry_after is not None and retry_after <= MAX_RETRY_AFTER:
                return retry_after
            return router.backoff(self._retried)
        following = router.pick(self.group, tried, must=False)
        while following is None:
            following = self._next_group()
            if following is None:
                return None
        self.deployment = following
        self._retried = 0
        self.attempts += 1
        return 0.0

    def _better_than_waiting(self, current: Deployment) -> bool:
        """A deployment that is now cooling down is not retried while its group has a ready one."""
        router = self.router
        if current.cool_until <= router.clock():
            return False
        return router.pick(self.group, self._tried or (), must=False) is not None

    def _next_group(self) -> Deployment | None:
        """The first deployment of the next fallback model's group, or None when none is left."""
        router = self.router
        chain = router.fallbacks.get(self.requested, ())
        while self._fallback < len(chain):
            model = chain[self._fallback]
            self._fallback += 1
            group = router.groups.get(model)
            if group:
                metrics.FALLBACKS.labels(self.requested, model).inc()
                self.group, self._tried = group, []
                return router.pick(group)
        return None


def retry_after_seconds(value: str | None) -> float | None:
    """A `Retry-After` header (seconds or an HTTP date) in seconds from now; None if absent or unreadable."""
    if not value:
        return None
    try:
        return max(0.0, float(value))
    except ValueError:
        pass
    try:
        when = parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    return max(0.0, when.timestamp() - time.time())
