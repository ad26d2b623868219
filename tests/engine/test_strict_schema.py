"""OpenAI strict mode: every corpus model either goes out strict, keeping its meaning, or is
marked non-strict with the field and the reason.

* the verdict (strict or not, and why) is the expected one;
* a strict schema follows strict mode's documented rules (an independent checker);
* soundness: every value the strict schema admits (generated) validates into the model
  once the nulls strict mode forced into optional fields are removed;
* completeness: every value of the model (generated from the Pydantic schema by
  hypothesis-jsonschema, or written by hand for recursive models) is admitted, so the
  declared type can always be produced.
"""

from __future__ import annotations

import copy

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from jsonschema import Draft202012Validator

from chainette.engine.backends.strict_rules import strict_mode_violations
from chainette.engine.backends.strict_schema import StrictSchemaError, strict_verdict, to_strict_schema

from ._schema_strategies import admitted
from .schema_corpus import CORPUS, Counts, Everything, LinkedList, OptionalWithDefaults, Pets, Tree

STRICT = [m for m, ok, _ in CORPUS if ok]
IDS = {m: m.__name__ for m, _, _ in CORPUS}
SETTINGS = settings(
    max_examples=40,
    deadline=None,
    database=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.filter_too_much],
)


def test_corpus_is_large_enough():
    assert len(CORPUS) >= 20 and len(STRICT) >= 12


@pytest.mark.parametrize(("model", "strict", "reason"), CORPUS, ids=lambda v: IDS.get(v, ""))
def test_verdict(model, strict, reason):
    verdict = strict_verdict(model.model_json_schema())
    assert verdict.ok is strict, verdict.problems
    if not strict:
        assert any(reason in p for p in verdict.problems), verdict.problems
        with pytest.raises(StrictSchemaError):
            to_strict_schema(model.model_json_schema())


@pytest.mark.parametrize("model", STRICT, ids=IDS.get)
def test_strict_schema_follows_the_documented_rules(model):
    schema = strict_verdict(model.model_json_schema()).strict.schema
    assert strict_mode_violations(schema) == []
    Draft202012Validator.check_schema(schema)


@pytest.mark.parametrize("model", STRICT, ids=IDS.get)
@SETTINGS
@given(data=st.data())
def test_every_admitted_reply_validates_into_the_model(model, data):
    strict = strict_verdict(model.model_json_schema()).strict
    value = data.draw(admitted(strict.schema))
    assert Draft202012Validator(strict.schema).is_valid(value)  # the generator is right
    model.model_validate(strict.restore(copy.deepcopy(value)))


NON_RECURSIVE = [m for m in STRICT if m not in (Tree, LinkedList, Everything)]


@pytest.mark.parametrize("model", NON_RECURSIVE, ids=IDS.get)
@SETTINGS
@given(data=st.data())
def test_every_model_value_is_admitted(model, data):
    hypothesis_jsonschema = pytest.importorskip("hypothesis_jsonschema")
    raw = data.draw(hypothesis_jsonschema.from_schema(_draft7_tuples(model.model_json_schema())))
    # the value is one of the declared type: valid under the model's own (2020-12) schema
    assert Draft202012Validator(model.model_json_schema()).is_valid(raw), raw
    try:
        instance = model.model_validate(raw)
    except ValueError:
        return  # JSON Schema is looser than the model in places (e.g. a pattern's Python flavour)
    strict = strict_verdict(model.model_json_schema()).strict.schema
    # the reply as written (values the model accepted), every key present as strict mode asks:
    # a field left out (its default applies) is a null, which strict mode admits for it
    reply = _fill(raw, instance.model_dump(mode="json", by_alias=True))
    errors = [e.message for e in Draft202012Validator(strict).iter_errors(reply)]
    assert not errors, (reply, errors)


def _draft7_tuples(schema):
    """The schema with each tuple's ``prefixItems`` (draft 2020-12) written the draft-7 way
    (``items`` as a list, ``additionalItems``): the form hypothesis-jsonschema generates from.
    It ignores ``prefixItems`` and would draw e.g. ``[false, false]`` for ``tuple[int, int]``,
    a value the model's lax mode accepts but not one of the declared type."""
    if isinstance(schema, list):
        return [_draft7_tuples(s) for s in schema]
    if not isinstance(schema, dict):
        return schema
    out = {k: _draft7_tuples(v) for k, v in schema.items()}
    if "prefixItems" in out:
        out["items"], rest = out.pop("prefixItems"), schema.get("items", True)
        out["additionalItems"] = _draft7_tuples(rest)
    return out


def _fill(raw, dumped):
    if isinstance(raw, dict) and isinstance(dumped, dict):
        return {k: _fill(raw[k], v) if k in raw else None for k, v in dumped.items()}
    if isinstance(raw, list) and isinstance(dumped, list) and len(raw) == len(dumped):
        return [_fill(r, d) for r, d in zip(raw, dumped, strict=True)]
    return raw if not isinstance(raw, (dict, list)) else dumped


RECURSIVE_VALUES = [
    Tree(value=1, children=[Tree(value=2, children=[Tree(value=3)]), Tree(value=4)]),
    LinkedList.model_validate({"head": {"value": "a", "next": {"value": "b", "next": {"value": "c"}}}, "size": 3}),
]


@pytest.mark.parametrize("value", RECURSIVE_VALUES, ids=lambda v: type(v).__name__)
def test_recursive_model_values_are_admitted(value):
    strict = strict_verdict(type(value).model_json_schema()).strict.schema
    assert Draft202012Validator(strict).is_valid(value.model_dump(mode="json"))


def test_null_inside_optional_model_with_defaults_is_removed():
    strict = strict_verdict(OptionalWithDefaults.model_json_schema()).strict
    reply = {
        "settings": {"retries": None, "label": "y", "weights": None},
        "backup": {"retries": 1, "label": None, "weights": [1.0]},
    }
    out = OptionalWithDefaults.model_validate(strict.restore(reply))
    assert out.settings.retries == 3 and out.settings.weights == [0.5] and out.backup.label == "x"
    assert (
        OptionalWithDefaults.model_validate(
            strict.restore({"settings": None, "backup": {"retries": None, "label": None, "weights": None}})
        ).settings
        is None
    )


def test_discriminated_union_is_anyof_with_the_discriminator_first():
    schema = strict_verdict(Pets.model_json_schema()).strict.schema
    pet = schema["properties"]["pet"]
    assert "oneOf" not in pet and "discriminator" not in pet and len(pet["anyOf"]) == 2
    for name in ("Cat", "Dog"):
        assert next(iter(schema["$defs"][name]["properties"])) == "kind"
        assert schema["$defs"][name]["required"][0] == "kind"


def test_dict_field_is_never_sent_as_an_empty_object():
    """The issue's bug: dict[str, int] became {properties: {}, additionalProperties: false}."""
    verdict = strict_verdict(Counts.model_json_schema())
    assert not verdict.ok and verdict.problems == (
        "Counts.counts: a dict with free-form keys (e.g. dict[str, ...]) cannot be expressed: "
        "strict mode needs a fixed set of keys",
    )


@pytest.mark.parametrize(
    ("schema", "fragment"),
    [
        (
            {"anyOf": [{"type": "object", "properties": {}, "required": [], "additionalProperties": False}]},
            "root must be an object",
        ),
        (
            {"type": "object", "properties": {"a": {"type": "string"}}, "required": ["a"]},
            "additionalProperties must be false",
        ),
        (
            {"type": "object", "properties": {"a": {"type": "string"}}, "required": [], "additionalProperties": False},
            "every property must be required (missing: a)",
        ),
        (
            {"type": "object", "properties": {}, "required": [], "additionalProperties": {"type": "integer"}},
            "additionalProperties must be false",
        ),
        ({"type": "object", "additionalProperties": False}, "an object needs properties"),
        (
            {
                "type": "object",
                "properties": {"a": {"type": "string", "default": "x"}},
                "required": ["a"],
                "additionalProperties": False,
            },
            "'default' is not supported",
        ),
        (
            {
                "type": "object",
                "properties": {"a": {"oneOf": [{"type": "string"}, {"type": "integer"}]}},
                "required": ["a"],
                "additionalProperties": False,
            },
            "'oneOf' is not supported",
        ),
        (
            {
                "type": "object",
                "properties": {"a": {"type": "array", "prefixItems": [{"type": "string"}]}},
                "required": ["a"],
                "additionalProperties": False,
            },
            "'prefixItems' is not supported",
        ),
        (
            {
                "type": "object",
                "properties": {"a": {"type": "string", "format": "uri"}},
                "required": ["a"],
                "additionalProperties": False,
            },
            "format 'uri'",
        ),
        ({"type": "object", "properties": {"a": {}}, "required": ["a"], "additionalProperties": False}, "no type"),
        (
            {
                "type": "object",
                "properties": {"a": {"type": "array"}},
                "required": ["a"],
                "additionalProperties": False,
            },
            "needs an items schema",
        ),
        (
            {
                "type": "object",
                "properties": {"a": {"$ref": "#/$defs/X", "description": "d"}},
                "required": ["a"],
                "additionalProperties": False,
                "$defs": {"X": {"type": "string"}},
            },
            "$ref with sibling keywords",
        ),
        (
            {
                "type": "object",
                "properties": {"a": {"$ref": "#/$defs/Missing"}},
                "required": ["a"],
                "additionalProperties": False,
            },
            "does not name an entry",
        ),
        (
            {
                "type": "object",
                "properties": {
                    "a": {
                        "anyOf": [
                            {
                                "type": "object",
                                "properties": {"n": {"type": "string"}, "x": {"type": "integer"}},
                                "required": ["n", "x"],
                                "additionalProperties": False,
                            },
                            {
                                "type": "object",
                                "properties": {"n": {"type": "string"}, "y": {"type": "integer"}},
                                "required": ["n", "y"],
                                "additionalProperties": False,
                            },
                        ]
                    }
                },
                "required": ["a"],
                "additionalProperties": False,
            },
            "identical first key",
        ),
        (
            {
                "type": "object",
                "properties": {"a": {"type": "string", "enum": [f"v{i}" for i in range(1001)]}},
                "required": ["a"],
                "additionalProperties": False,
            },
            "1001 enum values",
        ),
        (
            {
                "type": "object",
                "properties": {f"p{i}": {"type": "integer"} for i in range(5001)},
                "required": [f"p{i}" for i in range(5001)],
                "additionalProperties": False,
            },
            "5001 object properties",
        ),
    ],
)
def test_checker_reports_each_documented_rule(schema, fragment):
    assert any(fragment in v for v in strict_mode_violations(schema)), strict_mode_violations(schema)


def test_undiscriminated_union_with_a_shared_first_field_gets_distinct_first_fields():
    from pydantic import BaseModel

    class A(BaseModel):
        name: str
        x: int

    class B(BaseModel):
        name: str
        y: int

    class U(BaseModel):
        item: A | B

    strict = strict_verdict(U.model_json_schema()).strict
    assert strict is not None and strict_mode_violations(strict.schema) == []
    assert [next(iter(strict.schema["$defs"][n]["properties"])) for n in ("A", "B")] == ["x", "y"]

    class C(BaseModel):
        name: str

    class D(BaseModel):
        name: str

    class V(BaseModel):
        item: C | D

    verdict = strict_verdict(V.model_json_schema())
    assert not verdict.ok and "V.item: union members share their first field" in verdict.problems[0]
