"""examples/batch_mode runs in batch mode through ``chainette run`` against the mock Batch API,
and ``chainette batches`` lists (and refreshes) its batches."""

from __future__ import annotations

import json
from pathlib import Path

from typer.testing import CliRunner

from chainette.cli import app
from chainette.engine.registry import unregister_engine
from chainette.io.batch_journal import load_batches
from chainette.io.stream_writer import read_records

from .mock_batch_api import KEY, MockBatchAPI

EXAMPLE = Path(__file__).resolve().parents[2] / "examples" / "batch_mode"


def _engines_file(tmp_path: Path, url: str) -> Path:
    """The example's engines file, pointed at the mock and with test-speed polling."""
    text = (EXAMPLE / "engines.batch.yml").read_text()
    assert "mode: batch" in text
    p = tmp_path / "engines.yml"
    p.write_text(f"""engines:
  - name: default
    backend: openai
    model: gpt-4o-mini
    endpoint: {url}
    api_key_env: BATCH_EXAMPLE_KEY
    mode: batch
    max_in_flight: 100
    batch: {{linger_s: 0.05, poll_initial_s: 0.02, poll_max_s: 0.1}}
""")
    return p


def test_the_example_runs_in_batch_mode_and_lists_its_batches(tmp_path, monkeypatch):
    monkeypatch.setenv("BATCH_EXAMPLE_KEY", KEY)
    runner = CliRunner()
    out = tmp_path / "run"
    try:
        with MockBatchAPI() as api:
            engines = _engines_file(tmp_path, api.url)
            res = runner.invoke(
                app,
                [
                    "run",
                    f"{EXAMPLE / 'chain.py'}:chain",
                    "-i",
                    str(EXAMPLE / "inputs.jsonl"),
                    "-o",
                    str(out),
                    "--engines",
                    str(engines),
                    "--no-cache",
                    "--quiet",
                ],
            )
            assert res.exit_code == 0, res.output
            rows = sum(1 for line in (EXAMPLE / "inputs.jsonl").read_text().splitlines() if line.strip())
            flat = list(read_records(out / "flattened"))
            assert len(flat) == rows and all(r["triage.category"] == "billing" for r in flat)
            assert len(api.creations) == 2  # triage, then both branches in one file
            journal = load_batches(out)
            assert [r.state for r in journal.records()] == ["completed", "completed"]

            listed = runner.invoke(app, ["batches", str(out)])
            assert listed.exit_code == 0, listed.output
            assert "default-0001" in listed.output and "completed" in listed.output
            as_json = runner.invoke(app, ["batches", str(out), "--json"])
            data = json.loads(as_json.output)
            assert [b["batch_id"] for b in data["batches"]] == [c["batch_id"] for c in api.creations]
            assert all(b["request_counts"]["completed"] == b["requests"] for b in data["batches"])
            refreshed = runner.invoke(app, ["batches", str(out), "--refresh", "--engines", str(engines)])
            assert refreshed.exit_code == 0, refreshed.output  # nothing live: nothing to ask
    finally:
        unregister_engine("default")


def test_batches_of_a_run_without_batch_mode(tmp_path):
    res = CliRunner().invoke(app, ["batches", str(tmp_path)])
    assert res.exit_code == 1 and "not the run directory of a run in batch mode" in res.output


def test_runner_batch_puts_an_online_engine_in_batch_mode(tmp_path, monkeypatch):
    monkeypatch.setenv("BATCH_EXAMPLE_KEY", KEY)
    out = tmp_path / "run"
    try:
        with MockBatchAPI() as api:
            engines = tmp_path / "engines.yml"
            engines.write_text(_engines_file(tmp_path, api.url).read_text().replace("    mode: batch\n", ""))
            res = CliRunner().invoke(
                app,
                [
                    "run",
                    f"{EXAMPLE / 'chain.py'}:chain",
                    "-i",
                    str(EXAMPLE / "inputs.jsonl"),
                    "-o",
                    str(out),
                    "--engines",
                    str(engines),
                    "--no-cache",
                    "--quiet",
                    "--runner",
                    "batch",
                ],
            )
            assert res.exit_code == 0, res.output
            assert len(api.creations) == 2 and api.chat_requests == []
            assert len(list(read_records(out / "flattened"))) == 6
    finally:
        unregister_engine("default")
