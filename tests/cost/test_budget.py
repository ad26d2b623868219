"""Budgets (issue #14 item 3): ``max_tokens`` / ``max_cost`` stop a run before it could pass
the cap, resumable, asserted in tokens and requests at a counting mock server."""

from __future__ import annotations

import json

import anyio
import pytest
from pydantic import BaseModel

from chainette import Chain, SamplingParams, Step
from chainette.engine.pricing import Price
from chainette.engine.protocol import Usage
from chainette.engine.registry import EngineConfig
from chainette.errors import ConfigError
from chainette.events import BudgetReached, EventBus
from chainette.run.budget import Budget

from ._mock import CountingMock, prompt_tokens


class Item(BaseModel):
    text: str


class Label(BaseModel):
    label: str


def make_chain(two: bool = False) -> Chain:
    label = Step(
        "label",
        input_model=Item,
        output_model=Label,
        engine_name="mock",
        sampling=SamplingParams(temperature=0.0, max_tokens=10),
        user_prompt="Classify: {{ text }}",
    )
    steps = [label]
    if two:
        steps.append(
            Step(
                "again",
                input_model=Label,
                output_model=Label,
                engine_name="mock",
                sampling=SamplingParams(temperature=0.0, max_tokens=10),
                user_prompt="Check {{ chain_input.text }} labelled {{ label.label }}",
            )
        )
    return Chain(name="budgeted", steps=steps)


def rows(n: int) -> list[dict]:
    return [{"text": f"item number {i}"} for i in range(n)]


@pytest.fixture
def mock():
    m = CountingMock().start()
    yield m
    m.stop()


def engine(m: CountingMock, **extra) -> EngineConfig:
    return EngineConfig(
        name="mock", backend="vllm_api", endpoint=m.url, model="m", max_retries=0, timeout=10, max_in_flight=8, **extra
    )


def worst_request(m: CountingMock) -> int:
    return max(prompt_tokens(b["messages"]) for b in m.bodies) + m.completion


# -- the admission object alone -------------------------------------------------------------
def test_budget_admits_until_the_worst_case_could_pass_the_cap():
    async def main():
        b = Budget(max_tokens=100)
        msgs = [{"role": "user", "content": "x" * 64}]  # worst case: 64 * 0.5 + 1 prompt + 10 completion
        t1 = await b.admit("s", msgs, 10)
        t2 = await b.admit("s", msgs, 10)
        assert (t1.tokens, t2.tokens) == (43, 43) and b.reserved_tokens == 86 and b.in_flight == 2
        b.settle(t1, Usage(16, 10))  # the reply teaches the ratio: 16 tokens / 64 characters
        assert b.spent_tokens == 26 and b.reserved_tokens == 43
        assert b.worst_case("s", 64, 10)[0] == 27
        t3 = await b.admit("s", msgs, 10)  # 26 spent + 43 reserved + 27 <= 100
        assert t3 is not None and b.stopped_by is None
        b.settle(t2, Usage(16, 10))
        b.settle(t3, Usage(16, 10))
        assert b.spent_tokens == 78 and b.reserved_tokens == 0 and b.in_flight == 0
        assert await b.admit("s", msgs, 10) is None  # 78 + 27 > 100 with nothing in flight: stop
        assert b.stopped_by == "max_tokens" and b.refused["spent_tokens"] == 78
        assert await b.admit("s", [{"role": "user", "content": ""}], 1) is None  # stopped: nothing more
        assert "raise the cap" in b.describe_stop() and "--resume" in b.describe_stop()

    anyio.run(main)


def test_a_request_that_does_not_fit_waits_for_those_in_flight():
    async def main():
        b = Budget(max_tokens=60)
        msgs = [{"role": "user", "content": "x" * 64}]
        first = await b.admit("s", msgs, 10)  # 43 reserved
        got = []

        async def second():
            got.append(await b.admit("s", msgs, 10))

        async with anyio.create_task_group() as tg:
            tg.start_soon(second)
            await anyio.sleep(0.05)
            assert not got and b.stopped_by is None  # waiting: 43 + 43 > 60 while one is in flight
            b.settle(first, Usage(16, 10))  # 26 spent; the ratio learnt: the next worst case is 27
        assert got and got[0] is not None and got[0].tokens == 27 and b.spent_tokens == 26

    anyio.run(main)


def test_cost_cap_uses_the_step_price_and_cached_input():
    async def main():
        price = Price(input=1.0, cached_input=0.5, output=10.0)  # USD per 1M tokens
        b = Budget(max_cost=0.001, step_prices={"s": price})
        t = await b.admit("s", [{"role": "user", "content": "x" * 100}], 10)
        assert t.cost == pytest.approx((51 * 1.0 + 10 * 10.0) / 1e6)
        b.settle(t, Usage(prompt_tokens=40, completion_tokens=10, cached_prompt_tokens=20))
        assert b.spent_cost == pytest.approx((20 * 1.0 + 20 * 0.5 + 10 * 10.0) / 1e6)

    anyio.run(main)


# -- against the mock server -----------------------------------------------------------------
def test_max_tokens_stops_within_the_cap_exactly_at_the_mock(mock, tmp_path):
    cap = 3000
    events = []
    bus = EventBus()
    bus.subscribe(events.append)
    res = make_chain().run(
        rows(300), tmp_path / "run", engines={"mock": engine(mock)}, max_tokens=cap, cache=False, events=bus
    )
    assert res.stopped_by == "max_tokens" and res.interrupted
    # never past the cap, and stopped less than one request's worst case below it
    assert mock.tokens <= cap
    assert cap - mock.tokens < worst_request(mock)
    # what the run recorded is exactly what the mock served
    st = res.step_stats["label"]
    assert (st.prompt_tokens, st.completion_tokens, st.requests) == (
        mock.prompt_tokens,
        mock.completion_tokens,
        mock.chat_requests,
    )
    assert res.cost["total"]["tokens"] == mock.tokens
    # every answered request's row is committed (one step); the rest are left for --resume
    out = [json.loads(line) for line in (tmp_path / "run" / "label" / "000.jsonl").read_text().splitlines()]
    assert len(out) == mock.chat_requests < 300
    meta = json.loads((tmp_path / "run" / "metadata.json").read_text())
    assert meta["status"] == "interrupted" and meta["stopped_by"] == "max_tokens"
    assert meta["cost"]["total"]["tokens"] == mock.tokens
    reached = [e for e in events if isinstance(e, BudgetReached)]
    assert len(reached) == 1 and reached[0].cap == "max_tokens" and reached[0].limit == cap
    assert mock.max_in_flight <= 8


def test_resume_with_a_higher_cap_finishes_and_counts_earlier_sessions(mock, tmp_path):
    chain = make_chain(two=True)
    out = tmp_path / "run"
    first = chain.run(rows(60), out, engines={"mock": engine(mock)}, max_tokens=2500)
    assert first.stopped_by == "max_tokens" and mock.tokens <= 2500
    spent_first = mock.tokens
    # a resume under the same cap admits nothing more: the earlier session's spending counts
    again = chain.run(rows(60), out, engines={"mock": engine(mock)}, max_tokens=2500, resume=True)
    assert again.stopped_by == "max_tokens" and mock.tokens == spent_first
    done = chain.run(rows(60), out, engines={"mock": engine(mock)}, max_tokens=1_000_000, resume=True)
    assert done.stopped_by is None and not done.interrupted
    flat = (out / "flattened" / "000.jsonl").read_text().splitlines()
    assert len(flat) == 60
    # rows stopped between their two steps got step 1 from the item cache: nothing paid twice
    assert mock.chat_requests == 120
    meta = json.loads((out / "metadata.json").read_text())
    assert meta["status"] == "completed"
    assert meta["cost"]["run_total"]["tokens"] == mock.tokens


def test_max_cost_stops_at_the_price_of_the_tokens(mock, tmp_path):
    price = {"input": 2.0, "output": 8.0}
    cap = 0.01
    res = make_chain().run(
        rows(400), tmp_path / "run", engines={"mock": engine(mock, price=price)}, max_cost=cap, cache=False
    )
    spent = (mock.prompt_tokens * 2.0 + mock.completion_tokens * 8.0) / 1e6
    assert res.stopped_by == "max_cost"
    assert spent <= cap
    worst = (worst_request(mock) - mock.completion) * 2.0 / 1e6 + mock.completion * 8.0 / 1e6
    assert cap - spent < worst
    assert res.cost["total"]["cost"] == pytest.approx(spent)
    assert res.cost["engines"]["mock"]["price_source"] == "engine config"


def test_max_cost_needs_a_price_for_every_engine(mock, tmp_path):
    with pytest.raises(ConfigError, match=r"price.*mock|mock.*price"):
        make_chain().run(rows(5), tmp_path / "run", engines={"mock": engine(mock)}, max_cost=1.0)
    assert mock.chat_requests == 0
