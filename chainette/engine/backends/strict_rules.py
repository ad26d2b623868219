"""OpenAI strict structured outputs: the documented schema rules, as a checker.

This module only *checks*; :mod:`chainette.engine.backends.strict_schema` converts. The
two are written separately on purpose: the converter's output is run through this
checker before it is sent, and the tests run both over a corpus of Pydantic models.

The rules are those of OpenAI's Structured Outputs guide, section "Supported schemas"
(https://platform.openai.com/docs/guides/structured-outputs#supported-schemas), including
the May 2025 extension that made ``minLength``/``maxLength``, ``pattern``, ``format``,
numeric bounds and ``minItems``/``maxItems`` available to (non fine-tuned) models:

* types: string, number, boolean, integer, object, array, null (as ``type`` or a list of
  them), ``enum``, ``const`` and ``anyOf``; ``$defs``/``$ref`` definitions, including
  recursion (``#`` or ``#/$defs/...``);
* the root is an object, not ``anyOf``;
* every object sets ``additionalProperties: false`` and lists every property in
  ``required`` (optional values are emulated with a union with ``null``);
* string keywords ``pattern``, ``format`` (date-time, time, date, duration, email,
  hostname, ipv4, ipv6, uuid), ``minLength``, ``maxLength``; number keywords
  ``multipleOf``, ``maximum``, ``exclusiveMaximum``, ``minimum``, ``exclusiveMinimum``;
  array keywords ``items``, ``minItems``, ``maxItems``;
* not supported: ``allOf``, ``not``, ``if``/``then``/``else``, ``dependentRequired``,
  ``dependentSchemas``, ``oneOf``, ``prefixItems``, ``patternProperties``, ``default`` (a
  400 "'default' is not permitted"), and any other keyword outside the list above;
* objects inside one ``anyOf`` must not share an identical first key (a 400 "Objects
  provided via 'anyOf' must not share identical first keys");
* size limits: at most 5000 object properties and 10 levels of nesting; at most 1000 enum
  values; at most 120,000 characters over all property names, definition names, enum and
  const values; a string enum with more than 250 values at most 15,000 characters.

``title`` and ``description`` are annotations and are accepted (the ``openai`` SDK's own
Pydantic helper sends them).
"""

from __future__ import annotations

import json
from typing import Any

STRICT_FORMATS = frozenset({"date-time", "time", "date", "duration", "email", "hostname", "ipv4", "ipv6", "uuid"})
TYPES = frozenset({"string", "number", "boolean", "integer", "object", "array", "null"})
ALLOWED_KEYWORDS = frozenset(
    {
        "type",
        "properties",
        "required",
        "additionalProperties",
        "items",
        "anyOf",
        "$ref",
        "$defs",
        "enum",
        "const",
        "title",
        "description",
        "pattern",
        "format",
        "minLength",
        "maxLength",
        "minimum",
        "maximum",
        "exclusiveMinimum",
        "exclusiveMaximum",
        "multipleOf",
        "minItems",
        "maxItems",
    }
)
MAX_PROPERTIES = 5000
MAX_DEPTH = 10
MAX_ENUM_VALUES = 1000
MAX_NAME_CHARS = 120_000
LARGE_ENUM = 250
MAX_LARGE_ENUM_CHARS = 15_000


def strict_mode_violations(schema: Any) -> list[str]:
    """Every way ``schema`` breaks OpenAI's strict-mode rules (``[]`` when it follows them).

    Each message starts with a JSON pointer to the offending node.
    """
    out: list[str] = []
    if not isinstance(schema, dict):
        return ["#: the schema must be a JSON object"]
    if schema.get("type") != "object" or "anyOf" in schema or "$ref" in schema:
        out.append("#: the root must be an object schema (type: object), not anyOf or a $ref")
    defs = schema.get("$defs", {})
    if not isinstance(defs, dict):
        out.append("#/$defs: must be a mapping")
        defs = {}
    _Checker(schema, defs, out).run()
    return out


class _Checker:
    def __init__(self, root: dict[str, Any], defs: dict[str, Any], out: list[str]) -> None:
        self.root, self.defs, self.out = root, defs, out
        self.properties = 0
        self.enum_values = 0
        self.chars = sum(len(name) for name in defs)
        self.seen: set[int] = set()

    def run(self) -> None:
        self.node(self.root, "#", is_root=True)
        for name, sub in self.defs.items():
            self.node(sub, f"#/$defs/{name}")
        if self.properties > MAX_PROPERTIES:
            self.out.append(f"#: {self.properties} object properties (strict mode allows {MAX_PROPERTIES})")
        if self.enum_values > MAX_ENUM_VALUES:
            self.out.append(f"#: {self.enum_values} enum values (strict mode allows {MAX_ENUM_VALUES})")
        if self.chars > MAX_NAME_CHARS:
            self.out.append(
                f"#: {self.chars} characters of names and enum values (strict mode allows {MAX_NAME_CHARS})"
            )
        depth = self.depth(self.root, 0, ())
        if depth > MAX_DEPTH:
            self.out.append(f"#: {depth} levels of object nesting (strict mode allows {MAX_DEPTH})")

    # -- one node ----------------------------------------------------------------
    def node(self, node: Any, where: str, is_root: bool = False) -> None:
        if not isinstance(node, dict):
            self.out.append(f"{where}: a schema must be an object (got {json.dumps(node)})")
            return
        if id(node) in self.seen:
            return
        self.seen.add(id(node))
        for key in node:
            if key not in ALLOWED_KEYWORDS:
                self.out.append(f"{where}: keyword '{key}' is not supported in strict mode")
        if "$defs" in node and not is_root:
            self.out.append(f"{where}: $defs is only allowed at the root")
        if "$ref" in node:
            self._ref(node, where)
            return
        if "anyOf" in node:
            self._any_of(node, where)
            return
        typ = node.get("type")
        types = typ if isinstance(typ, list) else [typ]
        if typ is None:
            if "enum" not in node and "const" not in node:
                self.out.append(f"{where}: no type (strict mode needs a type, enum, const, anyOf or $ref)")
        elif not types or any(t not in TYPES for t in types):
            self.out.append(f"{where}: unsupported type {json.dumps(typ)}")
        self._values(node, where)
        if "object" in types or "properties" in node:
            self._object(node, where)
        elif "additionalProperties" in node:
            self.out.append(f"{where}: additionalProperties on a non-object schema")
        if "array" in types:
            items = node.get("items")
            if items is None:
                self.out.append(f"{where}: an array needs an items schema")
            else:
                self.node(items, f"{where}/items")
        elif "items" in node:
            self.out.append(f"{where}: items on a non-array schema")
        fmt = node.get("format")
        if fmt is not None and fmt not in STRICT_FORMATS:
            self.out.append(
                f"{where}: format '{fmt}' is not supported (supported: {', '.join(sorted(STRICT_FORMATS))})"
            )

    def _ref(self, node: dict[str, Any], where: str) -> None:
        ref = node["$ref"]
        extra = set(node) - {"$ref"}
        if extra:
            self.out.append(f"{where}: $ref with sibling keywords ({', '.join(sorted(extra))})")
        if ref == "#":
            return
        if not (isinstance(ref, str) and ref.startswith("#/$defs/") and ref[8:] in self.defs):
            self.out.append(f"{where}: $ref {ref!r} does not name an entry of the root $defs")

    def _any_of(self, node: dict[str, Any], where: str) -> None:
        variants = node["anyOf"]
        other = set(node) - {"anyOf", "title", "description"}
        if other:
            self.out.append(f"{where}: anyOf with sibling keywords ({', '.join(sorted(other))})")
        if not isinstance(variants, list) or not variants:
            self.out.append(f"{where}: anyOf must be a non-empty list")
            return
        for i, sub in enumerate(variants):
            self.node(sub, f"{where}/anyOf/{i}")
        firsts: list[tuple[str, str]] = []
        for sub in variants:
            obj = self.resolve(sub)
            if isinstance(obj, dict) and isinstance(obj.get("properties"), dict) and obj["properties"]:
                name, prop = next(iter(obj["properties"].items()))
                firsts.append((name, json.dumps(prop, sort_keys=True)))
        if len(set(firsts)) < len(firsts):
            self.out.append(f"{where}: objects in anyOf share an identical first key")

    def _object(self, node: dict[str, Any], where: str) -> None:
        props = node.get("properties")
        if not isinstance(props, dict):
            self.out.append(f"{where}: an object needs properties (free-form objects are not supported)")
            props = {}
        if node.get("additionalProperties") is not False:
            self.out.append(f"{where}: additionalProperties must be false")
        required = node.get("required", [])
        if not isinstance(required, list) or set(required) != set(props) or len(required) != len(set(required)):
            missing = sorted(set(props) - set(required if isinstance(required, list) else []))
            self.out.append(
                f"{where}: every property must be required" + (f" (missing: {', '.join(missing)})" if missing else "")
            )
        self.properties += len(props)
        for name, sub in props.items():
            self.chars += len(name)
            self.node(sub, f"{where}/properties/{_escape(name)}")

    def _values(self, node: dict[str, Any], where: str) -> None:
        if "enum" in node:
            values = node["enum"]
            if not isinstance(values, list) or not values:
                self.out.append(f"{where}: enum must be a non-empty list")
                return
            self.enum_values += len(values)
            size = sum(len(v) for v in values if isinstance(v, str))
            self.chars += size
            if len(values) > LARGE_ENUM and all(isinstance(v, str) for v in values) and size > MAX_LARGE_ENUM_CHARS:
                self.out.append(
                    f"{where}: {len(values)} string enum values of {size} characters (at most {MAX_LARGE_ENUM_CHARS})"
                )
        if isinstance(node.get("const"), str):
            self.chars += len(node["const"])

    # -- nesting depth -------------------------------------------------------------------
    def resolve(self, node: Any) -> Any:
        for _ in range(64):
            if not (isinstance(node, dict) and "$ref" in node):
                return node
            ref = node["$ref"]
            node = self.root if ref == "#" else self.defs.get(ref[8:]) if isinstance(ref, str) else None
        return node

    def depth(self, node: Any, level: int, stack: tuple[int, ...]) -> int:
        """Deepest object nesting under ``node`` (a recursive reference is counted once)."""
        node = self.resolve(node)
        if not isinstance(node, dict) or id(node) in stack or level > MAX_DEPTH + 1:
            return level
        stack = (*stack, id(node))
        deepest = level
        here = level + 1 if isinstance(node.get("properties"), dict) else level
        children: list[Any] = []
        if isinstance(node.get("properties"), dict):
            children += node["properties"].values()
        if isinstance(node.get("items"), dict):
            children.append(node["items"])
        if isinstance(node.get("anyOf"), list):
            children += node["anyOf"]
        for sub in children:
            deepest = max(deepest, self.depth(sub, here, stack))
        return max(deepest, here)


def _escape(name: str) -> str:
    return name.replace("~", "~0").replace("/", "~1")
