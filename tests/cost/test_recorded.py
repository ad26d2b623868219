"""Tokens and cost, live and recorded (issue #14 item 2): progress events, the live display,
metadata.json, the summary, --json-logs, per step and per engine, and the item cache's savings."""

from __future__ import annotations

import io
import json

import pytest
from rich.console import Console

from chainette import Chain, FakeEngine, SamplingParams, Step
from chainette.cli_support.live import JsonLogs, RunProgress, summary_dict, summary_table
from chainette.events import BatchFinished, EventBus, RunFinished

from ._mock import CountingMock
from .test_budget import Item, Label, engine, make_chain, rows


@pytest.fixture
def mock():
    m = CountingMock().start()
    yield m
    m.stop()


def render(obj) -> str:
    console = Console(file=io.StringIO(), width=160, color_system=None)
    console.print(obj)
    return console.file.getvalue()


def test_metadata_summary_and_events_carry_tokens_and_cost_per_step_and_engine(mock, tmp_path):
    events = []
    bus = EventBus()
    bus.subscribe(events.append)
    price = {"input": 1.0, "output": 4.0}
    res = make_chain(two=True).run(
        rows(30), tmp_path / "run", engines={"mock": engine(mock, price=price)}, cache=False, events=bus
    )
    expected = (mock.prompt_tokens * 1.0 + mock.completion_tokens * 4.0) / 1e6
    meta = json.loads((tmp_path / "run" / "metadata.json").read_text())
    cost = meta["cost"]
    assert cost["total"]["tokens"] == mock.tokens and cost["total"]["cost"] == pytest.approx(expected)
    assert cost["total"]["requests"] == mock.chat_requests == 60
    assert cost["engines"]["mock"]["cost"] == pytest.approx(expected)
    assert cost["engines"]["mock"]["price"] == price and cost["engines"]["mock"]["model"] == "m"
    steps = cost["steps"]
    assert set(steps) == {"label", "again"}
    assert sum(s["tokens"] for s in steps.values()) == mock.tokens
    assert steps["label"]["cost"] == pytest.approx(
        (steps["label"]["prompt_tokens"] + 4 * steps["label"]["completion_tokens"]) / 1e6
    )
    assert cost["prices_as_of"] and cost["currency"] == "USD"
    # progress events: token and cost deltas add up to the totals
    batches = [e for e in events if isinstance(e, BatchFinished)]
    assert sum(e.prompt_tokens + e.completion_tokens for e in batches) == mock.tokens
    assert sum(e.cost for e in batches) == pytest.approx(expected)
    finished = [e for e in events if isinstance(e, RunFinished)][0]
    assert finished.cost["total"]["cost"] == pytest.approx(expected) and finished.stopped_by is None
    # the summary (table and --json-logs data)
    d = summary_dict(res)
    assert d["total_cost"] == pytest.approx(expected) and d["cost"]["steps"]["again"]["tokens"] > 0
    text = render(summary_table(res))
    assert "cost" in text and f"tokens: {mock.tokens:,}" in text


def test_an_engine_without_a_price_shows_tokens_and_price_unknown(mock, tmp_path):
    events = []
    bus = EventBus()
    bus.subscribe(events.append)
    res = make_chain().run(rows(10), None, engines={"mock": engine(mock)}, cache=False, events=bus)
    total = res.cost["total"]
    assert total["tokens"] == mock.tokens and total["unpriced_engines"] == ["mock"] and not total["cost_complete"]
    assert res.cost["steps"]["label"]["cost"] is None and res.cost["engines"]["mock"]["cost"] is None
    assert all(e.cost is None for e in events if isinstance(e, BatchFinished) and e.prompt_tokens)
    progress = RunProgress()
    for e in events:
        progress(e)
    live = render(progress)
    assert "price unknown" in live and "$" in live  # "total N tokens, $0 + price unknown"
    assert "price unknown for mock" in render(summary_table(res))


def test_live_progress_shows_cost_per_step_total_and_budget():
    progress = RunProgress()
    from chainette.events import RunStarted

    progress(RunStarted("r", "c", None, 10, ["a", "b"], max_cost=1.0))
    progress(BatchFinished("a", 5, 0, 1000, 200, 0.0123))
    progress(BatchFinished("b", 5, 0, 500, 100, None))
    text = render(progress)
    assert "$0.0123" in text and "price unknown" in text and "budget $0.0123 of $1.0000" in text


def test_json_logs_lines_carry_cost():
    out = io.StringIO()
    logs = JsonLogs(out)
    logs(BatchFinished("a", 5, 0, 1000, 200, 0.0123))
    line = json.loads(out.getvalue())
    assert line["event"] == "BatchFinished" and line["cost"] == 0.0123 and line["prompt_tokens"] == 1000


def test_item_cache_hits_are_reported_as_savings(mock, tmp_path):
    price = {"input": 1.0, "output": 4.0}
    chain = make_chain()
    first = chain.run(rows(20), None, engines={"mock": engine(mock, price=price)})
    paid = mock.tokens
    second = chain.run(rows(20), None, engines={"mock": engine(mock, price=price)})
    assert mock.tokens == paid  # all answered from the item cache
    saved = second.cost["cache_savings"]
    assert saved["hits"] == 20 and saved["tokens"] == paid == first.cost["total"]["tokens"]
    assert saved["cost"] == pytest.approx(first.cost["total"]["cost"])
    assert second.cost["total"]["tokens"] == 0 and second.cost["steps"]["label"]["saved_cost"] == pytest.approx(
        saved["cost"]
    )
    assert "item cache: 20 hit(s)" in render(summary_table(second))


def test_cached_prompt_tokens_are_billed_at_the_cached_price(tmp_path):
    m = CountingMock(cached_tokens=8).start()
    try:
        price = {"input": 1.0, "cached_input": 0.25, "output": 4.0}
        res = make_chain().run(rows(5), None, engines={"mock": engine(m, price=price)}, cache=False)
    finally:
        m.stop()
    st = res.cost["steps"]["label"]
    assert st["cached_prompt_tokens"] == 40
    assert st["cost"] == pytest.approx(((m.prompt_tokens - 40) * 1.0 + 40 * 0.25 + m.completion_tokens * 4.0) / 1e6)


def test_a_per_hour_price_charges_the_time_the_run_held_the_engine():
    step = Step("s", input_model=Item, output_model=Label, engine_name="gpu", sampling=SamplingParams(max_tokens=5))
    fake = FakeEngine("gpu", latency=0.05)
    fake.price = {"per_hour": 3600.0}  # one dollar per second
    res = Chain("hourly", [step]).run(rows(4), None, engines={"gpu": fake}, cache=False)
    e = res.cost["engines"]["gpu"]
    assert e["token_cost"] == 0 and e["held_s"] > 0.04
    assert e["hour_cost"] == pytest.approx(e["held_s"], rel=0.05) and res.cost["total"]["cost"] == e["cost"]
    assert res.cost["steps"]["s"]["cost"] == 0
