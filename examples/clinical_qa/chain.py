"""Clinical QA over short, synthetic clinical notes (not medical advice; no real patient data).

screen (apply: deterministic red-flag rules on the note)
   ─► extract (LLM: structured facts) ─► answer (LLM: the question, from the facts + note)
   ─► triage (LLM: who should review, given the red flags and the answer's certainty)
"""

from typing import Literal

from pydantic import BaseModel, Field

from chainette import Chain, SamplingParams, Step, apply


class Case(BaseModel):
    note: str
    question: str


class Facts(BaseModel):
    age: int = Field(ge=0, le=120)
    sex: Literal["female", "male", "unknown"]
    main_problem: str = Field(max_length=40)
    on_anticoagulant: bool


class ClinicalAnswer(BaseModel):
    answer: str = Field(max_length=60)
    certainty: Literal["low", "medium", "high"]


class Screened(BaseModel):
    note: str
    question: str
    red_flags: list[str]


class Triage(BaseModel):
    reviewer: Literal["none", "nurse", "physician"]


RED_FLAGS = ("chest pain", "shortness of breath", "confusion", "bleeding", "fever", "fell", "fall")


def screen(case: Case) -> list[Screened]:
    """Rules never delegated to the model: red-flag words in the note (negations included, on purpose)."""
    text = case.note.lower()
    return [Screened(**case.model_dump(), red_flags=[f for f in RED_FLAGS if f in text])]


extract = Step(
    "extract",
    input_model=Screened,
    output_model=Facts,
    sampling=SamplingParams(temperature=0, max_tokens=64),
    system_prompt="Extract facts from the clinical note.",
    user_prompt="{{ note }}",
)

answer = Step(
    "answer",
    output_model=ClinicalAnswer,
    sampling=SamplingParams(temperature=0, max_tokens=96),
    system_prompt="Answer the clinician's question briefly from the note. Say if unsure.",
    user_prompt=(
        "Note: {{ chain_input.note }}\n"
        "Patient: {{ extract.age }} y, {{ extract.sex }}, problem: {{ extract.main_problem }}\n"
        "Question: {{ chain_input.question }}"
    ),
)


triage = Step(
    "triage",
    output_model=Triage,
    sampling=SamplingParams(temperature=0, max_tokens=64),
    system_prompt="Decide who should review this answer before it is used.",
    user_prompt=(
        "Problem: {{ extract.main_problem }}; anticoagulant: {{ extract.on_anticoagulant }}; "
        "red flags: {{ screen.red_flags | join(', ') or 'none' }}; certainty: {{ answer.certainty }}"
    ),
)

chain = Chain(name="Clinical QA", steps=[apply(screen, input_model=Case), extract, answer, triage])
