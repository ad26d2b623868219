"""A join alias may equal a step id inside its own branch (issue #11 item 8), nothing else."""

from __future__ import annotations

from pydantic import BaseModel

from chainette import Branch, Chain, FakeEngine, Step

ENGINES = {"f": FakeEngine()}


class A(BaseModel):
    text: str


class B(BaseModel):
    label: str


def step(id: str, model=B, prompt="{{ label }}") -> Step:
    return Step(id, input_model=model, output_model=B, engine_name="f", user_prompt=prompt)


def test_alias_equal_to_an_inner_step_id_is_accepted_and_runs():
    chain = Chain(
        "c",
        steps=[
            step("first", A, "{{ text }}"),
            [Branch("fr_branch", [step("fr")]).join("fr")],
            step("last", prompt="{{ fr.label }} / {{ first.label }}"),
        ],
    )
    assert chain.problems(engines=ENGINES) == []
    result = chain.run([{"text": "a"}, {"text": "b"}], engines=ENGINES)
    assert [r.row_id for r in result["fr"]] == ["0", "1"]
    assert {"fr.label", "last.label"} <= set(result.flattened[0])


def test_alias_equal_to_a_step_outside_its_branch_is_still_a_duplicate():
    chain = Chain("c", steps=[step("first", A, "{{ text }}"), [Branch("b", [step("inner")]).join("first")]])
    assert any("duplicate id 'first'" in p.message for p in chain.problems(engines=ENGINES))


def test_same_step_id_in_two_branches_is_still_a_duplicate():
    chain = Chain(
        "c",
        steps=[
            step("first", A, "{{ text }}"),
            [Branch("b1", [step("x")]).join("x"), Branch("b2", [step("x")]).join("y")],
        ],
    )
    assert any("duplicate id 'x'" in p.message for p in chain.problems(engines=ENGINES))
