"""The embedded llama.cpp server (``backend: local``), started by Chainette itself.

OpenAI-compatible wire format. Structured output: ``response_format`` of type
``json_schema``, which llama.cpp compiles to a grammar. ``max_tokens`` is always sent
(default :data:`DEFAULT_MAX_TOKENS`) so a small model cannot ramble until the context
is full.
"""

from __future__ import annotations

from typing import Any

from chainette.engine.backends.base import BaseHTTPClient, sampling_fields
from chainette.engine.protocol import CompletionRequest

DEFAULT_MAX_TOKENS = 512


class LocalClient(BaseHTTPClient):
    """``POST {endpoint}/chat/completions`` on the local llama.cpp server."""

    backend = "local"

    def request_model(self) -> str:
        from chainette.engine.local_server import model_alias

        return model_alias(self.cfg.model)

    def body_extra(self, request: CompletionRequest) -> dict[str, Any]:
        extra = sampling_fields(request)
        extra.setdefault("max_tokens", DEFAULT_MAX_TOKENS)
        if request.json_schema is not None:
            extra["response_format"] = {
                "type": "json_schema",
                "json_schema": {"name": request.schema_name or "output", "schema": request.json_schema},
            }
        return extra

