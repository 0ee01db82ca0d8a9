"""The price table: the shipped data file, config overrides, and the cost of a usage."""

from __future__ import annotations

import json
from dataclasses import replace
from pathlib import Path

import pytest

from llm_wrapper.config import ConfigError, load_config, parse_config
from llm_wrapper.pricing import Price, PriceTable, shipped_prices

ROOT = Path(__file__).resolve().parent.parent
UNPRICED = {"DeepSeek-V3-0324", "speed", "lite", "base", "core"}
EMBEDDING_MODELS = {"text-embedding-3-small", "text-embedding-3-large"}


def test_every_shipped_model_is_priced_with_its_source_and_date_or_named_unpriced() -> None:
    data = json.loads((ROOT / "src/llm_wrapper/data/prices.json").read_text())["models"]
    # Every name a provider is sent: a model renamed by `model_map` is priced under the provider's name.
    providers = load_config(ROOT / "config.json").providers.values()
    shipped = {p.model_map.get(m, m) for p in providers for m in p.supported_models}
    assert set(data) == shipped - UNPRICED
    for model, entry in data.items():
        assert entry["source"] and entry["date"] == "2026-11-29", model
        assert entry["input_per_mtok"] > 0, model
        if model in EMBEDDING_MODELS:  # they read, and write no tokens: output is priced 0
            assert entry["output_per_mtok"] == 0, model
        else:
            assert entry["output_per_mtok"] > 0, model
    assert shipped_prices()["sonar"].per_request == 0.005


def test_cost_prices_cached_prompt_tokens_at_the_cached_rate() -> None:
    table = PriceTable.load()
    usage = {"prompt_tokens": 1000, "completion_tokens": 100, "prompt_tokens_details": {"cached_tokens": 400}}
    cost, priced = table.cost("gpt-4o-mini", usage)  # 600 x 0.15 + 400 x 0.075 + 100 x 0.6 per million
    assert priced and cost == pytest.approx(180e-6)
    assert table.cost("gpt-4o-mini", {"prompt_tokens": 1000, "completion_tokens": 100})[0] == pytest.approx(210e-6)


def test_reasoning_tokens_are_not_billed_twice_and_the_request_fee_is_added() -> None:
    table = PriceTable.load()
    usage = {"prompt_tokens": 10, "completion_tokens": 50, "completion_tokens_details": {"reasoning_tokens": 40}}
    assert table.cost("gpt-5", usage)[0] == pytest.approx((10 * 1.25 + 50 * 10.0) / 1e6)
    assert table.cost("sonar", {"prompt_tokens": 0, "completion_tokens": 0})[0] == pytest.approx(0.005)


def test_an_unpriced_model_costs_nothing_and_says_so() -> None:
    assert PriceTable.load().cost("speed", {"prompt_tokens": 5, "completion_tokens": 5}) == (0.0, False)
    assert PriceTable.load().cost(None, None) == (0.0, False)


def test_a_request_without_usage_costs_nothing_not_even_its_fee() -> None:
    assert PriceTable.load().cost("sonar", None) == (0.0, True)


def test_odd_usage_values_count_as_zero() -> None:
    usage = {"prompt_tokens": "9", "completion_tokens": -3, "prompt_tokens_details": {"cached_tokens": 10**9}}
    assert Price(1.0, 0.5, 2.0).cost(usage) == 0.0


def test_config_pricing_overrides_the_named_fields_and_adds_models() -> None:
    config = parse_config({
        "openai": {
            "name": "OpenAI", "base_url": "http://x", "api_key_env": "K",
            "pricing": {"gpt-4o-mini": {"output_per_mtok": 1.0}, "my-model": {"input_per_mtok": 2.0, "per_request": 0.01}},
        }
    })
    table = PriceTable.load(config.providers)
    assert table.price("gpt-4o-mini", "openai") == Price(0.15, 0.075, 1.0, 0.0)
    assert table.price("gpt-4o-mini") == Price(0.15, 0.075, 0.6, 0.0)  # another entry's is the shipped one
    assert table.cost("my-model", {"prompt_tokens": 1_000_000}, "openai")[0] == pytest.approx(2.01)


def test_a_model_served_by_several_deployments_costs_what_the_one_that_answered_charges() -> None:
    entry = {"base_url": "http://x", "api_key_env": "K"}
    config = parse_config({
        "sambanova": {**entry, "name": "S", "model_map": {"llama": "Meta-Llama-3.3-70B-Instruct"}},
        "together": {**entry, "name": "T", "model_map": {"llama": "meta-llama/Llama-3.3-70B-Instruct-Turbo"},
                     "pricing": {"llama": {"output_per_mtok": 9.0}}},
    })
    table = PriceTable.load(config.providers)
    shipped = shipped_prices()
    assert table.price("llama", "sambanova", "Meta-Llama-3.3-70B-Instruct") == shipped["Meta-Llama-3.3-70B-Instruct"]
    together = table.price("llama", "together", "meta-llama/Llama-3.3-70B-Instruct-Turbo")
    assert together == replace(shipped["meta-llama/Llama-3.3-70B-Instruct-Turbo"], output_per_mtok=9.0)
    assert table.price("llama") is None  # no deployment known, no public price: unpriced


@pytest.mark.parametrize("bad", [{"input_per_mtok": -1}, {"output_per_mtok": "cheap"}, {"per_token": 1}])
def test_a_bad_price_in_the_config_names_where(bad: dict) -> None:
    with pytest.raises(ConfigError, match="pricing"):
        parse_config({"openai": {"name": "O", "base_url": "http://x", "api_key_env": "K", "pricing": {"m": bad}}})
