"""01 - Sentiment classification (original: OpenAI backend, a copy of 01)."""

from pydantic import BaseModel, Field

from chainette import Chain, Step, register_engine
from chainette.core.step import SamplingParams


class Review(BaseModel):
    review: str = Field(..., description="User review text")


class Sentiment(BaseModel):
    sentiment: str  # positive | negative | neutral


# ported: engine registration points at the fake backend (was: OpenAI, with an OPENAI_API_KEY check)
register_engine("openai_default", backend="fake")

sentiment_step = Step(
    id="sentiment",
    name="Sentiment Classifier",
    engine_name="openai_default",
    input_model=Review,
    output_model=Sentiment,
    sampling=SamplingParams(temperature=0.0),
    system_prompt="Classify the sentiment of the given customer review as positive, neutral, or negative.",
    user_prompt="{{chain_input.review}}",
)

sentiment_chain = Chain(name="Sentiment Demo (OpenAI)", steps=[sentiment_step])
