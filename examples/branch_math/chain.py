"""Branch math: Python and LLM branches side by side, joined by row id.

input (a, b) ──┬─ sum_branch:     apply add       ─► joined as `total`
               ├─ product_branch: apply multiply  ─► joined as `product`
               ├─ guess_branch:   LLM guess_sum   ─► joined as `guess`
               └─ audit_branch:   apply audit       (a plain Branch: written, not merged)
              ──► parity (LLM, reads {{ total.value }}, {{ product.value }}, {{ guess.value }})
"""

from typing import Literal

from pydantic import BaseModel

from chainette import Branch, Chain, SamplingParams, Step, apply


class Pair(BaseModel):
    a: int
    b: int


class Number(BaseModel):
    value: int


class Audit(BaseModel):
    both_positive: bool
    larger: Literal["a", "b", "equal"]


class Parity(BaseModel):
    parity: Literal["even", "odd"]


def add(p: Pair) -> list[Number]:
    return [Number(value=p.a + p.b)]


def multiply(p: Pair) -> list[Number]:
    return [Number(value=p.a * p.b)]


# An apply's input model is not read from the parameter annotation: pass input_model=Pair so
# rows arrive as Pair objects (without it, a chain that starts with an apply gets plain dicts).
# Branch names, join aliases and node ids share one namespace: they must all differ.


def audit(p: Pair) -> list[Audit]:
    larger = "equal" if p.a == p.b else ("a" if p.a > p.b else "b")
    return [Audit(both_positive=p.a > 0 and p.b > 0, larger=larger)]


guess_sum = Step(
    "guess_sum",
    input_model=Pair,
    output_model=Number,
    sampling=SamplingParams(temperature=0, max_tokens=64),
    system_prompt="Add the two numbers.",
    user_prompt="{{ a }} + {{ b }} = ?",
)

parity = Step(
    "parity",
    output_model=Parity,
    sampling=SamplingParams(temperature=0, max_tokens=64),
    system_prompt="Say whether the number is even or odd.",
    user_prompt="{{ total.value }} (the product is {{ product.value }}, a guess was {{ guess.value }})",
)

branches = [
    Branch("sum_branch", [apply(add, input_model=Pair)]).join("total"),
    Branch("product_branch", [apply(multiply, input_model=Pair)]).join("product"),
    Branch("guess_branch", [guess_sum]).join("guess"),
    Branch("audit_branch", [apply(audit, input_model=Pair)]),
]

chain = Chain(name="Branch math", steps=[branches, parity])
