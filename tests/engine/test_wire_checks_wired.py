"""The wire checks reach validation, `chainette inspect` and the start of a run (issue #11)."""

from __future__ import annotations

import warnings

import pytest
from pydantic import BaseModel

from chainette import Chain, SamplingParams, Step, register_engine
from chainette.engine.registry import unregister_engine
from chainette.errors import ChainValidationError, ChainWarning


class In(BaseModel):
    text: str


class Scores(BaseModel):
    by_label: dict[str, int]  # strict mode cannot express it: the step goes out non-strict


@pytest.fixture
def openai_engine(monkeypatch):
    monkeypatch.setenv("OPENAI_API_KEY", "sk-test-wired-123")
    register_engine(name="wired", backend="openai", model="gpt-4o-mini")
    yield "wired"
    unregister_engine("wired")


def test_unsupported_sampling_field_is_a_validation_error(openai_engine):
    chain = Chain(
        "c",
        steps=[
            Step("s", input_model=In, output_model=Scores, engine_name=openai_engine, sampling=SamplingParams(top_k=5))
        ],
    )
    with pytest.raises(ChainValidationError) as info:
        chain.validate()
    assert "top_k" in str(info.value) and "wired" in str(info.value)


def test_non_strict_schema_is_a_warning_from_validate(openai_engine):
    chain = Chain("c", steps=[Step("s", input_model=In, output_model=Scores, engine_name=openai_engine)])
    assert chain.problems() == []
    assert any("by_label" in w.message for w in chain.warnings())
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        chain.validate()
    assert any(issubclass(w.category, ChainWarning) and "by_label" in str(w.message) for w in caught)
