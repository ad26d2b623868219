"""Sampling parameters of a step: a pure pydantic model (no engine imports).

Each backend maps these fields to its own wire names; ``chainette.engine.protocol``
re-exports :class:`SamplingParams` so older imports keep working.
"""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field


class SamplingParams(BaseModel):
    """Sampling parameters, mapped by each backend to its own names."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    temperature: float | None = None
    top_p: float | None = None
    max_tokens: int | None = Field(default=None, ge=1)
    stop: list[str] | None = None
    seed: int | None = None


__all__ = ["SamplingParams"]
