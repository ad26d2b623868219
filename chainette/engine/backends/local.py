"""The embedded llama.cpp server (``backend: local``), started by Chainette itself.

OpenAI-compatible wire format. Structured output: ``response_format`` of type
``json_schema``, which llama.cpp compiles to a grammar. ``max_tokens`` is always sent
(default :data:`DEFAULT_MAX_TOKENS`) so a small model cannot ramble until the context
is full. Sampling: OpenAI's names plus llama.cpp's own ``top_k``, ``min_p`` and
``repeat_penalty`` (its name for ``repetition_penalty``), read by the server from the
same request body.
"""

from __future__ import annotations

from typing import Any

from chainette.engine.backends.base import OPENAI_SAMPLING, BaseHTTPClient, add_v1_if_bare, merge_extra
from chainette.engine.protocol import CompletionRequest

DEFAULT_MAX_TOKENS = 512
LLAMACPP_SAMPLING = {**OPENAI_SAMPLING, "top_k": "top_k", "min_p": "min_p", "repetition_penalty": "repeat_penalty"}


class LocalClient(BaseHTTPClient):
    """``POST {endpoint}/chat/completions`` on the local llama.cpp server."""

    backend = "local"
    sampling_names = LLAMACPP_SAMPLING

    @classmethod
    def normalize_endpoint(cls, url: str) -> str:
        return add_v1_if_bare(super().normalize_endpoint(url))

    def request_model(self) -> str:
        from chainette.engine.local_server import model_alias

        return model_alias(self.cfg.model)

    def body_extra(self, request: CompletionRequest) -> dict[str, Any]:
        extra = self.sampling_body(request.sampling)
        extra.setdefault("max_tokens", DEFAULT_MAX_TOKENS)
        if request.json_schema is not None:
            extra["response_format"] = {
                "type": "json_schema",
                "json_schema": {"name": request.schema_name or "output", "schema": request.json_schema},
            }
        return merge_extra(extra, request.sampling.extra)
