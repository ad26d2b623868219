"""The CLI side of issue #14: --max-cost / --max-tokens (exit 4, resumable), --dry-run [--sample N]
[--sample-run N], cost in the summary and in --json-logs."""

from __future__ import annotations

import json
import sys

import pytest
from typer.testing import CliRunner

from chainette.cli import app
from chainette.cli_support.errors import EXIT_BUDGET

from ._mock import CHAIN_PY, CountingMock, engines_yaml

runner = CliRunner()


@pytest.fixture(autouse=True)
def _isolate():
    from chainette.engine import registry

    saved = dict(registry._REGISTRY)
    path = list(sys.path)
    modules = set(sys.modules)
    yield
    registry._REGISTRY.clear()
    registry._REGISTRY.update(saved)
    sys.path[:] = path
    for name in set(sys.modules) - modules:
        if name.startswith("_chainette_user_") or name == "budget_chain":
            sys.modules.pop(name, None)


@pytest.fixture
def mock():
    m = CountingMock().start()
    yield m
    m.stop()


@pytest.fixture
def project(tmp_path, mock):
    (tmp_path / "budget_chain.py").write_text(CHAIN_PY)
    (tmp_path / "inputs.jsonl").write_text("".join(json.dumps({"text": f"item number {i}"}) + "\n" for i in range(80)))
    (tmp_path / "engines.yml").write_text(engines_yaml(mock.url, price={"input": 1.0, "output": 4.0}))
    return tmp_path


def run(project, *extra):
    args = [
        "run",
        f"{project / 'budget_chain.py'}:chain",
        "-i",
        str(project / "inputs.jsonl"),
        "-o",
        str(project / "out"),
        "-f",
        str(project / "engines.yml"),
        *map(str, extra),
    ]
    return runner.invoke(app, args, catch_exceptions=False)


def test_max_tokens_exits_4_resumable_and_resume_with_a_higher_cap_finishes(project, mock):
    r = run(project, "--max-tokens", 3000, "--quiet")
    assert r.exit_code == EXIT_BUDGET, r.output
    assert "--max-tokens 3000" in r.output and "--resume" in r.output and "raise the cap" in r.output
    assert mock.tokens <= 3000
    meta = json.loads((project / "out" / "metadata.json").read_text())
    assert meta["stopped_by"] == "max_tokens" and meta["status"] == "interrupted"
    r = run(project, "--max-tokens", 1_000_000, "--resume", "--quiet")
    assert r.exit_code == 0, r.output
    flat = (project / "out" / "flattened" / "000.jsonl").read_text().splitlines()
    assert len(flat) == 80 and mock.chat_requests == 160
    meta = json.loads((project / "out" / "metadata.json").read_text())
    assert meta["status"] == "completed" and meta["cost"]["run_total"]["tokens"] == mock.tokens


def test_max_cost_with_json_logs(project, mock):
    r = run(project, "--max-cost", 0.004, "--json-logs")
    assert r.exit_code == EXIT_BUDGET, r.output
    events = [json.loads(line) for line in r.output.splitlines() if line.startswith("{")]
    kinds = [e["event"] for e in events]
    assert "BudgetReached" in kinds and kinds[-1] == "BudgetStopped"
    spent = (mock.prompt_tokens * 1.0 + mock.completion_tokens * 4.0) / 1e6
    summary = next(e for e in events if e["event"] == "Summary")
    assert summary["stopped_by"] == "max_cost" and summary["total_cost"] == pytest.approx(spent) and spent <= 0.004
    assert summary["cost"]["engines"]["mock"]["tokens"] == mock.tokens
    batches = [e for e in events if e["event"] == "BatchFinished"]
    assert sum(e["cost"] for e in batches) == pytest.approx(spent)
    assert {e["engine"] for e in batches} == {"mock"}


def test_max_cost_without_a_price_is_a_user_error(project, mock):
    (project / "engines.yml").write_text(engines_yaml(mock.url))
    r = run(project, "--max-cost", 1)
    assert r.exit_code == 1 and "price" in r.output and mock.chat_requests == 0


def test_the_summary_shows_cost(project, mock):
    r = run(project, "--quiet")
    assert r.exit_code == 0, r.output
    assert f"tokens: {mock.tokens:,}" in r.output and "cost: $" in r.output


def test_dry_run_prints_prompts_and_a_projection_and_sends_nothing(project, mock):
    (project / "engines.yml").write_text(
        engines_yaml(mock.url, backend="openai", api_key="sk-test-12345678", price={"input": 1.0, "output": 4.0})
    )
    r = run(project, "--dry-run", "--sample", 2)
    assert r.exit_code == 0, r.output
    assert mock.chat_requests == 0 and mock.other_requests == []  # a plain dry run sends no request
    assert "Classify: item number 0" in r.output  # the first sample's prompt, in full
    assert "Dry run" in r.output and "80 input row(s)" in r.output
    assert "estimate" in r.output and "projected:" in r.output and "no completion request was sent" in r.output
    assert not (project / "out").exists()  # nothing written


def test_dry_run_json_and_sample_run(project, mock):
    r = run(project, "--dry-run", "--sample-run", 2, "--json-logs")
    assert r.exit_code == 0, r.output
    lines = [json.loads(line) for line in r.output.splitlines() if line.startswith("{")]
    assert len(lines) == 1 and lines[0]["event"] == "DryRun"
    report = lines[0]
    assert report["requests_sent"] == mock.chat_requests == 4 and report["total_inputs"] == 80
    assert all("sample run" in s["completion_method"] for s in report["steps"])
    assert report["cost"] == pytest.approx((report["prompt_tokens"] + 4 * report["completion_tokens"]) / 1e6)
