"""The cost model (issue #14 item 1): prices per engine, the dated default table, unknown prices."""

from __future__ import annotations

import json

import pytest

from chainette.engine.pricing import (
    DEFAULT_TABLE_PATH,
    Price,
    cost_of,
    default_price_table,
    format_cost,
    resolve_price,
)
from chainette.engine.registry import EngineConfig, load_engines_file
from chainette.errors import ConfigError


def test_token_cost_arithmetic_with_cached_input_and_hours():
    p = Price(input=2.5, cached_input=1.25, output=10.0)
    assert p.token_cost(1_000_000, 0) == pytest.approx(2.5)
    assert p.token_cost(1_000, 500) == pytest.approx((1_000 * 2.5 + 500 * 10.0) / 1e6)
    # 400 of 1,000 prompt tokens from the provider's prompt cache: billed at the cached rate
    assert p.token_cost(1_000, 0, cached_tokens=400) == pytest.approx((600 * 2.5 + 400 * 1.25) / 1e6)
    assert Price(input=1, output=2).token_cost(100, 0, cached_tokens=100) == pytest.approx(100 / 1e6)  # default: input
    hourly = Price(per_hour=3.6)
    assert hourly.token_cost(10**6, 10**6) == 0 and hourly.hour_cost(1800) == pytest.approx(1.8)
    assert cost_of(None, 10, 10) is None
    assert cost_of(Price(input=1, output=1, per_hour=36), 10**6, 0, seconds=100) == pytest.approx(2.0)


@pytest.mark.parametrize(
    "fields",
    [
        {"input": 1},
        {"output": 1},
        {"cached_input": 1},
        {},
        {"input": -1, "output": 1},
        {"input": 1, "output": 1, "surprise": 2},
    ],
)
def test_incomplete_or_bad_prices_are_refused(fields):
    with pytest.raises(ValueError):
        Price(**fields)


def test_the_default_table_is_dated_and_names_its_sources():
    raw = json.loads(DEFAULT_TABLE_PATH.read_text())
    assert raw["as_of"] and raw["sources"] and raw["currency"] == "USD"
    table = default_price_table()
    assert table.as_of == raw["as_of"]
    for name, (hosts, models) in table.providers.items():
        assert hosts and models, name


@pytest.mark.parametrize(
    "model,key",
    [
        ("gpt-4o-mini", "gpt-4o-mini"),
        ("gpt-4o-mini-2024-07-18", "gpt-4o-mini"),  # a dated snapshot
        ("gpt-4o-2024-08-06", "gpt-4o"),
        ("gpt-4o-2024-05-13", "gpt-4o-2024-05-13"),  # listed on its own: another price
    ],
)
def test_hosted_models_are_priced_from_the_table(model, key):
    cfg = EngineConfig(name="g", backend="openai", model=model)
    price, source = resolve_price(cfg)
    assert price is not None and source.endswith(f"(openai {key})") and default_price_table().as_of in source


@pytest.mark.parametrize(
    "cfg",
    [
        EngineConfig(name="a", backend="openai", model="gpt-4o-audio-preview"),  # not a snapshot of gpt-4o
        EngineConfig(name="b", backend="openai", model="my-finetune"),
        EngineConfig(name="c", backend="openai", model="gpt-4o-mini", endpoint="https://openrouter.example/v1"),
        EngineConfig(name="d", backend="vllm_api", model="gpt-4o-mini", endpoint="http://127.0.0.1:8000/v1"),
        EngineConfig(name="e", backend="vllm_api", model="meta-llama/Llama-3.1-8B-Instruct"),
        EngineConfig(name="f", backend="fake", model="x"),
    ],
)
def test_an_unknown_price_is_unknown_never_guessed(cfg):
    assert resolve_price(cfg) == (None, "unknown")


def test_the_engines_file_overrides_the_table(tmp_path):
    f = tmp_path / "engines.yml"
    f.write_text(
        "engines:\n"
        "  - {name: gpt, backend: openai, model: gpt-4o-mini, price: {input: 0.2, output: 0.9}}\n"
        "  - {name: own, backend: vllm_api, model: llama, endpoint: 'http://h:8000/v1', price: {per_hour: 2.5}}\n"
    )
    gpt, own = load_engines_file(f, register=False)
    assert resolve_price(gpt) == (Price(input=0.2, output=0.9), "engine config")
    assert resolve_price(own)[0].per_hour == 2.5
    assert gpt.public_dict()["price"] == {"input": 0.2, "cached_input": None, "output": 0.9, "per_hour": None}


def test_a_bad_price_in_the_engines_file_names_the_engine(tmp_path):
    f = tmp_path / "engines.yml"
    f.write_text("engines:\n  - {name: gpt, backend: openai, model: gpt-4o, price: {input: 1}}\n")
    with pytest.raises(ConfigError, match="gpt.*price"):
        load_engines_file(f, register=False)


def test_format_cost():
    assert format_cost(None) == "price unknown"
    assert format_cost(0) == "$0"
    assert format_cost(0.000123) == "$0.00012"
    assert format_cost(1.5) == "$1.5000"
    assert format_cost(1234.5) == "$1,234.50"
