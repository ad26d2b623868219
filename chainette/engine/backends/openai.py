"""OpenAI Chat Completions (and any OpenAI-compatible endpoint, e.g. a proxy or gateway).

Structured output uses strict ``response_format: json_schema`` with the schema made
strict-compatible by :func:`to_strict_schema`; nulls that strict mode forced into
optional fields are dropped from the reply so Pydantic defaults apply. A
``message.refusal`` raises :class:`RefusalError`.
"""

from __future__ import annotations

import re
from typing import Any

from chainette.engine.backends.base import BaseHTTPClient, dumps, loads, sampling_fields
from chainette.engine.protocol import Completion, CompletionRequest
from chainette.utils.json_schema import drop_added_nulls, to_strict_schema

_NAME_OK = re.compile(r"[^a-zA-Z0-9_-]")


class OpenAIClient(BaseHTTPClient):
    """``POST {endpoint}/chat/completions`` with a Bearer key and strict JSON schema."""

    backend = "openai"

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        # api.openai.com deprecated max_tokens in favour of max_completion_tokens (required
        # by reasoning models); other OpenAI-compatible servers mostly only know max_tokens.
        self._max_key = "max_completion_tokens" if "api.openai.com" in self.endpoint else "max_tokens"
        self._strict_cache: dict[int, tuple[Any, bool]] = {}

    def body_extra(self, request: CompletionRequest) -> dict[str, Any]:
        extra = sampling_fields(request, max_tokens_key=self._max_key)
        if request.json_schema is not None:
            strict = to_strict_schema(request.json_schema)
            extra["response_format"] = {
                "type": "json_schema",
                "json_schema": {
                    "name": _NAME_OK.sub("_", request.schema_name or "output")[:64] or "output",
                    "schema": strict,
                    "strict": True,
                },
            }
        return extra

    async def complete(self, request: CompletionRequest) -> Completion:
        completion = await super().complete(request)
        schema = request.json_schema
        if schema is not None and "null" in completion.text and self._needs_null_fix(schema):
            try:
                completion.text = dumps(drop_added_nulls(loads(completion.text), schema)).decode()
            except (ValueError, TypeError):
                pass  # not JSON: the executor reports it
        return completion

    def _needs_null_fix(self, schema: dict[str, Any]) -> bool:
        hit = self._strict_cache.get(id(schema))
        if hit is None or hit[0] is not schema:
            added = dumps(to_strict_schema(schema)).count(b'{"type":"null"}') > dumps(schema).count(b'{"type":"null"}')
            hit = self._strict_cache[id(schema)] = (schema, added)
        return hit[1]

