"""02 - Financial metric extractor: a pure-Python ApplyNode (no engine)."""

import re

from pydantic import BaseModel, Field

from chainette import Chain
from chainette.core.apply import ApplyNode


class Sentence(BaseModel):
    text: str = Field(..., description="Earnings sentence")


class Metric(BaseModel):
    company: str
    metric: str
    value: str


_METRIC_KWS = {"revenue": ["revenue", "sales"], "profit": ["profit", "income"], "loss": ["loss", "deficit"]}


def _extract(sent: Sentence) -> list[Metric]:
    txt = sent.text
    company_match = re.match(r"([A-Z][A-Za-z0-9 &]+?) (?:reported|posted|announced)", txt)
    company = company_match.group(1) if company_match else "Unknown"
    metric_key = next((k for k, kws in _METRIC_KWS.items() if any(w in txt.lower() for w in kws)), "unknown")
    value_match = re.search(r"(\$?[0-9\.]+[MB%]?)", txt)
    return [Metric(company=company, metric=metric_key, value=value_match.group(1) if value_match else "?")]


extract_step = ApplyNode(_extract, id="extract", input_model=Sentence)

fin_metrics_chain = Chain(name="Financial Metrics Demo", steps=[extract_step])
