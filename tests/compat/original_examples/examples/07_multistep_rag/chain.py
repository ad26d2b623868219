"""07 - Retrieval (ApplyNode) then an answering Step."""

import pathlib
import sys

from pydantic import BaseModel

from chainette import Chain, Step, register_engine
from chainette.core.apply import ApplyNode
from chainette.core.step import SamplingParams

sys.path.append(str(pathlib.Path(__file__).parent))  # ensure directory importable
import retriever

# ported: engine registration points at the fake backend (was: OpenAI gpt-4.1-mini, with an OPENAI_API_KEY check)
register_engine("openai_mini", backend="fake")


class Answer(BaseModel):
    answer: str


Query = retriever.Query
Context = retriever.Context
retrieve = retriever.retrieve

retrieve_step = ApplyNode(retrieve, id="retrieve", input_model=Query)

qa_step = Step(
    id="answer",
    name="RAG Answer",
    input_model=Context,
    output_model=Answer,
    engine_name="openai_mini",
    sampling=SamplingParams(temperature=0.2),
    system_prompt="Answer the user question using the provided context.",
    user_prompt="Question: {{chain_input.query}}\nContext: {{retrieve.context}}",
)

rag_chain = Chain(name="RAG Demo", steps=[retrieve_step, qa_step])
