"""The routing policy without HTTP: groups, the pick by strategy, retries, failover, fallbacks,
cooldowns and their expiry, on an injected clock and random source; and the `routing` block of
the configuration file."""

from __future__ import annotations

import random
from collections import Counter
from typing import Any

import pytest

from llm_wrapper.config import ConfigError, ProviderConfig, RoutingConfig, parse_config
from llm_wrapper.errors import (
    GatewayError,
    InvalidRequest,
    ProviderAuthFailed,
    UpstreamError,
    UpstreamTimeout,
    UpstreamUnreachable,
)
from llm_wrapper.providers import Provider, adapter_for
from llm_wrapper.routing import Deployment, Router, retry_after_seconds

MODEL = "llama"


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def provider(key: str, models: tuple[str, ...] = (MODEL,), enabled: bool = True, **fields: Any) -> Provider:
    config = ProviderConfig(
        key=key, name=key.title(), base_url=f"https://{key}.example/v1", api_key_env=f"{key.upper()}_KEY",
        supported_models=list(models), adapter="openai", **fields,
    )
    return adapter_for(config)(config, "k" if enabled else None)


def router(*providers: Provider, clock: Clock | None = None, seed: int = 1, **policy: Any) -> Router:
    return Router(providers, RoutingConfig(**policy), clock=clock or Clock(), rng=random.Random(seed))


def status(code: int, retry_after: str | None = None) -> UpstreamError:
    error = UpstreamError(f"HTTP {code}", status=code)
    if retry_after is not None:
        error.headers["Retry-After"] = retry_after
    return error


REFUSED = UpstreamUnreachable("refused (ClientConnectorError).")


def walk(plan: Any, errors: list[GatewayError]) -> list[tuple[str, str, float | None]]:
    """Fail each attempt with the next error; the (provider, model, wait) of every step."""
    steps = [(plan.deployment.key, plan.deployment.model, 0.0)]
    for error in errors:
        wait = plan.next(error)
        if wait is None:
            steps.append(("answer", "", None))
            break
        steps.append((plan.deployment.key, plan.deployment.model, wait))
    return steps


def test_a_single_deployment_plan_is_the_deployment_itself() -> None:
    r = router(provider("a"))
    plan = r.plan(MODEL)
    assert plan.deployment.key == "a" and plan.attempts == 1
    assert plan.deployment is r.plan(MODEL).deployment  # built once, at start-up


def test_retryable_failures_retry_then_go_to_the_next_deployment_then_the_fallbacks() -> None:
    r = router(
        provider("a", priority=0), provider("b", priority=1), provider("c", ("small",)),
        retries=1, fallbacks={MODEL: ["small"]},
    )
    steps = walk(r.plan(MODEL), [status(503), REFUSED, UpstreamTimeout("late"), status(502), status(500), status(500)])
    keys = [(k, m) for k, m, _ in steps]
    assert keys == [("a", MODEL), ("a", MODEL), ("b", MODEL), ("b", MODEL), ("c", "small"), ("c", "small"),
                    ("answer", "")]
    waits = [w for _, _, w in steps]
    assert 0.25 * 0.75 <= waits[1] <= 0.25 * 1.25  # a retry of the same deployment backs off
    assert waits[2] == 0.0 and waits[4] == 0.0  # another deployment is tried at once


def test_backoff_doubles_with_jitter() -> None:
    r = router(provider("a"))
    firsts = [r.backoff(1) for _ in range(50)]
    seconds = [r.backoff(2) for _ in range(50)]
    assert all(0.1875 <= w <= 0.3125 for w in firsts) and len(set(firsts)) > 10
    assert all(0.375 <= w <= 0.625 for w in seconds)


@pytest.mark.parametrize(
    "error",
    [
        InvalidRequest("bad"), status(400), status(401), status(404), status(413), status(422),
        ProviderAuthFailed("our key"),
        UpstreamUnreachable("garbage", code="bad_upstream_response"),
    ],
)
def test_other_failures_are_the_answer_at_once(error: GatewayError) -> None:
    r = router(provider("a"), provider("b"), retries=3)
    plan = r.plan(MODEL)
    assert plan.next(error) is None
    assert plan.attempts == 1


def test_retry_on_is_the_operators_list() -> None:
    r = router(provider("a"), retries=1, retry_on=[418])
    assert r.plan(MODEL).next(status(418)) is not None
    assert r.plan(MODEL).next(status(503)) is None


def test_max_attempts_caps_every_call() -> None:
    r = router(provider("a"), provider("b"), retries=5, max_attempts=3, allowed_fails=100)
    plan = r.plan(MODEL)
    assert plan.next(status(500)) is not None and plan.next(status(500)) is not None
    assert plan.attempts == 3
    assert plan.next(status(500)) is None


def test_a_short_retry_after_is_waited_out_and_a_long_one_is_not() -> None:
    r = router(provider("a"), retries=2, cooldown_seconds=0)
    plan = r.plan(MODEL)
    assert plan.next(status(503, "3")) == 3.0
    assert plan.next(status(503, "60")) < 1.0  # past 10 s: the usual backoff (second retry: ~0.5 s)


def test_a_429_cools_the_deployment_down_for_its_retry_after_when_longer() -> None:
    clock = Clock()
    a, b = provider("a"), provider("b", priority=1)
    r = router(a, b, clock=clock, cooldown_seconds=30, retries=1)
    plan = r.plan(MODEL)
    assert plan.deployment.key == "a"
    # Cooling down, with a ready deployment in the group: go there now rather than wait.
    assert plan.next(status(429, "45")) == 0.0 and plan.deployment.key == "b"
    assert r.plan(MODEL).deployment.key == "b"  # new requests skip `a`
    clock.now += 44
    assert r.plan(MODEL).deployment.key == "b"
    clock.now += 1.5
    assert r.plan(MODEL).deployment.key == "a"  # the cooldown expired


def test_allowed_fails_in_a_row_start_a_cooldown_and_a_success_resets_the_count() -> None:
    clock = Clock()
    r = router(provider("a"), provider("b", priority=1), clock=clock, allowed_fails=2, retries=0, cooldown_seconds=10)
    first = r.plan(MODEL)
    first.next(status(500))
    a = first.group[0]
    assert a.fails == 1 and r.plan(MODEL).deployment.key == "a"
    a.fails = 0  # what a success does (the gateway sets it)
    r.plan(MODEL).next(status(500))
    assert r.plan(MODEL).deployment.key == "a"
    r.plan(MODEL).next(status(502))
    assert r.plan(MODEL).deployment.key == "b"
    clock.now += 10
    assert r.plan(MODEL).deployment.key == "a"


def test_a_group_cooling_down_still_gets_an_attempt_at_the_one_ending_first() -> None:
    clock = Clock()
    r = router(provider("a"), provider("b"), clock=clock, cooldown_seconds=30, retries=0)
    for key, seconds in (("a", "50"), ("b", "40")):
        deployment = next(d for d in r.groups[MODEL] if d.key == key)
        r.failed(deployment, status(429), retry_after_seconds(seconds))
    plan = r.plan(MODEL)
    assert plan.deployment.key == "b"
    assert plan.next(status(503)) is None  # `a` is cooling down and `b` was tried: nothing left


def test_a_single_deployment_cooling_down_is_still_retried() -> None:
    clock = Clock()
    r = router(provider("a"), clock=clock, retries=1)
    plan = r.plan(MODEL)
    assert plan.next(status(429, "2")) == 2.0
    assert plan.deployment.key == "a" and plan.attempts == 2


def test_fallback_groups_are_skipped_when_unserved_and_the_metric_names_the_pair() -> None:
    r = router(provider("a"), provider("off", ("small",), enabled=False), provider("c", ("tiny",)),
               retries=0, fallbacks={MODEL: ["small", "tiny"]})
    steps = walk(r.plan(MODEL), [status(500), status(500)])
    assert [(k, m) for k, m, _ in steps] == [("a", MODEL), ("c", "tiny"), ("answer", "")]


def test_priority_goes_lowest_first_and_shares_ties_by_weight() -> None:
    r = router(provider("a", priority=1), provider("b", priority=0, weight=3), provider("c", priority=0, weight=1))
    picks = Counter(r.plan(MODEL).deployment.key for _ in range(4000))
    assert picks["a"] == 0
    assert 0.70 <= picks["b"] / 4000 <= 0.80


def test_weighted_ignores_priority() -> None:
    r = router(provider("a", priority=5, weight=1), provider("b", priority=0, weight=1), strategy="weighted")
    picks = Counter(r.plan(MODEL).deployment.key for _ in range(2000))
    assert 0.4 <= picks["a"] / 2000 <= 0.6


def test_least_busy_takes_the_deployment_with_fewest_in_flight() -> None:
    r = router(provider("a"), provider("b"), provider("c"), strategy="least-busy")
    load = {"a": 3, "b": 1, "c": 2}
    for deployment in r.groups[MODEL]:
        deployment.in_flight = load[deployment.key]
    assert {r.plan(MODEL).deployment.key for _ in range(50)} == {"b"}


def test_model_map_renames_for_the_provider_only() -> None:
    r = router(provider("a", (), model_map={"llama": "Meta-Llama-3.3-70B"}), provider("b"))
    a, b = r.groups[MODEL]
    assert (a.model, a.upstream_model, a.renamed) == ("llama", "Meta-Llama-3.3-70B", True)
    assert (b.upstream_model, b.renamed) == ("llama", False)


def test_retry_after_is_read_in_seconds_or_as_a_date() -> None:
    assert retry_after_seconds("2.5") == 2.5
    assert retry_after_seconds(None) is None and retry_after_seconds("soon") is None
    assert retry_after_seconds("Wed, 21 Oct 2015 07:28:00 GMT") == 0.0


# the configuration file ------------------------------------------------------


def entry(models: list[str], **extra: Any) -> dict[str, Any]:
    return {"name": "N", "base_url": "https://x/v1", "api_key_env": "K", "supported_models": models, **extra}


def test_the_same_model_in_two_entries_is_a_group() -> None:
    config = parse_config({
        "together": entry(["m"]),
        "together_b": entry([], adapter="together", model_map={"m": "org/M"}, priority=1, weight=2),
    })
    assert config.providers["together_b"].supported_models == ["m"]
    providers = [adapter_for(c)(c, "k") for c in config.providers.values()]
    group = Router(providers, config.routing).groups["m"]
    assert [(d.key, d.upstream_model, d.priority, d.weight) for d in group] == [
        ("together", "m", 0, 1.0), ("together_b", "org/M", 1, 2.0)
    ]
    assert isinstance(group[0], Deployment)


@pytest.mark.parametrize(
    ("routing", "says"),
    [
        ({"strategy": "fastest"}, "strategy"),
        ({"retries": -1}, "retries"),
        ({"max_attempts": 0}, "max_attempts"),
        ({"fallbacks": {"m": ["nope"]}}, "nope"),
        ({"retry": 2}, "retry"),
        ({"name": "R", "base_url": "https://x", "api_key_env": "K"}, "may not be named 'routing'"),
        ([], "must be an object"),
    ],
)
def test_a_bad_routing_block_is_a_start_up_error(routing: Any, says: str) -> None:
    with pytest.raises(ConfigError, match=says):
        parse_config({"a": entry(["m"]), "routing": routing})


def test_defaults_are_the_contracts() -> None:
    routing = parse_config({"a": entry(["m"])}).routing
    assert routing.model_dump() == {
        "strategy": "priority", "retries": 1, "retry_on": [408, 409, 429, 500, 502, 503, 504],
        "cooldown_seconds": 30, "allowed_fails": 3, "fallbacks": {}, "max_attempts": 6,
    }


def test_weight_must_be_positive() -> None:
    with pytest.raises(ConfigError, match="weight"):
        parse_config({"a": entry(["m"], weight=0)})
