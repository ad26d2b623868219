"""Sentiment classification: one step, typed output, runs on the embedded local model."""

from typing import Literal

from pydantic import BaseModel, Field

from chainette import Chain, SamplingParams, Step


class Review(BaseModel):
    text: str


class Sentiment(BaseModel):
    sentiment: Literal["positive", "negative", "neutral"]
    confidence: float = Field(ge=0, le=1)


classify = Step(
    "sentiment",
    input_model=Review,
    output_model=Sentiment,
    sampling=SamplingParams(temperature=0, max_tokens=64),
    system_prompt="You classify the sentiment of product reviews. Confidence is between 0 and 1.",
    user_prompt="Review: {{ text }}",
)

chain = Chain(name="Sentiment", steps=[classify])
