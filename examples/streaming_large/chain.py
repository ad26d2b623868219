"""Streaming a large input: 100,000 tickets through Python steps, only the urgent few reach the LLM.

  parse (map) ─► keep_urgent (filter, ~0.2% pass) ─► triage (LLM)

Rows stream through a bounded window: memory stays flat however big the input is, finished
rows are committed to disk as they complete, and ``--resume`` continues a killed run.
"""

from typing import Literal

from pydantic import BaseModel

from chainette import Chain, SamplingParams, Step, apply


class Ticket(BaseModel):
    ticket_id: str
    channel: str
    text: str


class Parsed(BaseModel):
    ticket_id: str
    channel: str
    text: str
    urgent: bool
    mentions_refund: bool


class Triage(BaseModel):
    category: Literal["damaged", "billing", "safety", "other"]
    action: Literal["refund", "replace", "escalate"]


def parse(t: Ticket) -> list[Parsed]:
    low = t.text.lower()
    return [Parsed(**t.model_dump(), urgent="urgent" in low, mentions_refund="refund" in low)]


def keep_urgent(p: Parsed) -> list[Parsed]:
    return [p] if p.urgent and p.mentions_refund else []


triage = Step(
    "triage",
    output_model=Triage,
    sampling=SamplingParams(temperature=0, max_tokens=32),
    system_prompt="Triage the urgent support ticket.",
    user_prompt="{{ text }}",
)

chain = Chain(
    name="Streaming triage",
    steps=[apply(parse, input_model=Ticket), apply(keep_urgent), triage],
    batch_size=1000,  # rows per commit to disk
)
