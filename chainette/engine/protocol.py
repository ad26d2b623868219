"""The engine seam: one request type, one completion type, one async method.

Every backend (OpenAI, vLLM, Ollama, the embedded llama.cpp server, the public
``FakeEngine``) implements :class:`Engine`. The executor builds a
:class:`CompletionRequest`, calls ``await engine.complete(request)`` and validates
the returned text against the step's output model itself, whatever the backend.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Protocol, runtime_checkable

from pydantic import BaseModel

from chainette.core.sampling import SamplingParams

__all__ = [
    "Completion",
    "CompletionRequest",
    "Engine",
    "SamplingParams",
    "Usage",
]


@dataclass(slots=True)
class Usage:
    """Token usage of one request."""

    prompt_tokens: int = 0
    completion_tokens: int = 0
    cached_prompt_tokens: int = 0
    """of ``prompt_tokens``, those the provider served from its prompt cache (a lower price)"""

    @property
    def total_tokens(self) -> int:
        """Prompt plus completion tokens."""
        return self.prompt_tokens + self.completion_tokens


@dataclass(slots=True)
class CompletionRequest:
    """What a step asks an engine for.

    ``json_schema`` is the output model's JSON schema (``None`` for free text);
    ``output_model`` is passed along so fakes can fill it directly.
    """

    messages: list[dict[str, str]]
    json_schema: dict[str, Any] | None = None
    schema_name: str = "output"
    sampling: SamplingParams = field(default_factory=SamplingParams)
    output_model: type[BaseModel] | None = None
    step_id: str = ""
    row_id: str = ""
    attempt: int = 1
    """1 for a step's first request for a row, 2 for the first re-ask of an invalid reply, ..."""


@dataclass(slots=True)
class Completion:
    """What an engine returns: raw text, optional reasoning, usage and latency."""

    text: str
    reasoning: str | None = None
    usage: Usage = field(default_factory=Usage)
    latency_s: float = 0.0
    model: str | None = None
    finish_reason: str | None = None


@runtime_checkable
class Engine(Protocol):
    """One async method turns a request into a completion.

    ``max_in_flight`` bounds concurrent requests to this engine across every step
    and branch that uses it; the engine enforces it itself.
    """

    name: str
    max_in_flight: int

    async def complete(self, request: CompletionRequest) -> Completion:
        """Answer one request (retries, limits and back-off are the engine's own business)."""
        ...

    async def prepare(self) -> None:
        """Called once by a run on each engine it creates, before any request (e.g. to ask
        the server its version); engine instances passed to ``run(engines=...)`` are not
        prepared."""
        ...

    async def aclose(self) -> None:
        """Release connections; the engine is not used after this."""
        ...
