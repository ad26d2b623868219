"""Item 1 of issue #13: YAML chains in the spec's symbol form (steps named by Python symbols),
beside the typed form; errors name the symbol and its YAML path; a round trip between forms."""

from __future__ import annotations

import json
import textwrap

import pytest
from pydantic import BaseModel
from typer.testing import CliRunner

from chainette import Branch, Chain, SamplingParams, Step
from chainette.errors import ConfigError
from chainette.yaml_loader import chain_to_dict, dump_chain, load_chain

MODULE = """
from pydantic import BaseModel
from chainette import Branch, Step, apply, register_engine

register_engine("fake", backend="fake")


class Question(BaseModel):
    text: str


class Answer(BaseModel):
    answer: str


class Text(BaseModel):
    text: str


def keep(item: Answer) -> list[Answer]:
    return [item]


qa_step = Step("qa", input_model=Question, output_model=Answer, engine_name="fake",
               user_prompt="Q: {{ text }}", sampling={"temperature": 0})
filter_node = apply(keep, id="filter_node", output_model=Answer)
fr_branch = Branch("fr", [Step("translate_fr", output_model=Text, engine_name="fake",
                               user_prompt="FR {{ qa.answer }}")]).join("fr")
es_branch = Branch("es", [Step("translate_es", output_model=Text, engine_name="fake",
                               user_prompt="ES {{ qa.answer }}")]).join("es")
summary = Step("summary", output_model=Text, engine_name="fake", user_prompt="{{ fr.text }} / {{ es.text }}")
"""

SPEC_FORM = """
name: Demo Chain
batch_size: 2
steps:
  - qa_step             # symbol in provided *globals*
  - filter_node
  - - fr_branch         # list -> parallel
    - es_branch
  - summary
"""


@pytest.fixture
def project(tmp_path, monkeypatch):
    (tmp_path / "specsyms.py").write_text(MODULE)
    (tmp_path / "chain.yml").write_text(SPEC_FORM)
    (tmp_path / "in.jsonl").write_text("".join(json.dumps({"text": f"q{i}"}) + "\n" for i in range(4)))
    monkeypatch.syspath_prepend(str(tmp_path))
    monkeypatch.chdir(tmp_path)
    import importlib
    import sys

    monkeypatch.delitem(sys.modules, "specsyms", raising=False)  # each test has its own module file
    return tmp_path, importlib.import_module("specsyms")


def test_spec_symbol_form_with_globals(project):
    path, mod = project
    chain = load_chain(path / "chain.yml", symbols=vars(mod))
    assert chain.name == "Demo Chain" and chain.batch_size == 2
    assert [getattr(s, "id", None) or [b.id for b in s] for s in chain.steps] == [
        "qa",
        "filter_node",
        ["fr", "es"],
        "summary",
    ]
    assert chain.problems() == []
    result = chain.run([{"text": "hello"}], cache=False)
    assert result.flattened[0]["summary.text"]


def test_symbols_also_resolve_models_in_the_typed_form(project):
    path, mod = project
    (path / "typed.yml").write_text(
        textwrap.dedent("""
        name: typed
        steps:
          - type: step
            id: qa
            engine: fake
            input_model: Question
            output_model: Answer
            user_prompt: "{{ text }}"
          - - fr_branch
            - type: branch
              name: audit
              steps: [{type: step, id: audit_step, engine: fake, output_model: Text, user_prompt: "{{ qa.answer }}"}]
          - summary_only_fr
    """)
    )
    ns = {
        **vars(mod),
        "summary_only_fr": Step("s2", output_model=mod.Text, engine_name="fake", user_prompt="{{ fr.text }}"),
    }
    chain = load_chain(path / "typed.yml", symbols=ns)
    assert chain.problems() == []
    assert chain.run([{"text": "x"}], cache=False).flattened[0]["s2.text"]


def test_a_wrong_symbol_names_it_and_its_yaml_path(project):
    path, mod = project
    (path / "bad.yml").write_text("name: bad\nsteps:\n  - qa_step\n  - - fr_branch\n    - es_brnach\n")
    with pytest.raises(ConfigError) as exc:
        load_chain(path / "bad.yml", symbols=vars(mod))
    msg = str(exc.value)
    assert "bad.yml: steps[1][1]" in msg and "'es_brnach'" in msg and "did you mean 'es_branch'" in msg
    (path / "bad2.yml").write_text("name: bad\nsteps:\n  - Question\n")
    with pytest.raises(ConfigError, match=r"steps\[0\]: 'Question' is a class, expected a Step"):
        load_chain(path / "bad2.yml", symbols=vars(mod))
    (path / "bad3.yml").write_text("name: bad\nsteps:\n  - nope\n")
    with pytest.raises(ConfigError, match=r"steps\[0\]: .*'nope' not found in the --symbols module"):
        load_chain(path / "bad3.yml", symbols=["specsyms"])


def test_module_attr_step_references(project):
    path, mod = project
    (path / "refs.yml").write_text("name: refs\nsteps:\n  - specsyms:qa_step\n  - specsyms:filter_node\n")
    chain = load_chain(path / "refs.yml")
    assert [s.id for s in chain.steps] == ["qa", "filter_node"]


def test_run_yaml_with_symbols_module_runs_the_spec_form(project):
    from chainette.cli import app

    path, _ = project
    out = path / "out"
    r = CliRunner().invoke(
        app,
        [
            "run-yaml",
            str(path / "chain.yml"),
            "--symbols",
            "specsyms",
            "-i",
            str(path / "in.jsonl"),
            "-o",
            str(out),
            "--quiet",
            "--no-cache",
        ],
    )
    assert r.exit_code == 0, r.output
    flat = [json.loads(line) for line in (out / "flattened" / "000.jsonl").read_text().splitlines()]
    assert len(flat) == 4 and all("summary.text" in f and "fr.text" in f for f in flat)
    bad = path / "bad.yml"
    bad.write_text("name: bad\nsteps:\n  - qa_stepp\n")
    r = CliRunner().invoke(
        app,
        [
            "run-yaml",
            str(bad),
            "--symbols",
            "specsyms",
            "-i",
            str(path / "in.jsonl"),
            "-o",
            str(path / "out2"),
            "--quiet",
        ],
    )
    assert r.exit_code == 1 and "qa_stepp" in r.output and "steps[0]" in r.output


def test_round_trip_between_the_symbol_and_typed_forms(project):
    path, mod = project
    chain = load_chain(path / "chain.yml", symbols=vars(mod))
    typed = dump_chain(chain, path / "typed_dump.yml")  # every node written out, models as module:attr
    assert "type: step" in typed and "specsyms:Answer" in typed and "qa_step" not in typed
    again = load_chain(path / "typed_dump.yml")
    assert again.graph.to_dict() == chain.graph.to_dict()
    assert chain_to_dict(chain, symbols=vars(mod)) == {  # and back: nodes the symbols hold, by name
        "name": "Demo Chain",
        "batch_size": 2,
        "steps": ["qa_step", "filter_node", ["fr_branch", "es_branch"], "summary"],
    }


class A(BaseModel):
    q: str


class B(BaseModel):
    a: str


qa = Step(id="qa", name="qa", input_model=A, output_model=B, engine_name="e", sampling=SamplingParams())
br = Branch(name="br", steps=[Step(id="inner", output_model=B, engine_name="e", sampling=SamplingParams())])


def test_the_original_loader_test_runs(tmp_path):
    file = tmp_path / "chain.yml"
    file.write_text("name: YAML Test\nbatch_size: 1\nsteps:\n  - qa\n  - - br\n")
    ch: Chain = load_chain(file, symbols=globals())
    assert ch.name == "YAML Test"
    assert len(ch.steps) == 2
