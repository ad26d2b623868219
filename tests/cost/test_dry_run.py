"""Dry run (issue #14 item 4): render sample prompts, count tokens, project tokens, cost and
duration for the whole input; a plain dry run sends no request (asserted at the mock)."""

from __future__ import annotations

import sys
import types

import pytest

from chainette import Chain, SamplingParams, Step, apply
from chainette.engine.registry import EngineConfig
from chainette.engine.tokens import EstimateCounter, ServerTokenizer, TiktokenCounter, counter_for
from chainette.run.dry_run import dry_run

from ._mock import CountingMock, prompt_tokens
from .test_budget import Item, Label, engine, make_chain, rows


@pytest.fixture
def mock():
    m = CountingMock().start()
    yield m
    m.stop()


def test_a_plain_dry_run_renders_counts_and_projects_without_a_request(mock):
    price = {"input": 1.0, "output": 4.0}
    report = dry_run(
        make_chain(two=True),
        rows(1000),
        total=1000,
        sample=4,
        engines={"mock": engine(mock, price=price, requests_per_minute=600)},
    )
    assert mock.chat_requests == 0 and report.requests_sent == 0
    label, again = report.steps
    # prompts rendered per step, the first in full: later steps see earlier (placeholder) outputs
    assert label.sample_requests == 4 and label.first_messages[-1]["content"] == "Classify: item number 0"
    assert again.first_messages[-1]["content"].startswith("Check item number 0 labelled ")
    assert label.requests == again.requests == 1000
    # the server has no tokenize endpoint here: an estimate, labelled so
    assert not label.prompt_exact and "estimate" in label.prompt_method
    assert label.completion_tokens == 10 and label.completion_method == "max_tokens (upper bound)"
    assert label.projected_completion_tokens == 10_000
    assert report.tokens == sum(s.projected_prompt_tokens + s.projected_completion_tokens for s in report.steps)
    assert report.cost == pytest.approx((report.prompt_tokens * 1.0 + report.completion_tokens * 4.0) / 1e6)
    assert report.cost_is_upper_bound
    # duration from the engine's rate limit: 2,000 requests at 600/minute
    assert report.duration_s == pytest.approx(200.0) and "requests_per_minute" in report.duration_basis
    assert set(mock.other_requests) <= {"/tokenize", "/apply-template"}  # the tokenizer probe, no generation


def test_the_running_servers_tokenizer_counts_exactly(mock):
    mock.tokenize = True
    report = dry_run(make_chain(), rows(50), total=50, sample=2, engines={"mock": engine(mock)})
    step = report.steps[0]
    assert step.prompt_exact and step.prompt_method == "vllm server tokenizer"
    assert step.prompt_tokens == pytest.approx(prompt_tokens(step.first_messages) + 7, abs=1)
    assert mock.chat_requests == 0
    assert report.cost is None and any("price unknown" in n for n in report.notes)


def test_tiktoken_counts_openai_models_when_installed(monkeypatch):
    class Enc:
        name = "o200k_base"

        def encode(self, text):
            return text.split()

    fake = types.ModuleType("tiktoken")
    fake.encoding_for_model = lambda model: Enc()
    fake.get_encoding = lambda name: Enc()
    monkeypatch.setitem(sys.modules, "tiktoken", fake)
    counter = counter_for(EngineConfig(name="g", backend="openai", model="gpt-4o-mini"))
    assert isinstance(counter, TiktokenCounter) and counter.exact and counter.label == "tiktoken o200k_base"
    # 3 + per message (3 + content tokens + role tokens)
    assert counter.count([{"role": "user", "content": "a b c"}]) == 3 + 3 + 3 + 1


def test_without_tiktoken_openai_prompts_are_estimated(monkeypatch):
    monkeypatch.setitem(sys.modules, "tiktoken", None)  # import fails
    counter = counter_for(EngineConfig(name="g", backend="openai", model="gpt-4o-mini"))
    assert isinstance(counter, EstimateCounter) and not counter.exact and "estimate" in counter.label
    assert counter.count([{"role": "user", "content": "x" * 40}]) == 3 + 4 + 10


def test_server_tokenizer_that_does_not_answer_falls_back_to_an_estimate():
    cfg = EngineConfig(name="v", backend="vllm_api", model="m", endpoint="http://127.0.0.1:9/v1")
    counter = counter_for(cfg)
    assert isinstance(counter, EstimateCounter) and "did not answer" in counter.label
    assert ServerTokenizer("http://h:1/v1").root == "http://h:1"


def test_a_sample_run_measures_completion_tokens_and_latency(mock):
    mock.latency = 0.05
    mock.completion = 7
    report = dry_run(
        make_chain(two=True),
        rows(400),
        total=400,
        sample=2,
        sample_run=3,
        engines={"mock": engine(mock, price={"input": 1.0, "output": 4.0})},
        cache=False,
    )
    assert mock.chat_requests == report.requests_sent == 6  # 3 rows x 2 steps, really sent
    for st in report.steps:
        assert st.completion_tokens == 7 and "sample run" in st.completion_method and st.prompt_exact
        assert st.latency_s == pytest.approx(0.05, abs=0.05)
    # 800 requests x ~50 ms over 8 slots of the engine
    assert report.duration_s == pytest.approx(800 * 0.05 / 8, rel=0.6) and "measured latency" in report.duration_basis
    assert not report.cost_is_upper_bound and report.cost is not None


def test_fan_out_and_filters_scale_the_requests_per_input(mock):
    def twice(item):
        return [item, item]

    label = Step(
        "label",
        input_model=Item,
        output_model=Label,
        engine_name="mock",
        sampling=SamplingParams(max_tokens=5),
        user_prompt="{{ text }}",
    )
    after = Step(
        "after",
        input_model=Label,
        output_model=Label,
        engine_name="mock",
        sampling=SamplingParams(max_tokens=5),
        user_prompt="{{ label }}",
    )
    chain = Chain("fan", [label, apply(twice, id="twice", input_model=Label, output_model=Label), after])
    report = dry_run(chain, rows(10), total=10, sample=2, engines={"mock": engine(mock)})
    by_id = {s.step_id: s for s in report.steps}
    assert by_id["label"].requests == 10 and by_id["after"].requests == 20
    assert by_id["after"].requests_per_input == 2.0
    assert mock.chat_requests == 0


def test_the_input_is_counted_when_its_size_is_unknown(mock):
    report = dry_run(make_chain(), iter(rows(37)), sample=2, engines={"mock": engine(mock)})
    assert report.total_inputs == 37 and report.steps[0].requests == 37


def test_a_plain_dry_run_needs_no_api_key_but_a_sample_run_does(monkeypatch):
    from chainette.errors import ChainValidationError

    monkeypatch.delenv("OPENAI_API_KEY", raising=False)
    monkeypatch.delenv("OPENAI_BASE_URL", raising=False)
    gpt = EngineConfig(name="mock", backend="openai", model="gpt-4o-mini")
    report = dry_run(make_chain(), rows(10), total=10, engines={"mock": gpt})
    assert report.cost is not None and any("no API key yet" in n for n in report.notes)
    assert report.steps[0].price_source.startswith("prices.json as of")
    with pytest.raises(ChainValidationError, match="API key"):
        dry_run(make_chain(), rows(10), total=10, engines={"mock": gpt}, sample_run=1)
