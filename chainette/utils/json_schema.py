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


def to_strict_schema(schema: dict[str, Any]) -> dict[str, Any]:
    """Convert a Pydantic schema to what OpenAI's strict structured outputs accept.

    Strict mode (checked against OpenAI's "Supported schemas" docs) needs every object
    to list all its properties in ``required`` and to set ``additionalProperties: false``;
    optional fields become ``anyOf [..., {"type": "null"}]`` (use :func:`drop_added_nulls`
    on the reply so their defaults apply again). A ``$ref`` with sibling keywords is
    inlined, a one-element ``allOf`` is flattened, and keywords strict mode rejects
    (``default``, ``minLength``/``maxLength``, ``uniqueItems``, object-size keywords,
    unknown ``format`` values) are removed. ``pattern``, numeric bounds, ``multipleOf``
    and ``minItems``/``maxItems`` are kept: strict mode supports them.
    """
    out = copy.deepcopy(schema)
    defs = out.get("$defs", {})
    _strictify(out, defs)
    return out


_UNSUPPORTED = ("default", "minLength", "maxLength", "uniqueItems", "minProperties",
                "maxProperties", "patternProperties", "propertyNames", "unevaluatedProperties",
                "examples", "contentEncoding", "contentMediaType")
_FORMATS = {"date-time", "time", "date", "duration", "email", "hostname", "ipv4", "ipv6", "uuid"}


def _strictify(node: Any, defs: dict[str, Any]) -> None:
    if isinstance(node, list):
        for item in node:
            _strictify(item, defs)
        return
    if not isinstance(node, dict):
        return
    ref = node.get("$ref")
    if isinstance(ref, str) and len(node) > 1 and ref.startswith("#/$defs/"):
        target = defs.get(ref.rsplit("/", 1)[-1])
        if isinstance(target, dict):
            node.pop("$ref")
            for k, v in copy.deepcopy(target).items():
                node.setdefault(k, v)
    all_of = node.get("allOf")
    if isinstance(all_of, list) and len(all_of) == 1 and isinstance(all_of[0], dict):
        node.pop("allOf")
        for k, v in all_of[0].items():
            node.setdefault(k, v)
        if "$ref" in node and len(node) > 1:
            _strictify(node, defs)
            return
    if node.get("type") == "object" or "properties" in node:
        props = node.setdefault("properties", {})
        required = set(node.get("required", []))
        for name, prop in props.items():
            if name not in required and isinstance(prop, dict) and not _is_nullable(prop):
                props[name] = {"anyOf": [prop, {"type": "null"}]}
        node["required"] = list(props)
        node["additionalProperties"] = False
    for key in _UNSUPPORTED:
        node.pop(key, None)
    if "format" in node and node["format"] not in _FORMATS:
        node.pop("format")
    for key, value in list(node.items()):
        if key in ("properties", "$defs"):
            for sub in value.values():
                _strictify(sub, defs)
        elif key in ("enum", "const", "required"):
            continue
        elif isinstance(value, (dict, list)):
            _strictify(value, defs)


def _is_nullable(prop: dict[str, Any]) -> bool:
    typ = prop.get("type")
    if typ == "null" or (isinstance(typ, list) and "null" in typ):
        return True
    return any(isinstance(s, dict) and s.get("type") == "null" for s in prop.get("anyOf", []))


def drop_added_nulls(value: Any, schema: dict[str, Any]) -> Any:
    """Remove ``null`` values that :func:`to_strict_schema` allowed but ``schema`` does not.

    Strict mode forces optional fields to be present; a model that fills one with
    ``null`` would fail validation against a non-nullable field with a default. Dropping
    the key lets the default apply. Mutates and returns ``value``.
    """
    _drop(value, schema, schema.get("$defs", {}), 0)
    return value


def _drop(value: Any, node: dict[str, Any], defs: dict[str, Any], depth: int) -> None:
    if depth > 32 or not isinstance(node, dict):
        return
    ref = node.get("$ref")
    if isinstance(ref, str):
        node = defs.get(ref.rsplit("/", 1)[-1], {})
    if isinstance(value, dict):
        props = node.get("properties")
        if not isinstance(props, dict):
            for sub in node.get("allOf", ()):
                _drop(value, sub, defs, depth + 1)
            return
        required = node.get("required", ())
        for key in list(value):
            prop = props.get(key)
            if not isinstance(prop, dict):
                continue
            if value[key] is None:
                if key not in required and not _is_nullable(prop):
                    del value[key]
            else:
                _drop(value[key], prop, defs, depth + 1)
    elif isinstance(value, list) and isinstance(node.get("items"), dict):
        for item in value:
            _drop(item, node["items"], defs, depth + 1)
    if isinstance(value, (dict, list)):
        for sub in node.get("anyOf", ()):
            if isinstance(sub, dict) and sub.get("type") != "null":
                _drop(value, sub, defs, depth + 1)
                break
