"""Every example in ``examples/`` runs end to end on the embedded local model, and its run
directory is checked: exit code, metadata, per-step record counts, records that validate
against each node's output model, flattened ``<step>.<field>`` columns, and every input row
accounted for (a final row, an error record, or an expected filter).

One local llama.cpp server is started with ``chainette warmup`` (in a private state
directory) and shared by all runs, which go concurrently as ``chainette run`` subprocesses
on a few rows each. Adding a folder under ``examples/`` without listing it here fails
``test_every_example_is_listed``.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

from chainette.core.apply import ApplyNode
from chainette.core.branch import Branch, JoinBranch, Parallel
from chainette.core.step import Step
from chainette.io.stream_writer import read_records
from chainette.utils.validate import iter_nodes

pytestmark = pytest.mark.integration

ROOT = Path(__file__).resolve().parents[2]
EXAMPLES = ROOT / "examples"
NOT_EXAMPLES = {"engines"}  # shared folders, not chains
RUN_TIMEOUT = 300


@dataclass
class Example:
    name: str
    rows: int | list[int] = 2  # the first N rows, or these row indices of inputs.jsonl
    filtered: set[str] = field(default_factory=set)  # input row ids an apply filters out (no error)
    counts: dict[str, int] = field(default_factory=dict)  # exact records of deterministic (Python) steps
    # a 135M model sometimes breaks the schema, or runs into max_tokens before closing the JSON
    allowed_errors: set[str] = field(default_factory=lambda: {"OutputValidationError", "TruncatedCompletionError"})
    need_final_rows: bool = True

    @property
    def folder(self) -> Path:
        return EXAMPLES / self.name

    @property
    def target(self) -> str:
        yml = self.folder / "chain.yml"
        return str(yml) if yml.exists() else f"{self.folder / 'chain.py'}:chain"

    @property
    def command(self) -> str:
        return "run-yaml" if self.target.endswith(".yml") else "run"


STREAMING_URGENT = {"7", "27", "47"}

CASES = [
    Example("sentiment", rows=3),
    Example("financial_metrics", rows=2),
    Example("translate_summarise", rows=2),
    Example("branch_math", rows=3, counts={"add": 3, "multiply": 3, "audit": 3}),
    Example(
        "apply_python", rows=4, filtered={"1"}, counts={"clean": 4, "keep_long": 3, "split_sentences": 7, "stats": 7}
    ),
    Example(
        "streaming_large",
        rows=60,
        filtered={str(i) for i in range(60)} - STREAMING_URGENT,
        counts={"parse": 60, "keep_urgent": 3},
    ),
    Example("rag", rows=2, counts={"retrieve": 2}),
    Example("chatbot", rows=2),
    Example("clinical_qa", rows=2, counts={"screen": 2}),
    Example("eval_loop", rows=3),
    Example("tool_use", rows=2, allowed_errors={"OutputValidationError", "TruncatedCompletionError", "ValueError"}),
    Example("flagship", rows=[0, 3], filtered={"1"}, counts={"split_issues": 2}),
    Example("batch_mode", rows=2),  # online here; tests/batch/test_example.py runs it in batch mode
]
BY_NAME = {c.name: c for c in CASES}


# -- running ------------------------------------------------------------------------------------
def _chainette(*args: str, env: dict[str, str], timeout: float = RUN_TIMEOUT) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "chainette", *args], cwd=ROOT, env=env, capture_output=True, text=True, timeout=timeout
    )


def _small_input(ex: Example, dest: Path) -> Path:
    lines = (ex.folder / "inputs.jsonl").read_text(encoding="utf-8").splitlines()
    picked = lines[: ex.rows] if isinstance(ex.rows, int) else [lines[i] for i in ex.rows]
    dest.write_text("\n".join(picked) + "\n", encoding="utf-8")
    return dest


@dataclass
class Outcome:
    example: Example
    out_dir: Path
    n_rows: int
    proc: subprocess.CompletedProcess | None
    seconds: float


@pytest.fixture(scope="module")
def runs(tmp_path_factory) -> dict[str, Outcome]:
    """Warm one local server, run every example concurrently, stop the server."""
    base = tmp_path_factory.mktemp("examples")
    env = {
        **os.environ,
        "CHAINETTE_CACHE_DIR": str(base / "cache"),
        "CHAINETTE_STATE_DIR": str(base / "state"),
        "PYTHONHASHSEED": "0",
        "NO_COLOR": "1",
        "COLUMNS": "160",
    }
    warm = _chainette("warmup", "-e", "default", env=env, timeout=180)
    assert warm.returncode == 0, f"warmup failed:\n{warm.stdout}\n{warm.stderr}"

    def one(ex: Example) -> Outcome:
        inp = _small_input(ex, base / f"{ex.name}.jsonl")
        n = len(inp.read_text().splitlines())
        out = base / "runs" / ex.name
        started = time.monotonic()
        proc = _chainette(ex.command, ex.target, "-i", str(inp), "-o", str(out), "--force", "--quiet", env=env)
        return Outcome(ex, out, n, proc, time.monotonic() - started)

    try:
        with ThreadPoolExecutor(max_workers=4) as pool:
            # the slowest chains first, so the pool drains evenly
            order = sorted(CASES, key=lambda c: c.name not in ("flagship", "financial_metrics", "rag"))
            outcomes = {o.example.name: o for o in pool.map(one, order)}
    finally:
        _chainette("kill", "--all", env=env, timeout=60)
    return outcomes


# -- checks -------------------------------------------------------------------------------------
def _load_chain(ex: Example) -> Any:
    from chainette.cli_support.loading import load_chain

    return load_chain(ex.target)


def _records(folder: Path) -> list[dict[str, Any]]:
    return list(read_records(folder)) if folder.is_dir() else []


def _belongs(row_id: str, input_id: str) -> bool:
    return row_id == input_id or row_id.startswith(input_id + ".")


def test_every_example_is_listed():
    folders = {p.name for p in EXAMPLES.iterdir() if p.is_dir() and not p.name.startswith((".", "_"))}
    assert folders - NOT_EXAMPLES == set(BY_NAME), "list new examples in CASES (or remove stale ones)"
    assert len(CASES) >= 12
    for ex in CASES:
        assert (ex.folder / "README.md").is_file(), f"{ex.name}: README.md missing"
        assert (ex.folder / "inputs.jsonl").is_file(), f"{ex.name}: inputs.jsonl missing"
        assert (ex.folder / "chain.py").is_file() or (ex.folder / "chain.yml").is_file()


def test_engines_files_register_default():
    from chainette.engine.registry import load_engines_file

    backends = {}
    for path in sorted((EXAMPLES / "engines").glob("engines.*.yml")):
        text = path.read_text()
        assert "sk-" not in text.replace("sk-...", ""), f"{path.name}: no literal keys in examples"
        (cfg,) = load_engines_file(path, register=False)
        assert cfg.name == "default" and cfg.api_key is None
        backends[path.name] = cfg.backend
    assert backends == {
        "engines.ollama.yml": "ollama_api",
        "engines.openai.yml": "openai",
        "engines.vllm.yml": "vllm_api",
    }
    assert (
        load_engines_file(EXAMPLES / "engines" / "engines.openai.yml", register=False)[0].api_key_env
        == "OPENAI_API_KEY"
    )


@pytest.mark.parametrize("name", [c.name for c in CASES])
def test_example_runs(runs: dict[str, Outcome], name: str):
    o = runs[name]
    ex = o.example
    proc = o.proc
    assert proc is not None and proc.returncode == 0, (
        f"{name}: exit {proc.returncode if proc else '?'}\n{proc.stdout[-3000:] if proc else ''}\n"
        f"{proc.stderr[-3000:] if proc else ''}"
    )
    out = o.out_dir
    chain = _load_chain(ex)

    # run directory files
    graph = json.loads((out / "graph.json").read_text())
    meta = json.loads((out / "metadata.json").read_text())
    assert meta["status"] == "completed" and meta["rows_in"] == o.n_rows
    assert meta["chain_name"] == chain.name
    assert {n["id"] for n in graph["nodes"]} >= {n.id for n in iter_nodes(chain.items)}
    assert all(e.get("api_key") in (None, "***") for e in meta["engines"])

    # errors: only the expected kinds, every one naming a row and a step
    errors = _records(out / "errors")
    for err in errors:
        assert set(err) >= {"row_id", "step_id", "error_type", "message", "attempts"}
        assert err["error_type"] in ex.allowed_errors, f"{name}: unexpected error {err}"
    assert sum(s["errors"] for s in meta["steps"].values()) == len(errors) == meta["errors"]

    # per-step records: counts match metadata, ids unique, every record fits the node's model
    nodes = {n.id: n for n in iter_nodes(chain.items) if isinstance(n, (Step, ApplyNode))}
    for sid, node in nodes.items():
        recs = _records(out / sid)
        assert meta["steps"][sid]["outputs"] == len(recs), f"{name}/{sid}: metadata count != records"
        ids = [r["row_id"] for r in recs]
        assert len(ids) == len(set(ids)), f"{name}/{sid}: duplicate row ids"
        if sid in ex.counts:
            assert len(recs) == ex.counts[sid], f"{name}/{sid}: {len(recs)} records, expected {ex.counts[sid]}"
        if node.output_model is not None:
            for r in recs:
                data = {k: v for k, v in r.items() if k not in ("row_id", "reasoning_content")}
                node.output_model.model_validate(data)

    # every input row is accounted for: a final row, an error record, or an expected filter
    flat = _records(out / "flattened")
    for i in range(o.n_rows):
        rid = str(i)
        in_flat = any(_belongs(r["row_id"], rid) for r in flat)
        in_err = any(_belongs(e["row_id"], rid) for e in errors)
        if rid in ex.filtered:
            assert not in_flat and not in_err, f"{name}: row {rid} should have been filtered out"
        else:
            assert in_flat or in_err, f"{name}: row {rid} vanished (no output, no error record)"
    if ex.need_final_rows and len(ex.filtered) < o.n_rows:
        assert flat, f"{name}: no row made it through the chain ({len(errors)} errors)"

    # flattened columns: chain_input.<field>, <node>.<field>, <alias>.<field> (or bare alias when filtered)
    input_fields = list(chain.input_model.model_fields) if chain.input_model else []
    for r in flat:
        for f in input_fields:
            assert f"chain_input.{f}" in r, f"{name}: flattened lacks chain_input.{f}"
        for item in chain.items:
            if isinstance(item, (Step, ApplyNode)) and item.output_model is not None:
                for f in item.output_model.model_fields:
                    assert f"{item.id}.{f}" in r, f"{name}: flattened lacks {item.id}.{f}"
            branches = item.branches if isinstance(item, Parallel) else [item] if isinstance(item, Branch) else []
            for b in branches:
                if isinstance(b, JoinBranch) and b.output_model is not None:
                    assert b.alias in r or all(f"{b.alias}.{f}" in r for f in b.output_model.model_fields), (
                        f"{name}: flattened lacks the join alias {b.alias}"
                    )


def test_eval_loop_report(runs: dict[str, Outcome]):
    o = runs["eval_loop"]
    proc = subprocess.run(
        [sys.executable, str(EXAMPLES / "eval_loop" / "report.py"), str(o.out_dir)],
        capture_output=True,
        text=True,
        timeout=60,
        cwd=ROOT,
    )
    assert proc.returncode == 0, proc.stderr
    report = json.loads(proc.stdout)
    assert report["rows"] + report["errors"] >= 1
    assert report["correct_first_try"] <= report["correct_after_retry"] <= report["rows"]


def test_streaming_generator_is_deterministic(tmp_path):
    script = EXAMPLES / "streaming_large" / "generate_inputs.py"
    out = tmp_path / "t.jsonl.gz"
    subprocess.run([sys.executable, str(script), "--rows", "2000", "-o", str(out)], check=True, timeout=60)
    import gzip

    rows = [json.loads(line) for line in gzip.open(out, "rt")]
    assert len(rows) == 2000 and sum("urgent" in r["text"].lower() for r in rows) == 4
    small = subprocess.run(
        [sys.executable, str(script), "--rows", "60", "--urgent-every", "20"],
        capture_output=True,
        text=True,
        check=True,
        timeout=60,
    ).stdout
    assert small == (EXAMPLES / "streaming_large" / "inputs.jsonl").read_text(), (
        "inputs.jsonl must be what generate_inputs.py --rows 60 --urgent-every 20 writes"
    )
