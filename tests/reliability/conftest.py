"""Shared fixtures for the reliability suite: the fault-injecting mock server, a two-step
chain module written to disk, an engines.yml pointing at the mock, and a bounded CLI runner.

Every subprocess here runs in its own process group and is stopped by that group (never by
name); every wait has a deadline, so a hang fails the test instead of stalling CI.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

from tests.mock_openai_server import MockServer, messages_hash  # noqa: F401  (used by the tests here)

from .input_cli import input_project  # noqa: F401  (fixture of test_broken_inputs and test_input_fuzz)

REPO = Path(__file__).resolve().parents[2]
SECRET = "sk-test-CHAINETTE-SECRET-123"

CHAIN_PY = """
from pydantic import BaseModel
from chainette import Chain, SamplingParams, Step


class Item(BaseModel):
    text: str


class Label(BaseModel):
    label: str
    score: float


class Summary(BaseModel):
    summary: str


label = Step("label", input_model=Item, output_model=Label, engine_name="mock",
             sampling=SamplingParams(temperature=0.0, max_tokens=96),
             user_prompt=LABEL_PROMPT)
summary = Step("summary", input_model=Label, output_model=Summary, engine_name="mock",
               sampling=SamplingParams(temperature=0.0, max_tokens=96),
               user_prompt=SUMMARY_PROMPT)
chain = Chain(name="reliability", steps=[label, summary])
single = Chain(name="reliability-one", steps=[label])
"""
LABEL_PROMPT = "Classify: {{ text }}"
SUMMARY_PROMPT = "Summarise {{ chain_input.text }} labelled {{ label.label }}"


def write_chain(path: Path, *, label_prompt: str = LABEL_PROMPT, summary_prompt: str = SUMMARY_PROMPT) -> Path:
    body = CHAIN_PY.replace("LABEL_PROMPT", repr(label_prompt)).replace("SUMMARY_PROMPT", repr(summary_prompt))
    path.write_text(body)
    return path


def write_inputs(path: Path, n: int, *, start: int = 0) -> Path:
    with open(path, "w") as f:
        for i in range(start, start + n):
            f.write(json.dumps({"text": f"item number {i}"}) + "\n")
    return path


def write_engines(path: Path, port: int, **extra: Any) -> Path:
    fields = {
        "name": "mock",
        "backend": "vllm_api",
        "endpoint": f"http://127.0.0.1:{port}/v1",
        "model": "mock",
        "max_retries": 3,
        "timeout": 2,
        **extra,
    }
    lines = ["engines:"]
    first = True
    for k, v in fields.items():
        lines.append(("  - " if first else "    ") + f"{k}: {json.dumps(v)}")
        first = False
    path.write_text("\n".join(lines) + "\n")
    return path


@pytest.fixture
def mock_server(tmp_path: Path) -> Iterator[Any]:
    """Factory: ``mock_server("--latency-ms", "20")`` starts one; all are stopped at teardown."""
    servers: list[MockServer] = []

    def start(*flags: str) -> MockServer:
        srv = MockServer(tmp_path / f"requests-{len(servers)}.log", tuple(flags)).start()
        servers.append(srv)
        return srv

    yield start
    for srv in servers:
        srv.stop()


# -- running the CLI ---------------------------------------------------------------------------
@dataclass
class Workspace:
    dir: Path
    chain: Path
    inputs: Path
    engines: Path
    server: MockServer
    env: dict[str, str] = field(default_factory=dict)

    def argv(self, out: Path | str, *extra: str, target: str = "chain") -> list[str]:
        return [
            sys.executable,
            "-m",
            "chainette",
            "run",
            f"{self.chain}:{target}",
            "-i",
            str(self.inputs),
            "-o",
            str(out),
            "--engines",
            str(self.engines),
            *extra,
        ]

    def run(
        self, out: Path | str, *extra: str, timeout: float = 60, target: str = "chain"
    ) -> subprocess.CompletedProcess:
        return run_bounded(self.argv(out, *extra, target=target), cwd=self.dir, timeout=timeout, env=self.env)

    def popen(self, out: Path | str, *extra: str, target: str = "chain") -> subprocess.Popen:
        return subprocess.Popen(
            self.argv(out, *extra, target=target),
            cwd=self.dir,
            env=child_env(self.env),
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            start_new_session=True,
        )


def child_env(extra: dict[str, str] | None = None) -> dict[str, str]:
    env = dict(os.environ)
    env.update({"COLUMNS": "120", "PYTHONUNBUFFERED": "1", "NO_COLOR": "1"})
    env.update(extra or {})
    return env


def run_bounded(
    argv: list[str], *, cwd: Path, timeout: float, env: dict[str, str] | None = None
) -> subprocess.CompletedProcess:
    """Run ``argv`` in its own process group; on timeout kill the group and fail the test."""
    proc = subprocess.Popen(
        argv,
        cwd=cwd,
        env=child_env(env),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        start_new_session=True,
    )
    try:
        out, err = proc.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        kill_group(proc)
        out, err = proc.communicate(timeout=10)
        pytest.fail(f"command hung for more than {timeout}s: {argv}\nstdout:\n{out[-3000:]}\nstderr:\n{err[-3000:]}")
    return subprocess.CompletedProcess(argv, proc.returncode, out, err)


def kill_group(proc: subprocess.Popen, sig: int = signal.SIGKILL) -> None:
    try:
        os.killpg(proc.pid, sig)
    except ProcessLookupError:
        pass


@pytest.fixture
def workspace(tmp_path: Path, mock_server) -> Any:
    """Factory: a chain module, N input rows and an engines.yml for a fresh mock server."""

    def make(*flags: str, rows: int = 40, **engine_fields: Any) -> Workspace:
        srv = mock_server(*flags)
        return Workspace(
            dir=tmp_path,
            chain=write_chain(tmp_path / "rel_chain.py"),
            inputs=write_inputs(tmp_path / "inputs.jsonl", rows),
            engines=write_engines(tmp_path / "engines.yml", srv.port, **engine_fields),
            server=srv,
        )

    return make


# -- reading a run directory -------------------------------------------------------------------
def read_jsonl_strict(path: Path) -> list[dict[str, Any]]:
    """Every line of ``path`` must be a whole JSON object ending in a newline."""
    data = path.read_bytes()
    if data:
        assert data.endswith(b"\n"), f"{path}: last line is half-written"
    out = []
    for k, line in enumerate(data.splitlines(), 1):
        try:
            out.append(json.loads(line))
        except ValueError as exc:  # pragma: no cover - the failure message is the point
            raise AssertionError(f"{path}:{k}: not JSON ({exc}): {line[:200]!r}") from None
    return out


def run_records(out: Path) -> dict[str, list[dict[str, Any]]]:
    """Records per folder (step ids, flattened, errors), each parsed strictly and sorted by row id."""
    folders: dict[str, list[dict[str, Any]]] = {}
    for folder in sorted(p for p in out.iterdir() if p.is_dir() and not p.name.startswith(".")):
        files = sorted(folder.glob("[0-9]*.jsonl"))
        if not files:
            continue
        recs = [r for f in files for r in read_jsonl_strict(f)]
        folders[folder.name] = sorted(recs, key=lambda r: (_row_key(r["row_id"]), r.get("step_id", "")))
    return folders


def _row_key(row_id: str) -> tuple[int, ...]:
    return tuple(int(p) for p in str(row_id).split("."))


def assert_accounted(out: Path, rows: int, steps: tuple[str, ...] = ("label", "summary")) -> dict[str, list[dict]]:
    """Each input row has exactly one output or error record per step it reaches; no duplicates."""
    recs = run_records(out)
    errors = recs.get("errors", [])
    err_keys = [(e["row_id"], e["step_id"]) for e in errors]
    assert len(err_keys) == len(set(err_keys)), "duplicate error records"
    failed_before: set[str] = set()
    for step in steps:
        ids = [r["row_id"] for r in recs.get(step, [])]
        assert len(ids) == len(set(ids)), f"duplicate records in {step}/"
        failed_here = {rid for rid, sid in err_keys if sid == step}
        assert not (set(ids) & failed_here), f"{step}: a row has both an output and an error"
        reached = {str(i) for i in range(rows)} - failed_before
        assert set(ids) | failed_here == reached, f"{step}: rows missing or extra"
        failed_before |= failed_here
    flat_ids = [r["row_id"] for r in recs.get("flattened", [])]
    assert len(flat_ids) == len(set(flat_ids)), "duplicate flattened records"
    assert set(flat_ids) == {str(i) for i in range(rows)} - failed_before
    return recs


def journal(out: Path) -> dict[str, Any] | None:
    p = out / ".chainette" / "progress.json"
    try:
        return json.loads(p.read_text())
    except (OSError, ValueError):
        return None


def committed_rows(j: dict[str, Any] | None) -> set[int]:
    if not j:
        return set()
    done = j["done"]
    return set(range(done["watermark"])) | set(done["above"])


def wait_for(pred, timeout: float, interval: float = 0.02) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if pred():
            return True
        time.sleep(interval)
    return False
