"""Multi-step RAG with a tiny local retriever (BM25 over ./docs, pure Python).

retrieve (apply: BM25 over docs/, returns the best passage)
  ─► answer (LLM: answer from the passage; the template sees the passage's fields)
  ─► grounded (LLM judge: is the answer supported? reads {{ retrieve.passage }}, {{ answer.answer }})
"""

import sys
from pathlib import Path
from typing import Literal

from pydantic import BaseModel, Field

from chainette import Chain, SamplingParams, Step, apply

sys.path.insert(0, str(Path(__file__).parent))  # so `retriever` imports when run from anywhere
from retriever import INDEX  # noqa: E402


class Question(BaseModel):
    question: str


class Passage(BaseModel):
    question: str
    doc_id: str
    passage: str
    score: float


class Answer(BaseModel):
    answer: str = Field(max_length=60)


class Grounded(BaseModel):
    grounded: Literal["yes", "no"]


def retrieve(q: Question) -> list[Passage]:
    """The retriever is plain Python called before the LLM steps (BM25 over docs/)."""
    doc, score = INDEX.search(q.question, k=1)[0]
    return [Passage(question=q.question, doc_id=doc.doc_id, passage=doc.text, score=round(score, 3))]


answer = Step(
    "answer",
    output_model=Answer,
    sampling=SamplingParams(temperature=0, max_tokens=84),
    system_prompt="Answer the question in one short sentence using only the context.",
    user_prompt="Context: {{ passage }}\nQuestion: {{ question }}",
)

grounded = Step(
    "grounded",
    output_model=Grounded,
    sampling=SamplingParams(temperature=0, max_tokens=64),
    system_prompt="Is the answer supported by the context? Reply yes or no.",
    user_prompt="Context: {{ retrieve.passage }}\nAnswer: {{ answer.answer }}",
)

chain = Chain(name="RAG", steps=[apply(retrieve, input_model=Question), answer, grounded])
