"""Sampling parameters of a step: a pure pydantic model (no engine imports).

Each backend maps these fields to its own wire names (see docs/engines.md, "Sampling");
a backend that cannot honour a set field is reported when the chain is validated.
``chainette.engine.protocol`` re-exports :class:`SamplingParams` so older imports keep
working.
"""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, ConfigDict, Field, field_validator

RESERVED_BODY_KEYS = frozenset({"model", "messages", "stream"})
"""Body keys ``extra`` may not set: Chainette owns them."""


class SamplingParams(BaseModel):
    """Sampling parameters, mapped by each backend to its own names.

    ``extra`` is sent verbatim in the request body (top level; for Ollama an ``options``
    mapping in it is merged into the options Chainette builds). Use it for a server's own
    knobs (``{"chat_template_kwargs": {"enable_thinking": False}}`` for vLLM,
    ``{"options": {"num_ctx": 8192}}`` for Ollama). An unknown field name is an error.
    """

    model_config = ConfigDict(extra="forbid", frozen=True)

    temperature: float | None = Field(default=None, ge=0)
    top_p: float | None = Field(default=None, ge=0, le=1)
    max_tokens: int | None = Field(default=None, ge=1)
    stop: list[str] | None = None
    seed: int | None = None
    top_k: int | None = Field(default=None, ge=-1)
    min_p: float | None = Field(default=None, ge=0, le=1)
    repetition_penalty: float | None = Field(default=None, gt=0)
    frequency_penalty: float | None = Field(default=None, ge=-2, le=2)
    presence_penalty: float | None = Field(default=None, ge=-2, le=2)
    logit_bias: dict[str, int | float] | None = None
    extra: dict[str, Any] | None = None

    @field_validator("logit_bias", mode="before")
    @classmethod
    def _token_ids(cls, value: Any) -> Any:
        if isinstance(value, dict):
            out = {}
            for key, bias in value.items():
                if isinstance(key, bool) or not str(key).lstrip("-").isdigit():
                    raise ValueError(f"logit_bias keys are token ids (integers), got {key!r}")
                out[str(int(key))] = bias
            return out
        return value

    @field_validator("logit_bias")
    @classmethod
    def _bias_range(cls, value: dict[str, int | float] | None) -> dict[str, int | float] | None:
        for key, bias in (value or {}).items():
            if not -100 <= bias <= 100:
                raise ValueError(f"logit_bias[{key}] = {bias} is outside -100..100")
        return value

    @field_validator("extra")
    @classmethod
    def _extra_keys(cls, value: dict[str, Any] | None) -> dict[str, Any] | None:
        clash = sorted(RESERVED_BODY_KEYS & set(value or ()))
        if clash:
            raise ValueError(f"extra may not set {', '.join(clash)}: Chainette sends those itself")
        return value

    def set_fields(self) -> dict[str, Any]:
        """The fields that are set (not ``None``), ``extra`` excluded, in declaration order."""
        return {
            name: getattr(self, name)
            for name in type(self).model_fields
            if name != "extra" and getattr(self, name) is not None
        }


__all__ = ["RESERVED_BODY_KEYS", "SamplingParams"]
