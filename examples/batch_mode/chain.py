"""Classify support tickets, then draft a reply and a French summary in parallel branches:
three LLM steps, run in batch mode when the engine says so (see README.md).

            ┌─ reply: draft_reply ─┐ join as `reply`
  triage ───┤                      ├──► (flattened: one row per ticket)
            └─ fr: summary_fr ─────┘ join as `french`

The chain names no engine (it uses `default`): `engines.batch.yml` registers `default` on
OpenAI with `mode: batch`, so every request goes through the Batch API at half the price.
The same chain runs online with any other engines file.
"""

from typing import Literal

from pydantic import BaseModel, Field

from chainette import Branch, Chain, SamplingParams, Step


class Ticket(BaseModel):
    text: str


class Triage(BaseModel):
    category: Literal["billing", "bug", "question", "other"]
    urgent: bool


class Reply(BaseModel):
    reply: str = Field(max_length=400)


class Summary(BaseModel):
    summary: str = Field(max_length=200)


triage = Step(
    "triage",
    input_model=Ticket,
    output_model=Triage,
    sampling=SamplingParams(temperature=0, max_tokens=40),
    system_prompt="Classify the support ticket. Urgent means the customer cannot work.",
    user_prompt="{{ text }}",
)
draft_reply = Step(
    "draft_reply",
    output_model=Reply,
    sampling=SamplingParams(temperature=0, max_tokens=120),
    system_prompt="Write a short, polite reply to the customer.",
    user_prompt="Ticket ({{ triage.category }}, urgent: {{ triage.urgent }}): {{ chain_input.text }}",
)
summary_fr = Step(
    "summary_fr",
    output_model=Summary,
    sampling=SamplingParams(temperature=0, max_tokens=80),
    system_prompt="Summarise the ticket in French in one sentence.",
    user_prompt="{{ chain_input.text }}",
)

chain = Chain(
    name="Ticket batch",
    steps=[
        triage,
        [Branch("reply", [draft_reply]).join("reply"), Branch("fr", [summary_fr]).join("french")],
    ],
)
