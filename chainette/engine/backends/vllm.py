"""vLLM's OpenAI-compatible server (``vllm serve``).

Structured output (per the current vLLM docs, "Structured Outputs"): the extra body
field ``structured_outputs: {"json": <schema>}``. The legacy ``guided_json`` field was
deprecated and removed in v0.12.0; it is sent only when ``cfg.server_version`` names a
release older than 0.10.2 (before ``structured_outputs`` existed). Reasoning comes back
as ``message.reasoning`` (``reasoning_content`` before v0.11) when the server runs
with ``--reasoning-parser``.
"""

from __future__ import annotations

from typing import Any

from chainette.engine.backends.base import BaseHTTPClient, sampling_fields
from chainette.engine.protocol import CompletionRequest

STRUCTURED_OUTPUTS_SINCE = (0, 10, 2)


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

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        version = parse_version(self.cfg.server_version)
        self._legacy = version is not None and version < STRUCTURED_OUTPUTS_SINCE

    def request_model(self) -> str:
        return served_model_name(self.cfg)

    def body_extra(self, request: CompletionRequest) -> dict[str, Any]:
        extra = sampling_fields(request)
        if request.json_schema is not None:
            if self._legacy:
                extra["guided_json"] = request.json_schema
            else:
                extra["structured_outputs"] = {"json": request.json_schema}
        return extra

