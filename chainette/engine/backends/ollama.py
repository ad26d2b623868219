"""Ollama's native chat API: ``POST {endpoint}/api/chat`` with ``stream: false``.

Structured output: ``format: <json schema>``. Sampling goes into ``options``
(``temperature``, ``top_p``, ``num_predict``, ``seed``, ``stop``). Usage comes from
``prompt_eval_count`` / ``eval_count``; a thinking model's ``message.thinking`` (or an
inline ``<think>`` block) becomes the reasoning.
"""

from __future__ import annotations

from typing import Any

from chainette.engine.backends.base import BaseHTTPClient, MalformedResponseError, sampling_fields, split_think
from chainette.engine.protocol import Completion, CompletionRequest, Usage
from chainette.errors import EmptyCompletionError


class OllamaClient(BaseHTTPClient):
    """``POST {endpoint}/api/chat`` on an Ollama server (default ``http://localhost:11434``)."""

    backend = "ollama_api"
    path = "/api/chat"

    def __init__(self, cfg: Any, endpoint: str | None = None, **kwargs: Any) -> None:
        # accept an OpenAI-style base URL too: ".../v1" is Ollama's compatibility layer
        if endpoint and endpoint.rstrip("/").endswith("/v1"):
            endpoint = endpoint.rstrip("/")[:-3]
        super().__init__(cfg, endpoint, **kwargs)

    def body_extra(self, request: CompletionRequest) -> dict[str, Any]:
        options = sampling_fields(request, max_tokens_key="num_predict")  # Ollama's name for it
        extra: dict[str, Any] = {"stream": False}
        if request.json_schema is not None:
            extra["format"] = request.json_schema
        if options:
            extra["options"] = options
        if self.cfg.enable_reasoning:
            extra["think"] = True
        return extra

    def parse(self, data: Any) -> Completion:
        try:
            msg = data["message"]
        except (KeyError, TypeError):
            raise MalformedResponseError(f"engine '{self.name}': reply has no message", engine=self.name) from None
        content = msg.get("content") or ""
        reasoning = msg.get("thinking") or None
        if "</think>" in content:
            content, inline = split_think(content)
            reasoning = reasoning or inline
        finish = data.get("done_reason")
        if not content.strip():
            raise EmptyCompletionError(f"engine '{self.name}': empty reply (done_reason={finish})", engine=self.name)
        return Completion(
            text=content,
            reasoning=reasoning,
            usage=Usage(prompt_tokens=data.get("prompt_eval_count") or 0, completion_tokens=data.get("eval_count") or 0),
            model=data.get("model"),
            finish_reason=finish,
        )
