"""01 - Sentiment classification (original: vllm_api backend)."""

from pydantic import BaseModel, Field

from chainette import Chain, Step, register_engine
from chainette.core.step import SamplingParams


class Review(BaseModel):
    review: str = Field(..., description="User review text")


class Sentiment(BaseModel):
    sentiment: str  # positive | negative | neutral


# ported: engine registration points at the fake backend (was: vllm_api google/gemma-3-4b-it, startup_timeout=300)
register_engine("vllm_default", backend="fake")

sentiment_step = Step(
    id="sentiment",
    name="Sentiment Classifier",
    engine_name="vllm_default",
    input_model=Review,
    output_model=Sentiment,
    sampling=SamplingParams(temperature=0.0),
    system_prompt="Classify the sentiment of the given customer review as positive, neutral, or negative.",
    user_prompt="{{chain_input.review}}",
)

sentiment_chain = Chain(name="Sentiment Demo (vLLM)", steps=[sentiment_step])
