"""10 - LLM-as-a-judge: a worker answers, a judge grades 1-10."""

from pydantic import BaseModel, Field

from chainette import Chain, Step, register_engine
from chainette.core.step import SamplingParams

# ported: engine registration points at the fake backend (was: OpenAI gpt-4.1-nano / gpt-4.1)
register_engine("openai_worker", backend="fake")
register_engine("openai_judge", backend="fake")


class Prompt(BaseModel):
    prompt: str = Field(..., description="Open-ended task/question for the assistant")


class Response(BaseModel):
    response: str


class Grade(BaseModel):
    score: float = Field(..., ge=1, le=10, description="Score from 1 to 10")


worker_step = Step(
    id="predict",
    name="Worker QA",
    input_model=Prompt,
    output_model=Response,
    engine_name="openai_worker",
    sampling=SamplingParams(temperature=0.3),
    system_prompt="You are a knowledgeable assistant. Answer the question concisely.",
    user_prompt="{{chain_input.prompt}}",
)

judge_step = Step(
    id="grade",
    name="Judge Score",
    input_model=Prompt,  # includes reference answer
    output_model=Grade,
    engine_name="openai_judge",
    sampling=SamplingParams(temperature=0.0),
    system_prompt="You are an expert judge. Grade the worker's answer from 1 to 10 like a professor.",
    user_prompt="Question: {{chain_input.prompt}}\nWorker answer: {{predict.response}}",
)

eval_chain = Chain(name="Eval Loop Demo", steps=[worker_step, judge_step])
