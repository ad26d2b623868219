"""12 - Flagship incident pipeline: retrieval, summary, parallel translations, grading."""

from __future__ import annotations

import re

from pydantic import BaseModel, Field

from chainette import ApplyNode, Branch, Chain, Step, register_engine
from chainette.core.step import SamplingParams

# ported: engine registration points at the fake backend (was: OpenAI gpt-4.1-mini, with an OPENAI_API_KEY check)
register_engine("openai_default", backend="fake")


class Incident(BaseModel):
    description: str = Field(..., description="Raw incident description from engineer")


class Retrieval(BaseModel):
    docs: list[str]


class Summary(BaseModel):
    summary: str
    actions: str


class Translation(BaseModel):
    language: str
    text: str


class Grade(BaseModel):
    score: int = Field(..., ge=1, le=10)


Retrieval.model_rebuild()

_KB = [
    "Service X outage due to misconfigured load balancer - mitigated by rolling back config.",
    "High latency in API Y caused by database connection pool exhaustion.",
    "Data pipeline failure triggered by malformed CSV input and insufficient validation.",
]


def _retrieve(inc: Incident) -> list[Retrieval]:
    words = set(re.findall(r"[a-zA-Z]+", inc.description.lower()))
    scored = sorted(((len(words & set(d.lower().split())), d) for d in _KB), reverse=True)
    return [Retrieval(docs=[d for _, d in scored[:2]])]


retrieve_node = ApplyNode(
    fn=_retrieve, id="retrieve", name="Retrieve Similar Incidents", input_model=Incident, output_model=Retrieval
)

summarise_step = Step(
    id="summarise",
    name="Summarise & Recommend",
    input_model=Retrieval,
    output_model=Summary,
    engine_name="openai_default",
    sampling=SamplingParams(temperature=0.2),
    system_prompt="You are an SRE assistant. Draft a concise executive summary and 3 next steps.",
    user_prompt="Incident description:\n{{chain_input.description}}\n\nRelevant past incidents:\n{{retrieve.docs}}",
)


def _make_translation_step(lang_code: str, language_label: str) -> Step:
    return Step(
        id=f"translate_{lang_code}",
        name=f"Translate to {language_label}",
        input_model=Summary,
        output_model=Translation,
        engine_name="openai_default",
        sampling=SamplingParams(temperature=0.0),
        system_prompt=f"Translate the following summary and actions into {language_label}.",
        user_prompt="{{summarise.summary}}\n\nActions:\n{{summarise.actions}}",
    )


branch_es = Branch("es", [_make_translation_step("es", "Spanish")])
branch_fr = Branch("fr", [_make_translation_step("fr", "French")])

grade_step = Step(
    id="grade",
    name="Grade Summary Quality",
    input_model=Summary,
    output_model=Grade,
    engine_name="openai_default",
    sampling=SamplingParams(temperature=0.0),
    system_prompt="You are a senior incident commander. Score the provided summary (1-10).",
    user_prompt="Summary:\n{{summarise.summary}}\n\nActions:\n{{summarise.actions}}",
)

flagship_chain = Chain(
    name="Flagship Incident Pipeline",
    steps=[retrieve_node, summarise_step, [branch_es, branch_fr], grade_step],
)
