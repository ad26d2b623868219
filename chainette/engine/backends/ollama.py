"""Ollama's native chat API: ``POST {endpoint}/api/chat`` with ``stream: false``.

Structured output: ``format: <json schema>``. Sampling goes into ``options`` under
Ollama's names (``num_predict`` for ``max_tokens``, ``repeat_penalty`` for
``repetition_penalty``; ``logit_bias`` does not exist there and is refused at
validation). Usage comes from ``prompt_eval_count`` / ``eval_count``; a thinking model's
``message.thinking`` (or an inline ``<think>`` block) becomes the reasoning.

Thinking: Ollama turns thinking *on* for a thinking model when the request has no
``think``, so ``think: false`` is always sent unless the engine enables reasoning
(``think: true``, or the ``reasoning_effort`` level: low, medium, high). Ollama before
0.12.5 answered ``think: false`` for a model that cannot think with a 400 "does not
support thinking"; on that reply the field is dropped for this engine and the request
sent once more.

The endpoint is the server root: ``http://host:11434``, ``.../v1`` (the OpenAI
compatibility prefix) and ``.../api`` are all accepted, on every construction path.
"""

from __future__ import annotations

from typing import Any

from chainette.engine.backends.base import BaseHTTPClient, MalformedResponseError, check_finish, split_think
from chainette.engine.protocol import Completion, CompletionRequest, Usage
from chainette.errors import EmptyCompletionError, EngineHTTPError

OLLAMA_OPTIONS = {
    "temperature": "temperature",
    "top_p": "top_p",
    "max_tokens": "num_predict",
    "stop": "stop",
    "seed": "seed",
    "top_k": "top_k",
    "min_p": "min_p",
    "repetition_penalty": "repeat_penalty",
    "frequency_penalty": "frequency_penalty",
    "presence_penalty": "presence_penalty",
    "logit_bias": None,
}


class OllamaClient(BaseHTTPClient):
    """``POST {endpoint}/api/chat`` on an Ollama server (default ``http://localhost:11434``)."""

    backend = "ollama_api"
    path = "/api/chat"
    sampling_names = OLLAMA_OPTIONS
    unsupported_hint = ": Ollama's chat API has no such option"
    reasoning_efforts = frozenset({"none", "low", "medium", "high", "max"})

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._send_think = True

    @classmethod
    def normalize_endpoint(cls, url: str) -> str:
        url = url.rstrip("/")
        for suffix in ("/api/chat", "/chat/completions", "/api", "/v1"):
            if url.endswith(suffix):
                url = url[: -len(suffix)].rstrip("/")
        return url

    def think_value(self) -> bool | str:
        """What ``think`` is sent as: the effort level, or whether reasoning is on."""
        effort = getattr(self.cfg, "reasoning_effort", None)
        if effort == "none":
            return False
        if effort is not None:
            return effort
        return bool(self.cfg.enable_reasoning)

    def body_extra(self, request: CompletionRequest) -> dict[str, Any]:
        options = self.sampling_body(request.sampling)
        extra: dict[str, Any] = {"stream": False}
        if request.json_schema is not None:
            extra["format"] = request.json_schema
        think = self.think_value()
        if think is not False or self._send_think:
            extra["think"] = think
        user = dict(request.sampling.extra or {})
        user_options = user.pop("options", None)
        if isinstance(user_options, dict):
            options = {**options, **user_options}
        elif user_options is not None:
            user["options"] = user_options
        if options:
            extra["options"] = options
        extra.update(user)
        return extra

    async def complete(self, request: CompletionRequest) -> Completion:
        try:
            return await super().complete(request)
        except EngineHTTPError as exc:
            if not (
                exc.status == 400
                and self._send_think
                and self.think_value() is False
                and "does not support thinking" in str(exc)
            ):
                raise
        # an Ollama older than 0.12.5 refuses think: false for a model that cannot think
        self._send_think = False
        self._tails.clear()
        return await super().complete(request)

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
        check_finish(finish, content, reasoning, self.name)
        if not content.strip():
            raise EmptyCompletionError(f"engine '{self.name}': empty reply (done_reason={finish})", engine=self.name)
        return Completion(
            text=content,
            reasoning=reasoning,
            usage=Usage(
                prompt_tokens=data.get("prompt_eval_count") or 0, completion_tokens=data.get("eval_count") or 0
            ),
            model=data.get("model"),
            finish_reason=finish,
        )
