"""Every command and flag through typer's CliRunner (in process, FakeEngine)."""

from __future__ import annotations

import json

import pytest
from typer.testing import CliRunner

from chainette.cli import app

runner = CliRunner()

COMMANDS = ["engines", "inspect", "inspect-dag", "run", "run-yaml", "warmup", "kill"]


def invoke(*args: str):
    return runner.invoke(app, [str(a) for a in args], catch_exceptions=False)


def jsonl(path):
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]


# -- help ----------------------------------------------------------------------------------
def test_top_level_help_lists_every_command():
    result = invoke("--help")
    assert result.exit_code == 0
    for cmd in COMMANDS:
        assert cmd in result.output


@pytest.mark.parametrize("cmd", COMMANDS)
def test_every_command_help_shows_an_example(cmd):
    result = invoke(cmd, "--help")
    assert result.exit_code == 0
    assert "Example" in result.output
    assert f"chainette {cmd}" in result.output


# -- engines -------------------------------------------------------------------------------
def test_engines_lists_registered_engines_without_secrets(project, monkeypatch):
    project.write(
        "eng.yml",
        """
        engines:
          - {name: fk, backend: fake, model: fake-model}
          - {name: gpt, backend: openai, model: gpt-4.1-mini, api_key: sk-verysecretvalue123}
    """,
    )
    result = invoke("engines", "--engines", "eng.yml")
    assert result.exit_code == 0, result.output
    assert "fk" in result.output and "gpt" in result.output and "openai" in result.output
    assert "https://api.openai.com/v1" in result.output
    assert "sk-verysecretvalue123" not in result.output
    data = json.loads(invoke("engines", "-f", "eng.yml", "--json").output)
    names = {e["name"]: e for e in data["engines"]}
    assert names["gpt"]["api_key"] == "***"
    assert data["running"] == []
    assert "sk-verysecretvalue123" not in json.dumps(data)


def test_engines_bad_file_is_one_clear_error(project):
    project.write("broken.yml", "engines:\n  - {name: x, backend: nope}\n")
    result = invoke("engines", "--engines", "broken.yml")
    assert result.exit_code == 1
    assert "Error:" in result.output and "backend" in result.output
    assert "Traceback" not in result.output
    result = invoke("engines", "--engines", "missing.yml")
    assert result.exit_code == 1 and "not found" in result.output


# -- inspect ---------------------------------------------------------------------------------
def test_inspect_ok(project):
    result = invoke("inspect", "chain_def.py:chain", "--engines", "engines.yml")
    assert result.exit_code == 0, result.output
    assert "no problems" in result.output and "Question" in result.output


def test_inspect_module_attr_form(project):
    result = invoke("inspect", "chain_def:chain", "-f", "engines.yml", "--json")
    assert result.exit_code == 0, result.output
    report = json.loads(result.output)
    assert report["ok"] and report["input_model"] == "Question" and report["engines"] == {"fk": "registered"}


def test_inspect_reports_problems_with_exit_1(project):
    result = invoke("inspect", "chain_def.py:chain")  # engine fk not registered
    assert result.exit_code == 1
    assert "fk" in result.output and "problem" in result.output
    report = json.loads(invoke("inspect", "chain_def.py:chain", "--json").output)
    assert not report["ok"] and report["problems"]


def test_inspect_yaml_with_symbols(project):
    result = invoke("inspect", "chain.yml", "--symbols", "models")
    assert result.exit_code == 0, result.output


@pytest.mark.parametrize(
    "target, needle",
    [
        ("chain_def.py:nope", "has no attribute 'nope'"),
        ("chain_def.py:not_a_chain", "not a Chain"),
        ("missing.py:chain", "not found"),
        ("no_such_module:chain", "no module named"),
        ("chain_def.py", "FILE.py:ATTR"),
    ],
)
def test_bad_targets_are_one_line_errors(project, target, needle):
    result = invoke("inspect", target)
    assert result.exit_code == 1
    assert needle in result.output
    assert "Traceback" not in result.output


def test_debug_shows_the_traceback(project):
    from chainette.errors import ConfigError

    result = runner.invoke(app, ["inspect", "chain_def.py:nope", "--debug"])
    assert isinstance(result.exception, ConfigError)


def test_error_in_user_module_is_reported(project):
    project.write("boom.py", "raise RuntimeError('kaboom')\n")
    result = invoke("inspect", "boom.py:chain")
    assert result.exit_code == 1 and "kaboom" in result.output and "Traceback" not in result.output


# -- inspect-dag -------------------------------------------------------------------------------
def test_inspect_dag_tree_icons_and_engines(project):
    result = invoke("inspect-dag", "chain_def.py:chain", "-f", "engines.yml")
    assert result.exit_code == 0, result.output
    for needle in ("🤖 extract", "📄 keep", "🔀", "🪢 fr", "fk · fake", "join as 'fr'"):
        assert needle in result.output


def test_inspect_dag_no_icons_is_ascii(project):
    result = invoke("inspect-dag", "chain_def.py:chain", "-f", "engines.yml", "--no-icons")
    assert result.exit_code == 0
    assert "[step] extract" in result.output and "+-- " in result.output
    assert result.output.isascii()


def test_inspect_dag_max_branches_and_formats(project):
    result = invoke("inspect-dag", "chain_def.py:chain", "--max-branches", "1", "--format", "ascii", "--no-icons")
    assert "... 2 more branches" in result.output
    result = invoke("inspect-dag", "chain_def.py:chain", "--format", "mermaid")
    assert result.output.startswith("flowchart TD")
    assert "-. fr .->" in result.output
    result = invoke("inspect-dag", "chain.yml", "--symbols", "models", "--format", "ascii")
    assert "🤖 translate_fr" in result.output
    assert invoke("inspect-dag", "chain_def.py:chain", "--max-branches", "0").exit_code == 2


# -- run -----------------------------------------------------------------------------------------
def test_run_writes_run_directory(project):
    out = project.path("out")
    result = invoke("run", "chain_def.py:chain", "-i", "inputs.jsonl", "-o", out, "--engines", "engines.yml")
    assert result.exit_code == 0, result.output
    assert (out / "graph.json").exists() and (out / "metadata.json").exists()
    assert len(jsonl(out / "flattened" / "000.jsonl")) == 5
    assert "rows in" in result.output and str(out) in result.output


@pytest.mark.parametrize("flag", ["--output-dir", "--output_dir", "-o"])
def test_run_output_dir_spellings(project, flag):
    out = project.path("o" + flag.strip("-"))
    result = invoke("run", "chain_def:chain", "--input", "inputs.jsonl", flag, out, "-f", "engines.yml", "-q")
    assert result.exit_code == 0, result.output
    assert (out / "graph.json").exists()


def test_run_quiet_prints_only_summary(project):
    result = invoke("run", "chain_def.py:chain", "-i", "inputs.jsonl", "-o", "out", "-f", "engines.yml", "--quiet")
    assert result.exit_code == 0
    assert "🤖" not in result.output and "chainette 0.1.0" not in result.output
    assert "rows in" in result.output and "agg" in result.output


def test_run_json_logs_one_event_per_line(project):
    result = invoke("run", "chain_def.py:chain", "-i", "inputs.jsonl", "-o", "out", "-f", "engines.yml", "--json-logs")
    assert result.exit_code == 0, result.output
    events = [json.loads(line) for line in result.stdout.splitlines()]
    kinds = [e["event"] for e in events]
    assert kinds[0] == "RunStarted" and "BatchFinished" in kinds and "RunFinished" in kinds
    assert kinds[-1] == "Summary" and events[-1]["rows_in"] == 5 and events[-1]["errors"] == 0
    assert "\x1b[" not in result.stdout


def test_run_rich_display_no_icons_and_max_branches(project):
    result = invoke(
        "run",
        "chain_def.py:chain",
        "-i",
        "inputs.jsonl",
        "-o",
        "out",
        "-f",
        "engines.yml",
        "--no-icons",
        "--max-branches",
        "1",
    )
    assert result.exit_code == 0, result.output
    assert "[step] extract" in result.output and "2 more branches" in result.output
    assert "items/s" in result.output and "ETA" in result.output


@pytest.mark.parametrize("fmt_name, writer", [("jsonl", "stream"), ("parquet", "stream"), ("jsonl", "datasets")])
def test_run_format_writer_batch_and_rolling(project, fmt_name, writer):
    project.inputs(7)
    out = project.path("out")
    result = invoke(
        "run",
        "chain_def.py:chain",
        "-i",
        "inputs.jsonl",
        "-o",
        out,
        "-f",
        "engines.yml",
        "-q",
        "--format",
        fmt_name,
        "--writer",
        writer,
        "--batch-size",
        "2",
        "--max-lines-per-file",
        "3",
        "--no-cache",
    )
    assert result.exit_code == 0, result.output
    files = sorted(p.name for p in (out / "extract").iterdir())
    assert files[:3] == [f"000.{fmt_name}", f"001.{fmt_name}", f"002.{fmt_name}"]
    if writer == "datasets":
        assert (out / "datasets").is_dir()


def test_run_existing_dir_needs_force_or_resume(project):
    args = ["run", "chain_def.py:chain", "-i", "inputs.jsonl", "-o", "out", "-f", "engines.yml", "-q"]
    assert invoke(*args).exit_code == 0
    again = invoke(*args)
    assert again.exit_code == 1 and "--resume" in again.output and "--force" in again.output
    assert invoke(*args, "--force").exit_code == 0
    assert invoke(*args, "--resume").exit_code == 0


def test_run_stream_writer_compat_flag(project):
    result = invoke(
        "run", "chain_def.py:chain", "-i", "inputs.jsonl", "-o", "out", "-f", "engines.yml", "-q", "--stream-writer"
    )
    assert result.exit_code == 0


@pytest.mark.parametrize(
    "name, content",
    [
        ("in.json", json.dumps([{"text": "a", "n": 1}, {"text": "b"}])),
        ("in.csv", "text,n\na,1\nb,2\n"),
    ],
)
def test_run_json_and_csv_inputs(project, name, content):
    project.write(name, content)
    result = invoke("run", "chain_def.py:chain", "-i", name, "-o", "out", "-f", "engines.yml", "-q")
    assert result.exit_code == 0, result.output
    assert len(jsonl(project.path("out/flattened/000.jsonl"))) == 2


def test_run_parquet_and_saved_dataset_with_columns(project):
    import pyarrow as pa
    import pyarrow.parquet as pq
    from datasets import Dataset

    table = pa.table({"text": ["a", "b", "c"], "other": [1, 2, 3]})
    pq.write_table(table, project.path("in.parquet"))
    Dataset.from_dict({"text": ["x", "y"], "junk": ["1", "2"]}).save_to_disk(str(project.path("ds")))
    r1 = invoke(
        "run", "chain_def.py:chain", "-i", "in.parquet", "-o", "o1", "-f", "engines.yml", "-q", "--columns", "text"
    )
    assert r1.exit_code == 0, r1.output
    r2 = invoke("run", "chain_def.py:chain", "-i", "ds", "-o", "o2", "-f", "engines.yml", "-q", "--columns", "text")
    assert r2.exit_code == 0, r2.output
    assert len(jsonl(project.path("o2/flattened/000.jsonl"))) == 2
    r3 = invoke("run", "chain_def.py:chain", "-i", "ds", "-o", "o3", "-f", "engines.yml", "-q", "--columns", "nope")
    assert r3.exit_code == 1 and "nope" in r3.output


def test_run_hub_dataset_offline_is_a_clear_message(project):
    result = invoke(
        "run",
        "chain_def.py:chain",
        "-i",
        "someone/some_dataset/train",
        "-o",
        "out",
        "-f",
        "engines.yml",
        "--columns",
        "text",
    )
    assert result.exit_code == 1
    assert "could not load Hugging Face dataset 'someone/some_dataset' split 'train'" in result.output
    assert "offline" in result.output and "Traceback" not in result.output


def test_run_bad_row_fails_with_file_line_field(project):
    project.write("bad.jsonl", '{"text": "ok"}\n{"text": "x", "n": "notanint"}\n')
    result = invoke("run", "chain_def.py:chain", "-i", "bad.jsonl", "-o", "out", "-f", "engines.yml", "-q")
    assert result.exit_code == 1
    assert "bad.jsonl:2 field 'n'" in result.output and "--on-bad-input skip" in result.output


def test_run_skip_bad_rows_lists_them(project):
    project.write("bad.jsonl", '{"text": "ok"}\n{"n": 1}\n{oops\n\n{"text": "fine"}\n')
    result = invoke(
        "run", "chain_def.py:chain", "-i", "bad.jsonl", "-o", "out", "-f", "engines.yml", "-q", "--on-bad-input", "skip"
    )
    assert result.exit_code == 0, result.output
    skipped = jsonl(project.path("out/skipped_inputs.jsonl"))
    assert [(s["line"], s["field"]) for s in skipped] == [(2, "text"), (3, None)]
    assert "malformed JSON" in skipped[1]["error"]
    assert len(jsonl(project.path("out/flattened/000.jsonl"))) == 2
    assert "2 bad input row(s) skipped" in result.output


def test_run_max_error_rate(project):
    project.write("failing.yml", "engines:\n  - {name: fk, backend: fake}\n")
    project.write(
        "failing_chain.py",
        """
from chainette import Chain, Step, register_engine, FakeEngine
from models import Question, Translation

def boom(request):
    raise ValueError("nope")

step = Step("extract", input_model=Question, output_model=Translation, engine_name="fk", max_validation_retries=0)
chain = Chain(name="Failing", steps=[step])
""",
    )
    # an apply that raises for every row gives a 100% error rate
    project.write(
        "apply_chain.py",
        """
from chainette import Chain, apply
from models import Question

def explode(item) -> list[Question]:
    raise RuntimeError("explode")

chain = Chain(name="Explode", steps=[apply(explode, input_model=Question)])
""",
    )
    args = ["run", "apply_chain.py:chain", "-i", "inputs.jsonl", "-f", "engines.yml", "-q"]
    # a run in which every row failed never exits 0 (issue #11), even when --max-error-rate allows it
    all_failed = invoke(*args, "-o", "o1")
    assert all_failed.exit_code == 3 and "every one of the 5 input rows failed" in all_failed.output
    bad = invoke(*args, "-o", "o2", "--max-error-rate", "0.5")
    assert bad.exit_code == 3 and "max-error-rate" in bad.output
    assert invoke(*args, "-o", "o3", "--max-error-rate", "1.0").exit_code == 3


def test_run_unknown_engine_is_a_clear_error(project):
    result = invoke("run", "chain_def.py:chain", "-i", "inputs.jsonl", "-o", "out")
    assert result.exit_code == 1 and "unknown engine 'fk'" in result.output


def test_run_bad_input_paths(project):
    base = ["run", "chain_def.py:chain", "-o", "out", "-f", "engines.yml"]
    r = invoke(*base, "-i", "nothing.jsonl")
    assert r.exit_code == 1 and "file not found" in r.output
    project.write("data.txt", "x")
    r = invoke(*base, "-i", "data.txt")
    assert r.exit_code == 1 and "unsupported input format" in r.output
    project.path("emptydir").mkdir()
    r = invoke(*base, "-i", "emptydir")
    assert r.exit_code == 1 and "not a saved Hugging Face dataset" in r.output


def test_run_debug_flag_reraises(project):
    from chainette.errors import InputError

    result = runner.invoke(
        app, ["run", "chain_def.py:chain", "-i", "nothing.jsonl", "-o", "out", "-f", "engines.yml", "--debug"]
    )
    assert isinstance(result.exception, InputError)


# -- run-yaml -------------------------------------------------------------------------------------
def test_run_yaml(project):
    result = invoke("run-yaml", "chain.yml", "-i", "inputs.jsonl", "-o", "out", "--symbols", "models", "-q")
    assert result.exit_code == 0, result.output
    flat = jsonl(project.path("out/flattened/000.jsonl"))
    assert len(flat) == 5


def test_run_yaml_errors_name_the_yaml_path(project):
    project.write(
        "bad.yml",
        """
        name: bad
        steps:
          - type: step
            id: a
            output_model: models:Translation
          - type: branch
            name: b
            steps:
              - {type: step, id: c, output_model: models:Summary, engine: 7}
    """,
    )
    result = invoke("run-yaml", "bad.yml", "-i", "inputs.jsonl", "-o", "out")
    assert result.exit_code == 1
    assert "steps[1].steps[0].engine: expected string" in result.output
    project.write(
        "unknown.yml",
        """
        name: u
        steps:
          - {type: step, id: a, output_model: models:Translation, engine: ghost}
    """,
    )
    result = invoke("run-yaml", "unknown.yml", "-i", "inputs.jsonl", "-o", "out")
    assert result.exit_code == 1 and "steps[0].engine: unknown engine 'ghost'" in result.output
    project.write("syntax.yml", "name: [unclosed\n")
    result = invoke("run-yaml", "syntax.yml", "-i", "inputs.jsonl", "-o", "out")
    assert result.exit_code == 1 and "invalid YAML" in result.output


def test_run_yaml_all_common_flags(project):
    result = invoke(
        "run-yaml",
        "chain.yml",
        "-i",
        "inputs.jsonl",
        "--output_dir",
        "out",
        "-s",
        "models",
        "--engines",
        "engines.yml",
        "--columns",
        "text",
        "--batch-size",
        "2",
        "--max-lines-per-file",
        "2",
        "--format",
        "parquet",
        "--writer",
        "stream",
        "--on-bad-input",
        "skip",
        "--no-cache",
        "--json-logs",
        "--no-icons",
        "--max-branches",
        "1",
        "--max-error-rate",
        "0.5",
    )
    assert result.exit_code == 0, result.output
    assert (project.path("out/extract/000.parquet")).exists()
    again = invoke(
        "run-yaml",
        "chain.yml",
        "-i",
        "inputs.jsonl",
        "-o",
        "out",
        "-s",
        "models",
        "--resume",
        "--columns",
        "text",
        "--format",
        "parquet",
        "-q",
    )
    assert again.exit_code == 0, again.output
    forced = invoke("run-yaml", "chain.yml", "-i", "inputs.jsonl", "-o", "out", "-s", "models", "--force", "-q")
    assert forced.exit_code == 0, forced.output


# -- warmup / kill (in process; real servers are tested by subprocess) ---------------------------
def test_warmup_fake_engine_needs_no_server(project):
    result = invoke("warmup", "-f", "engines.yml", "-e", "fk")
    assert result.exit_code == 0, result.output
    assert "needs no server" in result.output


def test_warmup_all_lazy_and_nothing_given(project):
    result = invoke("warmup", "-f", "engines.yml")
    assert result.exit_code == 0 and "lazy" in result.output
    result = invoke("warmup")
    assert result.exit_code == 1 and "nothing to warm up" in result.output
    result = invoke("warmup", "-e", "ghost")
    assert result.exit_code == 1 and "unknown engine 'ghost'" in result.output


def test_warmup_from_chain(project):
    result = invoke("warmup", "chain_def.py:chain", "-f", "engines.yml")
    assert result.exit_code == 0 and "fk" in result.output


def test_kill_without_servers(project):
    result = invoke("kill", "--all")
    assert result.exit_code == 0 and "Stopped 0 server(s)" in result.output
    result = invoke("kill", "ghost")
    assert result.exit_code == 1 and "no running server recorded for ghost" in result.output
    result = invoke("kill")
    assert result.exit_code == 1 and "--all" in result.output


def test_run_resume_retry_errors_reruns_only_failed_rows(project, monkeypatch):
    project.write(
        "flaky.py",
        """
import os
from pydantic import BaseModel
from chainette import Chain, apply

class Row(BaseModel):
    text: str

def check(row: Row) -> list[Row]:
    if row.text in os.environ.get("FLAKY_ROWS", "").split(","):
        raise RuntimeError("flaky failure")
    return [row]

chain = Chain(name="Flaky", steps=[apply(check)])
""",
    )
    project.write("rows.jsonl", "".join(f'{{"text": "r{i}"}}\n' for i in range(5)))
    args = ["run", "flaky.py:chain", "-i", "rows.jsonl", "-o", "out", "-q"]
    monkeypatch.setenv("FLAKY_ROWS", "r1,r3")
    assert invoke(*args).exit_code == 0
    assert len(jsonl(project.path("out/errors/000.jsonl"))) == 2
    bad = invoke(*args, "--retry-errors")
    assert bad.exit_code == 1 and "--resume" in bad.output
    monkeypatch.setenv("FLAKY_ROWS", "")
    result = invoke(*args, "--resume", "--retry-errors")
    assert result.exit_code == 0, result.output
    assert jsonl(project.path("out/errors/000.jsonl")) == []
    assert sorted(r["row_id"] for r in jsonl(project.path("out/check/000.jsonl"))) == ["0", "1", "2", "3", "4"]
