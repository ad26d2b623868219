"""Issue #18 through the CLI: `chainette cache info|clear`, `--allow-import`, unsafe templates and
bad ids reported by `inspect` / `run-yaml` with the place they are in."""

from __future__ import annotations

import json
import os
import stat

from typer.testing import CliRunner

from chainette.cli import app

runner = CliRunner()


def invoke(*args: str):
    return runner.invoke(app, [str(a) for a in args], catch_exceptions=False)


def test_cache_info_clear_and_privacy(project):
    cache_dir = os.environ["CHAINETTE_CACHE_DIR"]
    info = json.loads(invoke("cache", "info", "--json").output)
    assert info == {"path": os.path.join(cache_dir, "items.sqlite"), "exists": False, "size_bytes": 0, "entries": 0}
    assert (
        invoke("run", "chain_def.py:chain", "-i", "inputs.jsonl", "-o", "out", "-f", "engines.yml", "-q").exit_code == 0
    )
    assert stat.S_IMODE(os.stat(cache_dir).st_mode) == 0o700
    assert all(stat.S_IMODE(os.stat(os.path.join(cache_dir, f)).st_mode) == 0o600 for f in os.listdir(cache_dir))
    shown = invoke("cache", "info")
    assert shown.exit_code == 0 and "items.sqlite" in shown.output and "entries:" in shown.output
    cleared = invoke("cache", "clear")
    assert cleared.exit_code == 0 and "Cleared the item cache" in cleared.output
    assert not os.path.exists(os.path.join(cache_dir, "items.sqlite"))
    again = invoke("cache", "clear")
    assert again.exit_code == 0 and "already empty" in again.output


def test_cache_without_subcommand_shows_help():
    result = invoke("cache")
    assert "info" in result.output and "clear" in result.output


def test_run_yaml_refuses_an_import_until_allowed(project):
    project.write(
        "evil.yml",
        """
        name: evil
        engines: [{name: fk, backend: fake}]
        steps:
          - {type: step, id: s, engine: fk, input_model: models:Question, output_model: models:Question,
             user_prompt: "{{text}}"}
          - {type: apply, id: a, function: json:loads}
    """,
    )
    result = invoke("run-yaml", "evil.yml", "-i", "inputs.jsonl", "-o", "out")
    assert result.exit_code == 1
    out = " ".join(result.output.split())
    assert "evil.yml: steps[1].function: import of module 'json' refused" in out
    assert "--allow-import json" in out
    allowed = invoke("inspect", "evil.yml", "--allow-import", "json")
    assert allowed.exit_code == 0, allowed.output


def test_inspect_reports_the_template_payload_with_the_step(project):
    project.write(
        "payload.yml",
        """
        name: payload
        engines: [{name: fk, backend: fake}]
        steps:
          - {type: step, id: leak, engine: fk, input_model: models:Question, output_model: models:Question,
             user_prompt: "{{ text.__class__.__mro__[1].__subclasses__() }}"}
    """,
    )
    result = invoke("inspect", "payload.yml")
    assert result.exit_code == 1
    assert "leak: user_prompt is unsafe: it uses .__class__, .__mro__, .__subclasses__" in " ".join(
        result.output.split()
    )
    run = invoke("run-yaml", "payload.yml", "-i", "inputs.jsonl", "-o", "out")
    assert run.exit_code == 1 and "leak" in run.output and not (project.path("out") / "leak").exists()


def test_run_yaml_reports_the_evil_id_with_its_yaml_path(project):
    project.write(
        "ids.yml",
        """
        name: ids
        steps:
          - {type: step, id: ../evil, output_model: models:Question}
    """,
    )
    result = invoke("run-yaml", "ids.yml", "-i", "inputs.jsonl", "-o", "out")
    assert result.exit_code == 1
    assert "steps[0].id: '../evil' is not a valid name" in " ".join(result.output.split())
    assert not (project.root / "evil").exists()
