"""A chain for report tests: two LLM steps behind an apply that fails some rows, two joined
branches, and an engine that reports a varied, deterministic latency per request."""

from __future__ import annotations

import dataclasses

import anyio
from pydantic import BaseModel

from chainette import Branch, Chain, FakeEngine, Step, apply


class Question(BaseModel):
    text: str


class Answer(BaseModel):
    answer: str
    score: int = 0


class TimedFake(FakeEngine):
    """FakeEngine whose latency varies by request (5-80 ms, deterministic), reported and slept
    (``sleep=False`` only reports it)."""

    def __init__(self, *args, sleep: bool = True, **kwargs):
        super().__init__(*args, **kwargs)
        self.sleep = sleep

    async def complete(self, request):
        c = await super().complete(request)
        lat = 0.005 * (1 + (sum(map(ord, request.messages[-1]["content"])) % 16))
        if self.sleep:
            await anyio.sleep(lat)
        return dataclasses.replace(c, latency_s=lat)


def check(item: Answer) -> list[Answer]:
    if item.score % 7 == 3:
        raise ValueError(f"score {item.score} is unlucky")
    return [item]


def build_chain() -> Chain:
    extract = Step("extract", input_model=Question, output_model=Answer, engine_name="fk", user_prompt="{{text}}")
    judge = Step("judge", output_model=Answer, engine_name="fk", user_prompt="judge {{extract.answer}}")
    translate = Step("translate", output_model=Answer, engine_name="fk", user_prompt="tr {{extract.answer}}")
    summary = Step("summary", output_model=Answer, engine_name="fk", user_prompt="{{j.answer}} {{t.answer}}")
    return Chain(
        name="Report demo",
        steps=[
            extract,
            apply(check, id="check"),
            [Branch("b_judge", [judge]).join("j"), Branch("b_translate", [translate]).join("t")],
            summary,
        ],
    )


def inputs(n: int, start: int = 0) -> list[dict]:
    return [{"text": f"question {i}"} for i in range(start, start + n)]
