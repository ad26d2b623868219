"""Steps for the YAML chatbot demo."""

from pydantic import BaseModel, Field

from chainette import Step, register_engine
from chainette.core.step import SamplingParams

# ported: engine registration points at the fake backend (was: OpenAI gpt-4.1-nano, with an OPENAI_API_KEY check)
register_engine("openai_default", backend="fake")


class Question(BaseModel):
    question: str = Field(..., description="Customer question")


class Answer(BaseModel):
    answer: str


answer_step = Step(
    id="answer",
    name="Customer Support Answer",
    input_model=Question,
    output_model=Answer,
    engine_name="openai_default",
    sampling=SamplingParams(temperature=0.2),
    system_prompt="You are a helpful customer support agent. Provide concise, friendly answers.",
    user_prompt="{{chain_input.question}}",
)
