"""Item 5 of issue #13: an input_model that differs from the previous output is a warning when
the data can still be validated into it at run time, an error only when it cannot; strictness
is configurable (Chain(strict_input_models=True), chainette inspect --strict)."""

from __future__ import annotations

import json
import warnings

import pytest
from pydantic import BaseModel
from typer.testing import CliRunner

from chainette import Chain, FakeEngine, Step, apply
from chainette.core.input_models import fits, resolve_input
from chainette.errors import ChainValidationError

ENGINES = {"fake": FakeEngine()}


class Prompt(BaseModel):
    prompt: str


class Response(BaseModel):
    response: str


class Grade(BaseModel):
    score: float


class Loose(BaseModel):
    response: str
    extra: int = 0


class Listy(BaseModel):
    response: list[str]


def _step(id, input_model, output_model, prompt="x"):
    return Step(id, input_model=input_model, output_model=output_model, engine_name="fake", user_prompt=prompt)


def test_validatable_mismatch_is_a_warning_and_runs():
    chain = Chain("c", steps=[_step("a", Prompt, Response, "{{ prompt }}"), _step("b", Loose, Grade, "{{ response }}")])
    assert chain.problems(engines=ENGINES) == []
    (w,) = chain.warnings(engines=ENGINES)
    assert w.where == "b" and w.severity == "warning" and "validated into Loose at run time" in w.message
    result = chain.run([{"prompt": "p"}], engines=ENGINES, cache=False)
    assert not result.errors and result.outputs["b"]


def test_mismatch_fed_by_an_earlier_value_is_a_warning_and_uses_it():
    # the original's eval-loop example: the judge declares the chain input's model
    judge = _step("grade", Prompt, Grade, "{{ prompt }} / {{ predict.response }}")
    chain = Chain("c", steps=[_step("predict", Prompt, Response, "{{ prompt }}"), judge])
    (w,) = chain.warnings(engines=ENGINES)
    assert "latest earlier value that is a Prompt: 'chain_input'" in w.message
    seen = []
    engine = FakeEngine(
        "fake",
        handler=lambda req: (
            seen.append(req.messages[-1]["content"])
            or ({"response": "r"} if req.step_id == "predict" else {"score": 5})
        ),
    )
    result = chain.run([{"prompt": "2+2"}], engines={"fake": engine}, cache=False)
    assert not result.errors and "2+2 / r" in seen[-1]


def test_mismatch_that_cannot_work_is_an_error():
    chain = Chain("c", steps=[_step("a", Prompt, Response), _step("b", Grade, Grade)])
    with pytest.raises(
        ChainValidationError, match="b: expects input Grade but receives Response from 'a', which lacks required field"
    ):
        chain.validate(engines=ENGINES)
    kinds = Chain("c", steps=[_step("a", Prompt, Response), _step("b", Listy, Grade)])
    (p,) = kinds.problems(engines=ENGINES)
    assert "another kind" in p.message


def test_strict_input_models_makes_every_mismatch_an_error():
    chain = Chain("c", steps=[_step("a", Prompt, Response), _step("b", Loose, Grade)], strict_input_models=True)
    (p,) = chain.problems(engines=ENGINES)
    assert p.where == "b" and "strict input models" in p.message and chain.warnings(engines=ENGINES) == []


def test_apply_inputs_follow_the_same_rule():
    def grade(p: Prompt) -> list[Grade]:
        return [Grade(score=len(p.prompt))]

    chain = Chain("c", steps=[_step("a", Prompt, Response, "{{ prompt }}"), apply(grade)])
    assert chain.problems(engines=ENGINES) == [] and len(chain.warnings(engines=ENGINES)) == 1
    result = chain.run([{"prompt": "abc"}], engines=ENGINES, cache=False)
    assert result.values("grade") == [Grade(score=3)]


def test_fits_and_resolve_input_are_pure_helpers():
    assert fits(Loose, Response) == (True, "")
    assert fits(Response, Loose)[0] is True  # extra has a default
    assert fits(Response, Prompt) == (False, "lacks required field(s): prompt")
    history = {"chain_input": Prompt(prompt="p"), "a": Response(response="r")}
    assert resolve_input(Response(response="r"), history, Prompt) == Prompt(prompt="p")
    assert resolve_input({"response": "r"}, {}, Response) == Response(response="r")


def test_inspect_prints_warnings_and_strict_fails(tmp_path, monkeypatch):
    from chainette.cli import app

    monkeypatch.syspath_prepend(str(tmp_path))
    (tmp_path / "ichain.py").write_text(
        "from pydantic import BaseModel\n"
        "from chainette import Chain, Step, register_engine\n"
        "register_engine('fake', backend='fake')\n"
        "class Prompt(BaseModel):\n    prompt: str\n"
        "class Response(BaseModel):\n    response: str\n"
        "chain = Chain('c', steps=[Step('a', input_model=Prompt, output_model=Response, engine_name='fake',"
        " user_prompt='{{ prompt }}'), Step('b', input_model=Prompt, output_model=Response, engine_name='fake',"
        " user_prompt='{{ prompt }}')])\n"
    )
    target = f"{tmp_path / 'ichain.py'}:chain"
    r = CliRunner().invoke(app, ["inspect", target])
    assert r.exit_code == 0, r.output
    assert "1 warning(s)" in r.output and "b" in r.output and "no problems found" in r.output
    r = CliRunner().invoke(app, ["inspect", target, "--json"])
    report = json.loads(r.output)
    assert report["ok"] and report["warnings"][0]["where"] == "b"
    r = CliRunner().invoke(app, ["inspect", target, "--strict"])
    assert r.exit_code == 1 and "strict input models" in r.output
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        r = CliRunner().invoke(app, ["inspect", str(tmp_path / "ichain.py"), "chain"])  # the original's form
    assert r.exit_code == 0 and "deprecated" in r.output, r.output
