"""01 - Sentiment classification with two Ollama models (original: ollama_api backend)."""

from pydantic import BaseModel, Field

from chainette import Chain, Step, register_engine
from chainette.core.step import SamplingParams


class Review(BaseModel):
    review: str = Field(..., description="User review text")


class Sentiment(BaseModel):
    sentiment: str


# ported: engine registration points at the fake backend (was: ollama_api gemma3:1b / gemma3:4b)
register_engine("ollama_1b", backend="fake")
register_engine("ollama_4b", backend="fake")

sentiment_step_1b = Step(
    id="sentiment_1b",
    name="Sentiment (1B)",
    engine_name="ollama_1b",
    input_model=Review,
    output_model=Sentiment,
    sampling=SamplingParams(temperature=0.0),
    system_prompt="Classify the sentiment of the given customer review as positive, neutral, or negative.",
    user_prompt="{{chain_input.review}}",
)

sentiment_step_4b = Step(
    id="sentiment_4b",
    name="Sentiment (4B)",
    engine_name="ollama_4b",
    input_model=Review,
    output_model=Sentiment,
    sampling=SamplingParams(temperature=0.0),
    system_prompt="Classify the sentiment of the given customer review as positive, neutral, or negative.",
    user_prompt="{{chain_input.review}}",
)

sentiment_chain = Chain(
    name="Sentiment Demo (Ollama Multi-Model)",
    steps=[sentiment_step_1b, sentiment_step_4b],
)
