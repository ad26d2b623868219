"""Pydantic JSON schema -> OpenAI strict structured-outputs schema, or why it cannot be one.

:func:`strict_verdict` returns a :class:`StrictVerdict`: either a :class:`StrictSchema`
(the schema to send with ``strict: true`` and what to undo in the reply) or the list of
fields strict mode cannot express, each as ``"Model.field: reason"``. The rule is that a
sent schema keeps its meaning: every reply it admits must validate into the Pydantic
model. So a construct is either rewritten into an equivalent strict form or the verdict is
"not strict" (the OpenAI backend then sends the schema with ``strict: false`` and
``validate()`` warns), never loosened or narrowed:

==================================  ================================================
Pydantic construct                   strict form
==================================  ================================================
optional field (has a default)       required, ``anyOf [T, null]``; a ``null`` reply is
                                     removed again (:meth:`StrictSchema.restore`) so the
                                     default applies
``default``, ``examples``            dropped (annotations; strict mode rejects them)
``$ref`` with siblings, 1-``allOf``  inlined
discriminated union (``oneOf``)      ``anyOf`` (the variants are disjoint on the
                                     discriminator, so it means the same), the
                                     discriminator moved to each variant's first key
``set[T]`` (``uniqueItems``)         dropped: a set accepts duplicates
``tuple[T, T]``                      ``items: T`` with ``minItems = maxItems``
``tuple[A, B]`` (``prefixItems``)    not strict
``dict[str, T]``, ``dict``, ``Any``  not strict (strict mode needs a fixed key set and
                                     a type)
``format`` outside strict's list     not strict (``uri``, ``binary``, ...); ``password``
                                     (``SecretStr``) is dropped, any string fits it
``pattern`` with lookarounds,        not strict (e.g. ``Decimal``'s string form)
named groups or backreferences
==================================  ================================================

The result is then checked against :func:`~chainette.engine.backends.strict_rules.strict_mode_violations`
(an independent reading of the documented rules); anything it reports makes the verdict
"not strict" too.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, field
from functools import lru_cache
from typing import Any

from pydantic import BaseModel

from chainette.engine.backends.strict_rules import ALLOWED_KEYWORDS, STRICT_FORMATS, strict_mode_violations

_ANNOTATIONS = frozenset({"default", "examples", "readOnly", "writeOnly", "deprecated", "$comment", "$schema", "$id"})
_STRUCTURE = frozenset({"properties", "required", "additionalProperties", "items", "anyOf", "$ref", "$defs"})
_KEPT = ALLOWED_KEYWORDS - _STRUCTURE
"""The keywords strict mode allows on a node that are copied as they are (the structural ones
are rebuilt: objects, arrays, unions and references)."""
_HARMLESS_FORMATS = frozenset({"password"})  # SecretStr: any string validates
_EXOTIC_REGEX = re.compile(r"\(\?[=!<]|\(\?P|\\[1-9]")
"""Lookarounds, named groups, backreferences: the guide does not say its regex dialect has
them and constrained decoders generally do not, so such a pattern is not sent strict."""
_NULL = {"type": "null"}


class StrictSchemaError(ValueError):
    """A schema strict mode cannot express; ``problems`` says which field and why."""

    def __init__(self, problems: list[str]) -> None:
        self.problems = list(problems)
        super().__init__("; ".join(self.problems))


@dataclass(eq=False)
class StrictSchema:
    """A strict-mode schema plus what to undo in the reply.

    ``added_nulls`` maps ``id()`` of an object node inside ``schema`` to the property names
    that were made nullable only because strict mode requires every property.
    """

    schema: dict[str, Any]
    added_nulls: dict[int, frozenset[str]] = field(default_factory=dict)
    _validators: dict[int, Any] = field(default_factory=dict, repr=False)

    def restore(self, value: Any) -> Any:
        """Remove the ``null`` values strict mode forced into optional fields (mutates ``value``)."""
        if self.added_nulls:
            self._restore(value, self.schema, 0)
        return value

    def _resolve(self, node: Any) -> Any:
        for _ in range(64):
            ref = node.get("$ref") if isinstance(node, dict) else None
            if ref is None:
                return node
            node = self.schema if ref == "#" else self.schema.get("$defs", {}).get(ref[8:], {})
        return node

    def _restore(self, value: Any, node: Any, depth: int) -> None:
        node = self._resolve(node)
        if depth > 200 or not isinstance(node, dict) or value is None:
            return
        variants = node.get("anyOf")
        if isinstance(variants, list):
            chosen = self._choose(value, [v for v in variants if v != _NULL])
            if chosen is not None:
                self._restore(value, chosen, depth + 1)
            return
        if isinstance(value, dict):
            props = node.get("properties") or {}
            added = self.added_nulls.get(id(node), frozenset())
            for key in list(value):
                if value[key] is None:
                    if key in added:
                        del value[key]
                elif key in props:
                    self._restore(value[key], props[key], depth + 1)
        elif isinstance(value, list) and isinstance(node.get("items"), dict):
            for item in value:
                self._restore(item, node["items"], depth + 1)

    def _choose(self, value: Any, variants: list[Any]) -> Any:
        """The anyOf variant that admits ``value`` (by JSON type first, then by validation)."""
        fitting = [v for v in variants if _json_type_fits(value, self._resolve(v))]
        if len(fitting) <= 1:
            return fitting[0] if fitting else None
        for variant in fitting:
            if self._validator(variant).is_valid(value):
                return variant
        return fitting[0]

    def _validator(self, variant: dict[str, Any]) -> Any:
        hit = self._validators.get(id(variant))
        if hit is None:
            from jsonschema import Draft202012Validator

            hit = Draft202012Validator(self.schema).evolve(schema=variant)
            self._validators[id(variant)] = hit
        return hit


@dataclass(frozen=True)
class StrictVerdict:
    """Either ``strict`` (a :class:`StrictSchema`) or ``problems`` (why not)."""

    strict: StrictSchema | None
    problems: tuple[str, ...] = ()

    @property
    def ok(self) -> bool:
        return self.strict is not None


def strict_verdict(schema: dict[str, Any]) -> StrictVerdict:
    """Convert a Pydantic JSON schema for OpenAI strict mode, or say why it cannot be."""
    conv = _Converter(schema)
    out = conv.convert()
    if not conv.problems:
        conv.problems += [f"{conv.name}: {v}" for v in strict_mode_violations(out)]
    if conv.problems:
        return StrictVerdict(None, tuple(dict.fromkeys(conv.problems)))
    return StrictVerdict(StrictSchema(out, conv.added))


_MEMO: dict[int, tuple[dict[str, Any], StrictVerdict]] = {}


def cached_strict_verdict(schema: dict[str, Any]) -> StrictVerdict:
    """:func:`strict_verdict` memoised per schema object (schemas are read-only and long-lived)."""
    hit = _MEMO.get(id(schema))
    if hit is None or hit[0] is not schema:
        if len(_MEMO) > 512:
            _MEMO.clear()
        hit = _MEMO[id(schema)] = (schema, strict_verdict(schema))
    return hit[1]


@lru_cache(maxsize=256)
def strict_verdict_for_model(model: type[BaseModel]) -> StrictVerdict:
    """The verdict for a model's (cached) JSON schema, as the runtime computes it."""
    from chainette.utils.json_schema import model_schema

    return cached_strict_verdict(model_schema(model))


def to_strict_schema(schema: dict[str, Any]) -> dict[str, Any]:
    """The strict-mode schema for ``schema``; :class:`StrictSchemaError` if there is none."""
    verdict = strict_verdict(schema)
    if verdict.strict is None:
        raise StrictSchemaError(list(verdict.problems))
    return verdict.strict.schema


# -- conversion ---------------------------------------------------------------------------
class _Converter:
    def __init__(self, schema: dict[str, Any]) -> None:
        self.src = schema
        self.defs: dict[str, Any] = schema.get("$defs", {}) if isinstance(schema.get("$defs"), dict) else {}
        self.problems: list[str] = []
        self.added: dict[int, frozenset[str]] = {}
        self.out_defs: dict[str, Any] = {}
        self.first_keys: list[tuple[list[Any], str, str | None]] = []
        self.name = str(schema.get("title") or "output")

    def convert(self) -> dict[str, Any]:
        root = {k: v for k, v in self.src.items() if k != "$defs"}
        name = self.name
        if "$ref" in root:  # a recursive root model: {"$ref": "#/$defs/Node", "$defs": ...}
            target = self._def(root["$ref"], name)
            name = self.name = str((target or {}).get("title") or name)
            root = {**(target or {}), **{k: v for k, v in root.items() if k != "$ref"}}
        out = self.node(root, name)
        for def_name, sub in self.defs.items():
            self.out_defs[def_name] = self.node(
                sub, str(sub.get("title") or def_name) if isinstance(sub, dict) else def_name
            )
        if out.get("type") != "object" or "properties" not in out:
            self._problem(name, "the output must be a JSON object with named fields")
        self._fix_first_keys()
        if self.out_defs:
            out["$defs"] = self.out_defs
        return out

    def _problem(self, where: str, why: str) -> None:
        self.problems.append(f"{where}: {why}")

    def _def(self, ref: Any, where: str) -> dict[str, Any] | None:
        if isinstance(ref, str) and ref.startswith("#/$defs/") and isinstance(self.defs.get(ref[8:]), dict):
            return self.defs[ref[8:]]
        self._problem(where, f"unresolvable $ref {ref!r}")
        return None

    def node(self, node: Any, where: str) -> dict[str, Any]:
        if node is True or node == {} or not isinstance(node, dict):
            self._problem(where, "any value (Any) has no type; strict mode needs one")
            return {}
        node = {k: v for k, v in node.items() if k not in _ANNOTATIONS}
        if "$ref" in node:
            ref = node["$ref"]
            if len(node) == 1:
                if ref != "#":
                    self._def(ref, where)
                return {"$ref": ref}
            target = self.src if ref == "#" else self._def(ref, where)
            if target is None:
                return {}
            rest = {k: v for k, v in node.items() if k != "$ref"}
            return self.node({**{k: v for k, v in target.items() if k != "$defs"}, **rest}, where)
        all_of = node.pop("allOf", None)
        if all_of is not None:
            if isinstance(all_of, list) and len(all_of) == 1 and isinstance(all_of[0], dict):
                return self.node({**all_of[0], **node}, where)
            self._problem(where, "allOf (an intersection of schemas) is not supported in strict mode")
            return {}
        if "oneOf" in node:
            return self._one_of(node, where)
        if "anyOf" in node:
            return self._any_of(node, where)
        for key in node:
            if key not in _KEPT and key not in (
                "properties",
                "required",
                "additionalProperties",
                "items",
                "prefixItems",
                "uniqueItems",
            ):
                self._problem(where, f"keyword '{key}' has no strict-mode equivalent")
        typ = node.get("type")
        types = typ if isinstance(typ, list) else [typ]
        if "object" in types or "properties" in node:
            return self._object(node, where)
        if "array" in types:
            return self._array(node, where)
        if typ is None and "enum" not in node and "const" not in node:
            self._problem(where, "any value (Any) has no type; strict mode needs one")
            return {}
        out = {k: v for k, v in node.items() if k in _KEPT}
        pattern = out.get("pattern")
        if isinstance(pattern, str) and _EXOTIC_REGEX.search(pattern):
            self._problem(
                where,
                f"pattern {pattern!r} uses a lookaround, named group or backreference, "
                "which strict mode's regular expressions are not documented to support",
            )
        fmt = out.get("format")
        if fmt is not None and fmt not in STRICT_FORMATS:
            if fmt in _HARMLESS_FORMATS:
                out.pop("format")
            else:
                self._problem(
                    where,
                    f"string format '{fmt}' is not one strict mode supports ({', '.join(sorted(STRICT_FORMATS))})",
                )
        return out

    def _object(self, node: dict[str, Any], where: str) -> dict[str, Any]:
        props = node.get("properties")
        extra = node.get("additionalProperties")
        if not isinstance(props, dict):
            what = (
                "a dict with free-form keys" if extra not in (None, False) or "properties" not in node else "an object"
            )
            self._problem(
                where, f"{what} (e.g. dict[str, ...]) cannot be expressed: strict mode needs a fixed set of keys"
            )
            return {}
        if not props and extra not in (None, False):
            self._problem(
                where,
                "a dict with free-form keys (e.g. dict[str, ...]) cannot be expressed: "
                "strict mode needs a fixed set of keys",
            )
            return {}
        required = set(node.get("required", ()))
        out: dict[str, Any] = {k: v for k, v in node.items() if k in ("title", "description")}
        out["type"] = "object"
        new_props: dict[str, Any] = {}
        added: set[str] = set()
        for name, prop in props.items():
            sub = self.node(prop, f"{where}.{name}")
            if name not in required and not self._nullable(sub):
                sub = self._with_null(sub)
                added.add(name)
            new_props[name] = sub
        out["properties"] = new_props
        out["required"] = list(new_props)
        out["additionalProperties"] = False
        if added:
            self.added[id(out)] = frozenset(added)
        return out

    def _array(self, node: dict[str, Any], where: str) -> dict[str, Any]:
        out = {k: v for k, v in node.items() if k in ("title", "description", "type", "minItems", "maxItems")}
        prefix = node.get("prefixItems")
        if prefix is not None:
            items = [self.node(p, f"{where}[{i}]") for i, p in enumerate(prefix)] if isinstance(prefix, list) else []
            texts = {json.dumps(i, sort_keys=True) for i in items}
            tail = node.get("items")
            if (
                not items
                or len(texts) > 1
                or (
                    tail not in (None, False) and json.dumps(self.node(tail, f"{where}[]"), sort_keys=True) not in texts
                )
            ):
                self._problem(
                    where, "a tuple with different item types (prefixItems) cannot be expressed in strict mode"
                )
                return {}
            out["items"] = items[0]
            if tail in (None, False):
                out["minItems"] = out["maxItems"] = len(items)
            else:
                out["minItems"] = max(out.get("minItems", 0), len(items))
            return out
        item_schema = node.get("items")
        if item_schema is None:
            if node.get("maxItems") == 0:
                self._problem(where, "an always-empty array (tuple[()]) has no strict-mode item type")
            else:
                self._problem(where, "a list of any value has no item type; strict mode needs one")
            return {}
        out["items"] = self.node(item_schema, f"{where}[]")
        # uniqueItems (set[T]) is dropped: Pydantic's set accepts and merges duplicates
        return out

    def _any_of(self, node: dict[str, Any], where: str) -> dict[str, Any]:
        variants = node["anyOf"]
        rest = set(node) - {"anyOf", "title", "description"}
        if rest:
            self._problem(where, f"anyOf combined with {', '.join(sorted(rest))} is not supported in strict mode")
        out: dict[str, Any] = {k: v for k, v in node.items() if k in ("title", "description")}
        flat: list[Any] = []
        for sub in variants if isinstance(variants, list) else []:
            conv = self.node(sub, where)
            flat += conv["anyOf"] if set(conv) == {"anyOf"} else [conv]
        out["anyOf"] = flat
        self.first_keys.append((flat, where, None))
        return out

    def _one_of(self, node: dict[str, Any], where: str) -> dict[str, Any]:
        variants = node["oneOf"]
        disc = node.get("discriminator")
        prop = disc.get("propertyName") if isinstance(disc, dict) else disc if isinstance(disc, str) else None
        targets = [self._resolve_src(v) for v in variants] if isinstance(variants, list) else []
        if prop is None:
            prop = _common_discriminator(targets)
        if prop is None or not _disjoint_on(targets, prop):
            self._problem(
                where,
                "a oneOf union whose variants are not told apart by a literal field "
                "cannot be expressed (strict mode has only anyOf)",
            )
            return {}
        rest = {k: v for k, v in node.items() if k in ("title", "description")}
        out = self._any_of({"anyOf": variants, **rest}, where)
        self.first_keys[-1] = (out["anyOf"], where, prop)
        return out

    def _resolve_src(self, node: Any) -> Any:
        for _ in range(64):
            if not (isinstance(node, dict) and "$ref" in node):
                return node
            ref = node["$ref"]
            node = self.src if ref == "#" else self.defs.get(ref[8:]) if isinstance(ref, str) else None
        return node

    def _resolve_out(self, node: Any) -> Any:
        for _ in range(64):
            if not (isinstance(node, dict) and "$ref" in node):
                return node
            ref = node["$ref"]
            node = None if ref == "#" else self.out_defs.get(ref[8:]) if isinstance(ref, str) else None
        return node

    @staticmethod
    def _nullable(node: dict[str, Any]) -> bool:
        typ = node.get("type")
        if typ == "null" or (isinstance(typ, list) and "null" in typ):
            return True
        if None in (node.get("enum") or ()) or ("const" in node and node["const"] is None):
            return True
        return any(sub == _NULL for sub in node.get("anyOf", ()))

    @staticmethod
    def _with_null(node: dict[str, Any]) -> dict[str, Any]:
        if set(node) <= {"anyOf", "title", "description"} and "anyOf" in node:
            return {**node, "anyOf": [*node["anyOf"], dict(_NULL)]}
        return {"anyOf": [node, dict(_NULL)]}

    # -- anyOf objects must not share an identical first key ------------------------------
    def _fix_first_keys(self) -> None:
        for variants, where, disc in self.first_keys:
            objects = [
                o for o in (self._resolve_out(v) for v in variants) if isinstance(o, dict) and o.get("properties")
            ]
            if len(objects) < 2 or not _first_key_clash(objects):
                continue
            prop = disc or _common_discriminator(objects)
            if prop is not None and _disjoint_on(objects, prop):
                for obj in objects:
                    _move_first(obj, prop)
            else:
                picks = _unique_keys(objects)
                if picks is None:
                    self._problem(
                        where,
                        "union members share their first field and no field tells them apart "
                        "(strict mode rejects anyOf objects with an identical first key)",
                    )
                    continue
                for obj, key in zip(objects, picks, strict=True):
                    _move_first(obj, key)
            if _first_key_clash(objects):
                self._problem(where, "union members cannot be given distinct first fields")


def _json_type_fits(value: Any, node: Any) -> bool:
    if not isinstance(node, dict):
        return False
    if "anyOf" in node:
        return True
    if "enum" in node:
        return value in node["enum"]
    if "const" in node:
        return value == node["const"]
    typ = node.get("type")
    types = typ if isinstance(typ, list) else [typ]
    kind = (
        "object"
        if isinstance(value, dict)
        else "array"
        if isinstance(value, list)
        else "string"
        if isinstance(value, str)
        else "boolean"
        if isinstance(value, bool)
        else "integer"
        if isinstance(value, int)
        else "number"
        if isinstance(value, float)
        else "null"
    )
    return kind in types or (kind == "integer" and "number" in types)


def _literals(node: Any) -> list[Any] | None:
    if not isinstance(node, dict):
        return None
    if "const" in node:
        return [node["const"]]
    if isinstance(node.get("enum"), list):
        return list(node["enum"])
    return None


def _common_discriminator(objects: list[Any]) -> str | None:
    """A property every object has as a literal (const/enum), in the first object's order."""
    if not objects or not all(isinstance(o, dict) and isinstance(o.get("properties"), dict) for o in objects):
        return None
    for name in objects[0]["properties"]:
        if all(_literals(o["properties"].get(name)) is not None for o in objects) and _disjoint_on(objects, name):
            return name
    return None


def _disjoint_on(objects: list[Any], prop: str) -> bool:
    seen: list[str] = []
    for o in objects:
        props = o.get("properties") if isinstance(o, dict) else None
        values = _literals(props.get(prop)) if isinstance(props, dict) else None
        if values is None:
            return False
        texts = [json.dumps(v) for v in values]
        if any(t in seen for t in texts):
            return False
        seen += texts
    return True


def _first_key_clash(objects: list[dict[str, Any]]) -> bool:
    firsts = [json.dumps(next(iter(o["properties"].items())), sort_keys=True) for o in objects]
    return len(set(firsts)) < len(firsts)


def _unique_keys(objects: list[dict[str, Any]]) -> list[str] | None:
    """For each object, its first property whose name no other object has."""
    picks = []
    for i, obj in enumerate(objects):
        others = set().union(*(set(o["properties"]) for j, o in enumerate(objects) if j != i))
        pick = next((name for name in obj["properties"] if name not in others), None)
        if pick is None:
            return None
        picks.append(pick)
    return picks


def _move_first(obj: dict[str, Any], key: str) -> None:
    props = obj["properties"]
    obj["properties"] = {key: props[key], **{k: v for k, v in props.items() if k != key}}
    obj["required"] = list(obj["properties"])
