"""Financial metrics extraction: several typed steps and a Python step in between.

extract (LLM) -> normalize (Python: scale to millions, growth %) -> assess (LLM) -> headline (LLM)
"""

from typing import Literal

from pydantic import BaseModel, Field

from chainette import Chain, SamplingParams, Step, apply


class Report(BaseModel):
    text: str


class Metrics(BaseModel):
    company: str = Field(max_length=40)
    revenue: float
    previous_revenue: float
    unit: Literal["thousand", "million", "billion"]
    currency: Literal["USD", "EUR", "GBP", "JPY", "other"]


class Normalized(BaseModel):
    company: str
    revenue_musd: float
    growth_pct: float


class Assessment(BaseModel):
    trend: Literal["growth", "decline", "flat"]
    risk: Literal["low", "medium", "high"]


class Headline(BaseModel):
    headline: str = Field(max_length=60)


SCALE = {"thousand": 0.001, "million": 1.0, "billion": 1000.0}


def normalize(m: Metrics) -> list[Normalized]:
    """Pure Python between LLM steps: scale to millions and compute growth."""
    scale = SCALE[m.unit]
    growth = 0.0 if m.previous_revenue == 0 else (m.revenue - m.previous_revenue) / abs(m.previous_revenue) * 100
    return [Normalized(company=m.company, revenue_musd=round(m.revenue * scale, 3), growth_pct=round(growth, 1))]


extract = Step(
    "extract",
    input_model=Report,
    output_model=Metrics,
    sampling=SamplingParams(temperature=0, max_tokens=96),
    system_prompt="Extract the company, this period's revenue, last period's revenue, the unit and the currency.",
    user_prompt="{{ text }}",
)

assess = Step(
    "assess",
    input_model=Normalized,
    output_model=Assessment,
    sampling=SamplingParams(temperature=0, max_tokens=32),
    system_prompt="Rate the revenue trend and the risk.",
    user_prompt="{{ company }}: revenue {{ revenue_musd }} million, growth {{ growth_pct }}%.",
)

headline = Step(
    "headline",
    output_model=Headline,
    sampling=SamplingParams(temperature=0, max_tokens=80),
    system_prompt="Write one short news headline (under 10 words).",
    user_prompt=(
        "{{ normalize.company }} revenue {{ normalize.revenue_musd }}M "
        "({{ normalize.growth_pct }}%), trend {{ assess.trend }}, risk {{ assess.risk }}."
    ),
)

chain = Chain(name="Financial metrics", steps=[extract, apply(normalize), assess, headline])
