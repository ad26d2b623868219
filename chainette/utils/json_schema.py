"""Pure helpers around Pydantic JSON schemas: the cached schema and the prompt instruction.

The OpenAI strict-mode conversion lives with its backend:
:mod:`chainette.engine.backends.strict_schema`.
"""

from __future__ import annotations

import json
from functools import lru_cache
from typing import Any

from pydantic import BaseModel


@lru_cache(maxsize=256)
def model_schema(model: type[BaseModel]) -> dict[str, Any]:
    """The model's JSON schema (cached: treat the result as read-only)."""
    return model.model_json_schema()


@lru_cache(maxsize=256)
def generate_json_output_prompt(model: type[BaseModel]) -> str:
    """The instruction appended to a step's system prompt so the model answers in JSON.

    It lists the fields in plain words (small models follow this far better than a raw
    JSON schema); the schema itself is enforced by the server and validated by Pydantic.
    """
    schema = model_schema(model)
    lines = ["Reply with only a JSON object, no other text, with these fields:"]
    lines += _describe_fields(schema, schema.get("$defs", {}), indent="")
    return "\n".join(lines)


def _describe_fields(schema: dict[str, Any], defs: dict[str, Any], indent: str) -> list[str]:
    required = set(schema.get("required", []))
    out = []
    for name, prop in schema.get("properties", {}).items():
        text = f"{indent}- {name}: {_describe_type(prop, defs)}"
        desc = prop.get("description")
        if desc:
            text += f" — {desc}"
        if name not in required:
            text += " (optional)"
        out.append(text)
        target = _resolve(prop, defs)
        if target.get("type") == "object" and target.get("properties") and len(indent) < 8:
            out += _describe_fields(target, defs, indent + "  ")
    return out


def _resolve(prop: dict[str, Any], defs: dict[str, Any]) -> dict[str, Any]:
    if "$ref" in prop:
        return defs.get(prop["$ref"].rsplit("/", 1)[-1], {})
    return prop


def _describe_type(prop: dict[str, Any], defs: dict[str, Any]) -> str:
    prop = _resolve(prop, defs)
    if "enum" in prop:
        return "one of " + ", ".join(json.dumps(v) for v in prop["enum"])
    if "const" in prop:
        return f"exactly {json.dumps(prop['const'])}"
    for key in ("anyOf", "oneOf"):
        if key in prop:
            options = [o for o in prop[key] if o.get("type") != "null"]
            kinds = " or ".join(_describe_type(o, defs) for o in options) or "null"
            return kinds + (" or null" if len(options) < len(prop[key]) else "")
    typ = prop.get("type", "any value")
    if typ == "array":
        return f"list of {_describe_type(prop.get('items', {}), defs)}"
    if typ == "object":
        return "object" if prop.get("properties") else "object (any keys)"
    bounds = []
    for key, word in (("minimum", ">="), ("exclusiveMinimum", ">"), ("maximum", "<="), ("exclusiveMaximum", "<")):
        if key in prop:
            bounds.append(f"{word} {prop[key]}")
    return typ + (f" ({', '.join(bounds)})" if bounds else "")
