"""``Chain.run(..., resume=True)`` (the Python API) after a crash mid-run: committed rows are
kept and never requested again, the rest complete, no duplicates."""

from __future__ import annotations

import sys

import anyio
import pytest
from pydantic import BaseModel

from chainette import Chain, SamplingParams, Step
from chainette.engine.fake import FakeEngine
from chainette.errors import ResumeError

from .conftest import assert_accounted, committed_rows, journal

if sys.version_info < (3, 11):  # anyio installs the backport there
    from exceptiongroup import BaseExceptionGroup


class Item(BaseModel):
    text: str


class Label(BaseModel):
    label: str


class Summary(BaseModel):
    summary: str


def _chain(prompt: str = "L {{ text }}") -> Chain:
    a = Step(
        "label",
        input_model=Item,
        output_model=Label,
        engine_name="fake",
        user_prompt=prompt,
        sampling=SamplingParams(temperature=0),
    )
    b = Step(
        "summary",
        input_model=Label,
        output_model=Summary,
        engine_name="fake",
        user_prompt="S {{ label.label }}",
        sampling=SamplingParams(temperature=0),
    )
    return Chain(name="api", steps=[a, b])


class Crash(Exception):
    pass


def _rows(n: int, crash_at: int | None = None):
    for i in range(n):
        if i == crash_at:
            raise Crash("input source died")
        yield Item(text=f"t{i}")


def _seen_rows(engine_calls: list[str]) -> set[int]:
    return {int(r) for r in engine_calls}


def test_python_api_resume_after_a_crash(tmp_path):
    calls: list[str] = []

    def handler(req):
        calls.append(req.row_id)
        return {"label": f"l-{req.row_id}"} if req.step_id == "label" else {"summary": f"s-{req.row_id}"}

    engine = FakeEngine("fake", latency=0.002, handler=handler)
    out = tmp_path / "out"
    chain = _chain()

    with pytest.raises(BaseException) as info:  # noqa: PT012
        chain.run(_rows(300, crash_at=220), out, engines={"fake": engine}, batch_size=16, window=16)
    leaf = info.value
    while isinstance(leaf, BaseExceptionGroup):
        leaf = leaf.exceptions[0]
    assert isinstance(leaf, Crash)
    committed = committed_rows(journal(out))
    assert 0 < len(committed) <= 220
    calls.clear()
    result = chain.run(_rows(300), out, engines={"fake": engine}, batch_size=16, resume=True)
    assert not result.interrupted
    assert not _seen_rows(calls) & committed, "committed rows were requested again"
    recs = assert_accounted(out, 300)
    assert {r["row_id"]: r["summary"] for r in recs["summary"]} == {str(i): f"s-{i}" for i in range(300)}


def test_python_api_resume_refuses_a_changed_chain_unless_forced(tmp_path):
    engine = FakeEngine("fake")
    out = tmp_path / "out"

    async def go(chain, **kw):
        with anyio.fail_after(30):
            return await chain.run_async([Item(text=f"t{i}") for i in range(20)], out, engines={"fake": engine}, **kw)

    anyio.run(lambda: go(_chain()))
    with pytest.raises(ResumeError, match="chain changed"):
        anyio.run(lambda: go(_chain("changed {{ text }}"), resume=True))
    result = anyio.run(lambda: go(_chain("changed {{ text }}"), resume=True, force=True))
    assert not result.interrupted
    assert_accounted(out, 20)
