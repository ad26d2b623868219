"""Pure helpers around Pydantic JSON schemas: prompt instructions and strict-mode conversion."""

from __future__ import annotations

import copy
import json
from functools import lru_cache
from typing import Any

from pydantic import BaseModel


@lru_cache(maxsize=256)
def model_schema(model: type[BaseModel]) -> dict[str, Any]:
    """The model's JSON schema (cached: treat the result as read-only)."""
    return model.model_json_schema()


def generate_json_output_prompt(model: type[BaseModel]) -> str:
    """The instruction appended to a step's system prompt so the model answers in JSON."""
    schema = json.dumps(model_schema(model), separators=(",", ":"), sort_keys=True)
    return (
        "Respond with a single JSON object and nothing else. "
        f"It must validate against this JSON schema: {schema}"
    )


def to_strict_schema(schema: dict[str, Any]) -> dict[str, Any]:
    """Convert a Pydantic schema to what OpenAI's strict structured outputs accept.

    Strict mode needs every object to list all its properties as required and to set
    ``additionalProperties: false``; optional fields become ``anyOf [..., null]``;
    ``default`` and a few validation keywords it rejects are removed.
    """
    out = copy.deepcopy(schema)
    _strictify(out)
    for sub in out.get("$defs", {}).values():
        _strictify(sub)
    return out


_UNSUPPORTED = ("default", "title", "format", "minLength", "maxLength", "pattern",
                "minimum", "maximum", "exclusiveMinimum", "exclusiveMaximum",
                "minItems", "maxItems", "uniqueItems", "multipleOf")


def _strictify(node: Any) -> None:
    if isinstance(node, list):
        for item in node:
            _strictify(item)
        return
    if not isinstance(node, dict):
        return
    if node.get("type") == "object" or "properties" in node:
        props = node.setdefault("properties", {})
        required = set(node.get("required", []))
        for name, prop in props.items():
            if name not in required and isinstance(prop, dict):
                if not _is_nullable(prop):
                    props[name] = {"anyOf": [prop, {"type": "null"}]}
        node["required"] = list(props)
        node["additionalProperties"] = False
    for key in _UNSUPPORTED:
        node.pop(key, None)
    for key, value in list(node.items()):
        if key in ("properties", "$defs"):
            for sub in value.values():
                _strictify(sub)
        elif isinstance(value, (dict, list)):
            _strictify(value)


def _is_nullable(prop: dict[str, Any]) -> bool:
    if prop.get("type") == "null":
        return True
    return any(isinstance(s, dict) and s.get("type") == "null" for s in prop.get("anyOf", []))
