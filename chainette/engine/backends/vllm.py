"""vLLM's OpenAI-compatible server (``vllm serve``).

Structured output (per the current vLLM docs, "Structured Outputs"): the extra body
field ``structured_outputs: {"json": <schema>}``. The legacy ``guided_json`` field was
deprecated and removed in v0.12.0; it is sent only when ``cfg.server_version`` names a
release older than 0.10.2 (before ``structured_outputs`` existed). Reasoning comes back
as ``message.reasoning`` (``reasoning_content`` before v0.11) when the server runs
with ``--reasoning-parser``.

Sampling: OpenAI's names plus vLLM's extra sampling parameters ``top_k``, ``min_p`` and
``repetition_penalty`` (top-level body fields of its chat request); ``reasoning_effort``
(low, medium, high) when the engine sets it.
"""

from __future__ import annotations

from typing import Any

from chainette.engine.backends.base import OPENAI_SAMPLING, BaseHTTPClient, add_v1_if_bare, merge_extra
from chainette.engine.protocol import CompletionRequest

STRUCTURED_OUTPUTS_SINCE = (0, 10, 2)
VLLM_SAMPLING = {**OPENAI_SAMPLING, "top_k": "top_k", "min_p": "min_p", "repetition_penalty": "repetition_penalty"}


def parse_version(text: str | None) -> tuple[int, ...] | None:
    """``"0.9.2"`` -> ``(0, 9, 2)``; ``None`` or unreadable -> ``None``."""
    if not text:
        return None
    parts = []
    for piece in text.lstrip("v").split("."):
        digits = "".join(ch for ch in piece if ch.isdigit())
        if not digits:
            break
        parts.append(int(digits))
    return tuple(parts) or None


def served_model_name(cfg: Any) -> str:
    """The model id the server answers to (``--served-model-name`` if given in extra flags)."""
    flags = list(cfg.extra_serve_flags or ())
    for i, flag in enumerate(flags):
        if flag.startswith("--served-model-name="):
            return flag.split("=", 1)[1].split()[0]
        if flag == "--served-model-name" and i + 1 < len(flags):
            return flags[i + 1]
    return cfg.model


class VLLMClient(BaseHTTPClient):
    """``POST {endpoint}/chat/completions`` on a vLLM server."""

    backend = "vllm_api"
    sampling_names = VLLM_SAMPLING
    reasoning_efforts = frozenset({"low", "medium", "high"})

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        version = parse_version(self.cfg.server_version)
        self._legacy = version is not None and version < STRUCTURED_OUTPUTS_SINCE

    @classmethod
    def normalize_endpoint(cls, url: str) -> str:
        return add_v1_if_bare(super().normalize_endpoint(url))

    def request_model(self) -> str:
        return served_model_name(self.cfg)

    def body_extra(self, request: CompletionRequest) -> dict[str, Any]:
        extra = self.sampling_body(request.sampling)
        effort = getattr(self.cfg, "reasoning_effort", None)
        if effort is not None:
            extra["reasoning_effort"] = effort
        if request.json_schema is not None:
            if self._legacy:
                extra["guided_json"] = request.json_schema
            else:
                extra["structured_outputs"] = {"json": request.json_schema}
        return merge_extra(extra, request.sampling.extra)
