"""Integration: a two-step chain with structured outputs on the real local server (SmolLM2)."""

from __future__ import annotations

from typing import Literal

import pytest
from pydantic import BaseModel, Field

from chainette import Chain, SamplingParams, Step
from chainette.engine.registry import EngineConfig
from chainette.io.stream_writer import read_records

pytestmark = pytest.mark.integration


class Topic(BaseModel):
    text: str


class Fact(BaseModel):
    fact: str = Field(max_length=200)


class Rating(BaseModel):
    quality: Literal["good", "bad"]


TOPICS = [
    "the sun",
    "water",
    "cats",
    "the moon",
    "bread",
    "trees",
    "rain",
    "music",
    "the sea",
    "bees",
    "snow",
    "coffee",
    "horses",
    "books",
    "fire",
    "salt",
    "birds",
    "clocks",
    "rivers",
    "apples",
]


def test_two_step_chain_over_20_inputs_is_at_least_95_percent_schema_valid(tmp_path):
    fact = Step(
        "fact",
        input_model=Topic,
        output_model=Fact,
        engine_name="local",
        sampling=SamplingParams(temperature=0, max_tokens=60),
        system_prompt="You state one short true fact.",
        user_prompt="Topic: {{ text }}",
    )
    rate = Step(
        "rate",
        input_model=Fact,
        output_model=Rating,
        engine_name="local",
        sampling=SamplingParams(temperature=0, max_tokens=20),
        system_prompt="You rate whether a statement is a good fact.",
        user_prompt="Statement: {{ fact }} (about {{ chain_input.text }})",
    )
    # one slot: with two, which requests llama.cpp batches together depends on timing, and a
    # batched sequence's numerics (so a temperature-0 reply) with it: under load a reply or two
    # came out differently and ran past max_tokens. Alone in its slot, each reply is the same
    # every run, so the 95% below measures the model and the constraints, not the machine's load.
    local = EngineConfig(name="local", backend="local", model="smollm2", max_in_flight=16, timeout=300.0, n_parallel=1)
    result = Chain("two-step", steps=[fact, rate]).run(
        [Topic(text=t) for t in TOPICS], tmp_path, cache=False, engines={"local": local}
    )
    rated = list(read_records(tmp_path / "rate"))
    errors = list(read_records(tmp_path / "errors"))
    assert len(rated) >= 19, errors  # >= 95% of the 20 rows end schema-valid after both steps
    for rec in rated:
        Rating.model_validate({k: v for k, v in rec.items() if k != "row_id"})
    # every row is accounted for: a valid final output or an error record naming its step
    ended = {r["row_id"] for r in rated} | {e["row_id"] for e in errors}
    assert ended == {str(i) for i in range(20)}
    assert all(e["step_id"] in ("fact", "rate") and e["error_type"] for e in errors)
    assert result.step_stats["fact"].prompt_tokens > 0 and result.step_stats["rate"].completion_tokens > 0
