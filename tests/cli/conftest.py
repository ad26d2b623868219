"""Fixtures for CLI tests: a small project (models, chain, engines.yml, inputs) in tmp_path."""

from __future__ import annotations

import json
import os
import sys
import textwrap
from pathlib import Path

import pytest

STANDINS = Path(__file__).resolve().parents[1] / "standins"
REPO = Path(__file__).resolve().parents[2]

MODELS = """
from pydantic import BaseModel


class Question(BaseModel):
    text: str
    n: int = 0


class Translation(BaseModel):
    translated: str


class Summary(BaseModel):
    summary: str


def keep(item) -> list[Translation]:
    return [item]
"""

CHAIN = """
from chainette import Branch, Chain, Step, apply
from models import Question, Summary, Translation, keep

extract = Step("extract", input_model=Question, output_model=Translation, engine_name="fk",
               user_prompt="{{text}}")
fr = Step("translate_fr", output_model=Translation, engine_name="fk", user_prompt="{{extract.translated}}")
es = Step("translate_es", output_model=Translation, engine_name="fk", user_prompt="{{extract.translated}}")
audit = Step("audit_step", output_model=Summary, engine_name="fk", user_prompt="{{extract.translated}}")
agg = Step("agg", output_model=Summary, engine_name="fk", user_prompt="{{fr.translated}} {{es.translated}}")

chain = Chain(name="Translate", steps=[
    extract,
    apply(keep, id="keep"),
    [Branch("fr", [fr]).join("fr"), Branch("es", [es]).join("es"), Branch("audit", [audit])],
    agg,
])
not_a_chain = 42
"""

ENGINES = """
engines:
  - name: fk
    backend: fake
    model: fake-model
"""

YAML_CHAIN = """
name: YAML Translate
input_model: models:Question
engines:
  - {name: fk, backend: fake, model: fake-model}
steps:
  - type: step
    id: extract
    engine: fk
    output_model: models:Translation
    user_prompt: "{{text}}"
    sampling: {temperature: 0}
  - type: apply
    id: keep
    function: models:keep
  - - type: join
      name: fr
      alias: fr
      steps:
        - {type: step, id: translate_fr, engine: fk, output_model: Translation, user_prompt: "{{extract.translated}}"}
    - type: branch
      name: audit
      steps:
        - {type: step, id: audit_step, engine: fk, output_model: Summary, user_prompt: "{{extract.translated}}"}
  - type: step
    id: agg
    engine: fk
    output_model: Summary
    user_prompt: "{{fr.translated}}"
"""


class Project:
    def __init__(self, root: Path) -> None:
        self.root = root

    def path(self, name: str) -> Path:
        return self.root / name

    def write(self, name: str, text: str) -> Path:
        p = self.root / name
        p.parent.mkdir(parents=True, exist_ok=True)
        p.write_text(textwrap.dedent(text))
        return p

    def inputs(self, n: int = 5, name: str = "inputs.jsonl") -> Path:
        p = self.root / name
        p.write_text("".join(json.dumps({"text": f"hello {i}", "n": i}) + "\n" for i in range(n)))
        return p


@pytest.fixture(autouse=True)
def _isolate(monkeypatch):
    """Restore the engine registry, sys.path and user modules after each test; no Hub access."""
    from chainette.engine import registry

    saved = dict(registry._REGISTRY)
    path = list(sys.path)
    modules = set(sys.modules)
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setenv("COLUMNS", "120")
    yield
    registry._REGISTRY.clear()
    registry._REGISTRY.update(saved)
    sys.path[:] = path
    for name in set(sys.modules) - modules:
        if name in ("models", "chain_def") or name.startswith("_chainette_user_"):
            sys.modules.pop(name, None)


@pytest.fixture
def project(tmp_path, monkeypatch) -> Project:
    proj = Project(tmp_path)
    proj.write("models.py", MODELS)
    proj.write("chain_def.py", CHAIN)
    proj.write("engines.yml", ENGINES)
    proj.write("chain.yml", YAML_CHAIN)
    proj.inputs()
    monkeypatch.chdir(tmp_path)
    return proj


def subprocess_env(extra: dict | None = None) -> dict:
    env = dict(os.environ)
    env["PYTHONPATH"] = str(REPO) + os.pathsep + env.get("PYTHONPATH", "")
    env["HF_HUB_OFFLINE"] = "1"
    env["COLUMNS"] = "120"
    env.update(extra or {})
    return env
