"""Fixtures of the batch-mode tests: the mock Batch API, a branching multi-step chain, engines."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
from pydantic import BaseModel

from chainette import Branch, Chain, SamplingParams, Step
from chainette.engine.registry import EngineConfig

from .mock_batch_api import KEY, MockBatchAPI

FAST = {"linger_s": 0.03, "poll_initial_s": 0.02, "poll_max_s": 0.05, "poll_factor": 1.5}


class Question(BaseModel):
    text: str


class Topic(BaseModel):
    topic: str
    score: float


class Translation(BaseModel):
    text: str


class Summary(BaseModel):
    summary: str


def make_chain(engine: str = "gpt", retries: int = 1, *, single: bool = False) -> Chain:
    """topic -> (fr | es, joined) -> summary: three batches per wave of rows."""
    sp = SamplingParams(temperature=0, max_tokens=50)
    topic = Step(
        "topic",
        input_model=Question,
        output_model=Topic,
        engine_name=engine,
        sampling=sp,
        user_prompt="Topic of: {{ text }}",
        max_validation_retries=retries,
    )
    fr = Step(
        "to_fr",
        input_model=Topic,
        output_model=Translation,
        engine_name=engine,
        sampling=sp,
        user_prompt="French for {{ chain_input.text }} ({{ topic.topic }})",
    )
    es = Step(
        "to_es",
        input_model=Topic,
        output_model=Translation,
        engine_name=engine,
        sampling=sp,
        user_prompt="Spanish for {{ chain_input.text }}",
    )
    if single:
        return Chain(name="batchy-one", steps=[topic])
    summary = Step(
        "summary",
        output_model=Summary,
        engine_name=engine,
        sampling=sp,
        user_prompt="{{ french.text }} / {{ spanish.text }}",
    )
    return Chain(
        name="batchy", steps=[topic, [Branch("fr", [fr]).join("french"), Branch("es", [es]).join("spanish")], summary]
    )


def engine_cfg(url: str, name: str = "gpt", **batch: Any) -> EngineConfig:
    return EngineConfig(
        name=name,
        backend="openai",
        model="gpt-4o-mini",
        endpoint=url,
        api_key=KEY,
        mode="batch",
        max_in_flight=1000,
        price={"input": 1.0, "output": 2.0},
        batch={**FAST, **batch},
    )


@pytest.fixture
def mock_api() -> Iterator[MockBatchAPI]:
    with MockBatchAPI() as api:
        yield api


def inputs(n: int) -> list[dict[str, str]]:
    return [{"text": f"question number {i}"} for i in range(n)]
