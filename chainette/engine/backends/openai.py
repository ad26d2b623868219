"""OpenAI Chat Completions (and any OpenAI-compatible endpoint, e.g. a proxy or gateway).

Structured output: ``response_format: json_schema``. When the output model can be
expressed under strict mode (:func:`~chainette.engine.backends.strict_schema.strict_verdict`)
it is sent with ``strict: true`` and the nulls strict mode forced into optional fields are
removed from the reply so Pydantic defaults apply; otherwise (``dict[str, T]``, mixed
tuples, ``Any``, unsupported string formats, ...) the Pydantic schema is sent with
``strict: false`` and :meth:`OpenAIClient.schema_warnings` says so at validation
(``strict_schema: always`` turns that into an error, ``never`` always sends non-strict).
A ``message.refusal`` raises :class:`RefusalError`.

The token limit goes out as ``max_completion_tokens`` on api.openai.com (``max_tokens``
is deprecated there and rejected by reasoning models) and as ``max_tokens`` elsewhere;
``max_tokens_field`` overrides both (Azure, gateways). ``reasoning_effort`` is sent when
the engine sets it. ``top_k``, ``min_p`` and ``repetition_penalty`` do not exist in this
API: a step setting them is refused at validation.
"""

from __future__ import annotations

import re
from typing import Any
from urllib.parse import urlsplit

from chainette.engine.backends.base import BaseHTTPClient, add_v1_if_bare, dumps, loads, merge_extra
from chainette.engine.backends.strict_schema import StrictSchema, cached_strict_verdict
from chainette.engine.protocol import Completion, CompletionRequest
from chainette.errors import ConfigError

_NAME_OK = re.compile(r"[^a-zA-Z0-9_-]")
OPENAI_HOST = "api.openai.com"


def is_openai_host(url: str) -> bool:
    """True for OpenAI's own API host."""
    return (urlsplit(url).hostname or "").lower() == OPENAI_HOST


class OpenAIClient(BaseHTTPClient):
    """``POST {endpoint}/chat/completions`` with a Bearer key and a JSON schema response format."""

    backend = "openai"
    unsupported_hint = (
        ": OpenAI's Chat Completions API has no such parameter. If this endpoint is an "
        "OpenAI-compatible server that accepts it, send it verbatim with "
        "SamplingParams(extra={{'{field}': ...}})"
    )
    reasoning_efforts = frozenset({"none", "minimal", "low", "medium", "high", "xhigh", "max"})

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        field = getattr(self.cfg, "max_tokens_field", None)
        self._max_key = field or ("max_completion_tokens" if is_openai_host(self.endpoint) else "max_tokens")
        self._strict_mode = getattr(self.cfg, "strict_schema", "auto")

    @classmethod
    def normalize_endpoint(cls, url: str) -> str:
        url = super().normalize_endpoint(url)
        return add_v1_if_bare(url) if is_openai_host(url) else url

    @property
    def max_tokens_key(self) -> str:
        return self._max_key

    # -- schema ------------------------------------------------------------------------
    def strict_for(self, schema: dict[str, Any]) -> StrictSchema | None:
        """The strict form sent for ``schema``, or ``None`` when it goes out non-strict."""
        if self._strict_mode == "never":
            return None
        verdict = cached_strict_verdict(schema)
        if verdict.strict is None and self._strict_mode == "always":
            raise ConfigError(self._refusal(schema, verdict.problems), engine=self.name)
        return verdict.strict

    def _refusal(self, schema: dict[str, Any], problems: tuple[str, ...]) -> str:
        return (
            f"engine '{self.name}' (strict_schema: always): {schema.get('title', 'the output model')} "
            f"cannot be sent under OpenAI strict structured outputs: {'; '.join(problems)}"
        )

    def schema_warnings(self, schema: dict[str, Any] | None, model_name: str = "output") -> list[str]:
        if schema is None or self._strict_mode != "auto":
            return []
        verdict = cached_strict_verdict(schema)
        if verdict.ok:
            return []
        return [
            f"{model_name} is sent to engine '{self.name}' as a non-strict JSON schema (replies are "
            f"validated, not constrained) because strict mode cannot express it: {'; '.join(verdict.problems)}"
        ]

    def schema_problems(self, schema: dict[str, Any] | None, model_name: str = "output") -> list[str]:
        if schema is None or self._strict_mode != "always":
            return []
        verdict = cached_strict_verdict(schema)
        return [] if verdict.ok else [self._refusal({"title": model_name}, verdict.problems)]

    # -- body ----------------------------------------------------------------------------
    def body_extra(self, request: CompletionRequest) -> dict[str, Any]:
        extra = self.sampling_body(request.sampling)
        effort = getattr(self.cfg, "reasoning_effort", None)
        if effort is not None:
            extra["reasoning_effort"] = effort
        schema = request.json_schema
        if schema is not None:
            strict = self.strict_for(schema)
            extra["response_format"] = {
                "type": "json_schema",
                "json_schema": {
                    "name": _NAME_OK.sub("_", request.schema_name or "output")[:64] or "output",
                    "schema": strict.schema if strict is not None else schema,
                    "strict": strict is not None,
                },
            }
        return merge_extra(extra, request.sampling.extra)

    async def complete(self, request: CompletionRequest) -> Completion:
        return self.restore_nulls(request, await super().complete(request))

    def restore_nulls(self, request: CompletionRequest, completion: Completion) -> Completion:
        """Remove the nulls strict mode forced into optional fields, so Pydantic defaults apply
        (also applied to replies that come back through the Batch API)."""
        schema = request.json_schema
        if schema is not None and "null" in completion.text:
            strict = self.strict_for(schema)
            if strict is not None and strict.added_nulls:
                try:
                    completion.text = dumps(strict.restore(loads(completion.text))).decode()
                except (ValueError, TypeError):
                    pass  # not JSON: the executor reports it
        return completion
