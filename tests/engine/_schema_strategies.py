"""Hypothesis strategies for the JSON values a strict-mode schema admits (recursion included).

``hypothesis-jsonschema`` cannot follow recursive ``$ref``s, so the corpus test uses this
small generator for every strict schema and ``hypothesis-jsonschema`` as a second
generator where it works. Only the strict-mode subset is handled (that is all the
converter emits); anything else raises, so a schema outside the subset cannot slip by.
"""

from __future__ import annotations

import datetime as dt
import math
from typing import Any

from hypothesis import strategies as st

_ALLOWED = {
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

_FORMATS = {
    "date-time": st.datetimes(timezones=st.sampled_from([dt.timezone.utc, dt.timezone(dt.timedelta(hours=-5))])).map(
        lambda d: d.isoformat()
    ),
    "date": st.dates().map(lambda d: d.isoformat()),
    "time": st.times().map(lambda t: t.isoformat() + "Z"),
    "duration": st.tuples(st.integers(0, 30), st.integers(0, 23), st.integers(0, 59)).map(
        lambda t: f"P{t[0]}DT{t[1]}H{t[2]}M"
    ),
    "uuid": st.uuids().map(str),
    "email": st.from_regex(r"[a-z]{1,8}@[a-z]{1,8}\.(com|org)", fullmatch=True),
    "hostname": st.from_regex(r"[a-z]{1,10}(\.[a-z]{1,10}){0,2}", fullmatch=True),
    "ipv4": st.ip_addresses(v=4).map(str),
    "ipv6": st.ip_addresses(v=6).map(str),
}


def admitted(schema: dict[str, Any], *, max_depth: int = 4) -> st.SearchStrategy[Any]:
    """Values ``schema`` admits; recursion is cut after ``max_depth`` ``$ref`` hops."""
    return _Gen(schema, max_depth).node(schema, 0)


class _Gen:
    def __init__(self, root: dict[str, Any], max_depth: int) -> None:
        self.root = root
        self.defs = root.get("$defs", {})
        self.max_depth = max_depth

    def node(self, node: dict[str, Any], depth: int) -> st.SearchStrategy[Any]:
        unknown = set(node) - _ALLOWED
        if unknown:
            raise ValueError(f"outside the strict subset: {sorted(unknown)}")
        if "$ref" in node:
            ref = node["$ref"]
            target = self.root if ref == "#" else self.defs[ref[len("#/$defs/") :]]
            if depth >= self.max_depth:
                return self.finite(target, depth + 1)
            return st.deferred(lambda: self.node(target, depth + 1))
        if "anyOf" in node:
            return st.one_of([self.node(sub, depth) for sub in node["anyOf"]])
        if "const" in node:
            return st.just(node["const"])
        if "enum" in node:
            return st.sampled_from(node["enum"])
        typ = node.get("type")
        if isinstance(typ, list):
            return st.one_of([self.node({**node, "type": t}, depth) for t in typ])
        if typ == "null":
            return st.none()
        if typ == "boolean":
            return st.booleans()
        if typ == "integer":
            return self.integer(node)
        if typ == "number":
            if "multipleOf" in node:
                return self.integer(node)
            ints = self.integer(node)
            return st.one_of(ints, self.number(node)) if not ints.is_empty else self.number(node)
        if typ == "string":
            return self.string(node)
        if typ == "array":
            items = self.node(node["items"], depth)
            return st.lists(items, min_size=node.get("minItems", 0), max_size=node.get("maxItems", 3))
        if typ == "object":
            props = node["properties"]
            return st.fixed_dictionaries({k: self.node(v, depth) for k, v in props.items()})
        raise ValueError(f"no generator for {node}")

    def finite(self, node: dict[str, Any], depth: int) -> st.SearchStrategy[Any]:
        """At the recursion limit: the object with every recursive member cut short."""
        if "properties" not in node:
            return self.node(node, depth)
        out = {}
        for key, sub in node["properties"].items():
            if "anyOf" in sub and {"type": "null"} in sub["anyOf"]:
                out[key] = st.none()
            elif sub.get("type") == "array" and not sub.get("minItems"):
                out[key] = st.just([])
            elif "$ref" in sub:
                raise ValueError("an unavoidable recursion has no finite instance")
            else:
                out[key] = self.node(sub, depth)
        return st.fixed_dictionaries(out)

    @staticmethod
    def integer(node: dict[str, Any]) -> st.SearchStrategy[int]:
        lo = node.get("minimum", -1000)
        hi = node.get("maximum", 1000)
        if "exclusiveMinimum" in node:
            lo = math.floor(node["exclusiveMinimum"]) + 1
        if "exclusiveMaximum" in node:
            hi = math.ceil(node["exclusiveMaximum"]) - 1
        lo, hi = math.ceil(lo), math.floor(hi)
        if lo > hi:
            return st.nothing()
        step = node.get("multipleOf")
        if step:
            return st.integers(math.ceil(lo / step), math.floor(hi / step)).map(lambda k: k * step)
        return st.integers(lo, hi)

    @staticmethod
    def number(node: dict[str, Any]) -> st.SearchStrategy[float]:
        lo = node.get("minimum", node.get("exclusiveMinimum", -1e6))
        hi = node.get("maximum", node.get("exclusiveMaximum", 1e6))
        return st.floats(
            lo,
            hi,
            exclude_min="exclusiveMinimum" in node,
            exclude_max="exclusiveMaximum" in node,
            allow_nan=False,
            allow_infinity=False,
        )

    @staticmethod
    def string(node: dict[str, Any]) -> st.SearchStrategy[str]:
        lo, hi = node.get("minLength", 0), node.get("maxLength")
        if "format" not in node and "pattern" not in node:
            return st.text(min_size=lo, max_size=12 if hi is None else hi)
        hi = 10**6 if hi is None else hi
        if "format" in node:
            base = _FORMATS[node["format"]]
        elif "pattern" in node:
            base = st.from_regex(node["pattern"], fullmatch=True)
        return base.filter(lambda s: lo <= len(s) <= hi)
