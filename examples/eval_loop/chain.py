"""Evaluation loop with an LLM judge, and one retry for answers judged incorrect.

  answer (LLM) ─► judge (LLM: correct / incorrect vs the reference)
     ─► retry branch, joined as `retry`:
           keep_incorrect (apply: filter) ─► revise (LLM, told its answer was wrong) ─► rejudge (LLM)

Rows judged correct are filtered out inside the branch, so `retry` is null for them in
flattened/. `python examples/eval_loop/report.py RUN_DIR` prints the scores.
"""

from typing import Literal

from pydantic import BaseModel, Field

from chainette import Branch, Chain, SamplingParams, Step, apply


class Item(BaseModel):
    question: str
    reference: str


class Answer(BaseModel):
    answer: str = Field(max_length=40)


class Verdict(BaseModel):
    verdict: Literal["correct", "incorrect"]


answer = Step(
    "answer",
    input_model=Item,
    output_model=Answer,
    sampling=SamplingParams(temperature=0, max_tokens=64),
    system_prompt="Answer with a few words only.",
    user_prompt="{{ question }}",
)

JUDGE_SYSTEM = "You grade answers. An answer is correct if it means the same as the reference."

judge = Step(
    "judge",
    output_model=Verdict,
    sampling=SamplingParams(temperature=0, max_tokens=64),
    system_prompt=JUDGE_SYSTEM,
    user_prompt="Question: {{ chain_input.question }}\nReference: {{ chain_input.reference }}\nAnswer: {{ answer.answer }}",
)


def keep_incorrect(v: Verdict) -> list[Verdict]:
    return [v] if v.verdict == "incorrect" else []


revise = Step(
    "revise",
    output_model=Answer,
    sampling=SamplingParams(temperature=0.3, max_tokens=64, seed=1),
    system_prompt="Your previous answer was judged incorrect. Give a better short answer.",
    user_prompt="Question: {{ chain_input.question }}\nPrevious answer: {{ answer.answer }}",
)

rejudge = Step(
    "rejudge",
    output_model=Verdict,
    sampling=SamplingParams(temperature=0, max_tokens=64),
    system_prompt=JUDGE_SYSTEM,
    user_prompt="Question: {{ chain_input.question }}\nReference: {{ chain_input.reference }}\nAnswer: {{ revise.answer }}",
)

# Only the rows the judge marked incorrect enter the retry branch; its result joins as `retry`.
retry = Branch("retry_branch", [apply(keep_incorrect), revise, rejudge]).join("retry")

chain = Chain(name="Eval loop", steps=[answer, judge, retry])
