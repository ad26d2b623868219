"""Flagship: customer-feedback intelligence, combining every pattern of the other examples.

split_issues (apply: fan-out one row per issue, filter out empty ones)
  ─► classify (LLM: category + sentiment, Literal enums)
  ─► three join branches in parallel, matched by row id:
        policy_branch:    lookup_policy (apply: retrieval from policies/)   as `policy`
        sla_branch:       compute_sla   (apply: a Python "tool")            as `sla`
        translate_branch: translate_fr  (LLM)                               as `french`
  ─► reply (LLM: uses the issue, the policy and the SLA)
  ─► judge (LLM: ok / needs_edit)

  chainette run examples/flagship/chain.py:chain -i examples/flagship/inputs.jsonl -o runs/flagship
"""

import re
from pathlib import Path
from typing import Literal

from pydantic import BaseModel, Field

from chainette import Branch, Chain, SamplingParams, Step, apply

POLICY_DIR = Path(__file__).with_name("policies")
Category = Literal["delivery", "product", "billing", "praise", "other"]


class Feedback(BaseModel):
    customer: str
    text: str


class Issue(BaseModel):
    customer: str
    issue: str


class Classified(BaseModel):
    category: Category
    sentiment: Literal["positive", "neutral", "negative"]


class Policy(BaseModel):
    category: str
    policy: str


class Sla(BaseModel):
    priority: Literal["low", "normal", "high"]
    due_hours: int


class French(BaseModel):
    text: str = Field(max_length=60)


class Reply(BaseModel):
    reply: str = Field(max_length=80)


class Judgement(BaseModel):
    verdict: Literal["ok", "needs_edit"]


def split_issues(fb: Feedback) -> list[Issue]:
    """Fan-out: one row per sentence (ids 0.0, 0.1, ...); a message with no text is filtered out."""
    parts = [p.strip() for p in re.split(r"(?<=[.!?])\s+", fb.text) if len(p.strip()) > 3]
    return [Issue(customer=fb.customer, issue=p) for p in parts]


classify = Step(
    "classify",
    input_model=Issue,
    output_model=Classified,
    sampling=SamplingParams(temperature=0, max_tokens=64),
    system_prompt="Classify the customer's issue.",
    user_prompt="{{ issue }}",
)


def lookup_policy(c: Classified) -> list[Policy]:
    """Retrieval, kept trivial: the policy file for the category (see examples/rag for BM25)."""
    return [Policy(category=c.category, policy=(POLICY_DIR / f"{c.category}.md").read_text().strip())]


def compute_sla(c: Classified) -> list[Sla]:
    """A deterministic tool: priority and deadline from category and sentiment."""
    if c.category == "praise":
        return [Sla(priority="low", due_hours=72)]
    if c.sentiment == "negative" and c.category in ("billing", "product"):
        return [Sla(priority="high", due_hours=4)]
    return [Sla(priority="normal", due_hours=24)]


translate_fr = Step(
    "translate_fr",
    output_model=French,
    sampling=SamplingParams(temperature=0, max_tokens=80),
    system_prompt="Translate into French.",
    user_prompt="{{ split_issues.issue }}",
)

reply = Step(
    "reply",
    output_model=Reply,
    sampling=SamplingParams(temperature=0, max_tokens=104),
    system_prompt="You are a support agent. Reply to the customer in one sentence, following the policy.",
    user_prompt=(
        "Customer {{ chain_input.customer }}: {{ split_issues.issue }}\n"
        "Policy: {{ policy.policy }}\nAnswer within {{ sla.due_hours }} hours."
    ),
)

judge = Step(
    "judge",
    output_model=Judgement,
    sampling=SamplingParams(temperature=0, max_tokens=64),
    system_prompt="Check that the reply is polite and follows the policy.",
    user_prompt="Policy: {{ policy.policy }}\nReply: {{ reply.reply }}",
)

chain = Chain(
    name="Feedback intelligence",
    steps=[
        apply(split_issues, input_model=Feedback),
        classify,
        [
            Branch("policy_branch", [apply(lookup_policy)]).join("policy"),
            Branch("sla_branch", [apply(compute_sla)]).join("sla"),
            Branch("translate_branch", [translate_fr]).join("french"),
        ],
        reply,
        judge,
    ],
)
