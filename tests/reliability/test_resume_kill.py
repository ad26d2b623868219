"""Resume after SIGKILL / SIGINT: the run continues exactly, with no duplicate and no lost row,
and no request is sent again for a row that was committed before the interruption.

The chain (two LLM steps) runs as ``chainette run`` in a subprocess against the mock server
(20 ms per request, 16 in flight, ``--batch-size 16``, 300 rows: under a second of requests uninterrupted).
"""

from __future__ import annotations

import importlib.util
import random
import signal
import time
from pathlib import Path

import pytest

from .conftest import (
    MockServer,
    Workspace,
    assert_accounted,
    committed_rows,
    journal,
    kill_group,
    messages_hash,
    run_records,
    wait_for,
    write_chain,
    write_engines,
    write_inputs,
)

ROWS = 300
SEED = 20240601


def _load_chain_module(path: Path):
    spec = importlib.util.spec_from_file_location(f"rel_chain_{id(path)}", path)
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)  # type: ignore[union-attr]
    return mod


def _row_of_hash(chain_path: Path, flattened: list[dict]) -> dict[str, str]:
    """hash of every request the chain sends -> row id (label and summary requests)."""
    from chainette.core.context import build_context

    mod = _load_chain_module(chain_path)
    out: dict[str, str] = {}
    for rec in flattened:
        rid = rec["row_id"]
        item = mod.Item(text=rec["chain_input.text"])
        label = mod.Label(label=rec["label.label"], score=rec["label.score"])
        out[messages_hash(mod.label.render_messages(build_context(rid, item, {"chain_input": item})))] = rid
        ctx = build_context(rid, label, {"chain_input": item, "label": label})
        out[messages_hash(mod.summary.render_messages(ctx))] = rid
    return out


@pytest.fixture(scope="module")
def resume_ws(tmp_path_factory):
    """One mock server and one uninterrupted reference run, shared by the tests of this module."""
    base = tmp_path_factory.mktemp("resume")
    srv = MockServer(base / "requests.log", ("--latency-ms", "20")).start()
    try:
        ws = Workspace(
            dir=base,
            chain=write_chain(base / "rel_chain.py"),
            inputs=write_inputs(base / "inputs.jsonl", ROWS),
            engines=write_engines(base / "engines.yml", srv.port, max_in_flight=16),
            server=srv,
            env={"CHAINETTE_STATE_DIR": str(base / "state"), "CHAINETTE_CACHE_DIR": str(base / "cache")},
        )
        ref = base / "reference"
        done = ws.run(ref, "--batch-size", "16", "--no-cache", "--quiet", timeout=60)
        assert done.returncode == 0, done.stderr
        ws.reference = run_records(ref)
        ws.row_of = _row_of_hash(ws.chain, ws.reference["flattened"])
        assert len(ws.row_of) == 2 * ROWS
        yield ws
    finally:
        srv.stop()


def _kill_points() -> list[int]:
    rng = random.Random(SEED)
    return [0, rng.randint(1, 60), rng.randint(61, 140), rng.randint(141, 220), rng.randint(221, 285)]


def _interrupt(ws, out: Path, after_rows: int, sig: int, extra: tuple[str, ...] = ()) -> tuple[set[int], int, object]:
    """Start a run, send ``sig`` once ``after_rows`` rows are committed; return (committed, log mark, proc)."""
    proc = ws.popen(out, "--batch-size", "16", "--quiet", *extra)
    try:
        if after_rows == 0:
            ok = wait_for(lambda: (out / "graph.json").exists(), 30)
        else:
            ok = wait_for(lambda: len(committed_rows(journal(out))) >= after_rows or proc.poll() is not None, 30)
        assert ok, "the run made no progress"
        if sig == signal.SIGKILL:
            kill_group(proc, signal.SIGKILL)
        else:
            proc.send_signal(sig)  # to the CLI process only, like Ctrl+C in a terminal sends to the group
        proc.wait(timeout=30)
    finally:
        if proc.poll() is None:
            kill_group(proc)
            proc.wait(timeout=10)
    committed = committed_rows(journal(out))
    time.sleep(0.3)  # let requests already in flight at the server finish and be logged
    return committed, len(ws.server.requests()), proc


def _check_resumed(ws, out: Path, committed: set[int], mark: int) -> None:
    recs = assert_accounted(out, ROWS)
    for folder in ("label", "summary", "flattened"):
        assert recs[folder] == ws.reference[folder], f"{folder}/ differs from the uninterrupted run"
    assert "errors" not in recs
    after = ws.server.requests()[mark:]
    rows_after = [ws.row_of.get(r["hash"]) for r in after]
    assert None not in rows_after, "a request the chain should not send"
    again = {int(r) for r in rows_after} & committed
    assert not again, f"rows committed before the interruption were requested again: {sorted(again)[:10]}"
    assert len(after) <= 2 * (ROWS - len(committed))


def test_sigkill_at_random_points_then_resume_is_exact(resume_ws, tmp_path):
    ws = resume_ws
    sizes = []
    for k, point in enumerate(_kill_points()):
        out = tmp_path / f"killed-{k}"
        ws.env["CHAINETTE_CACHE_DIR"] = str(tmp_path / f"cache-{k}")  # cache on, fresh per scenario
        committed, mark, _ = _interrupt(ws, out, point, signal.SIGKILL)
        assert len(committed) >= point
        sizes.append(len(committed))
        res = ws.run(out, "--batch-size", "16", "--quiet", "--resume", timeout=60)
        assert res.returncode == 0, f"kill point {point}: {res.stderr}"
        _check_resumed(ws, out, committed, mark)
    print("committed rows at each SIGKILL:", sizes)
    assert len(set(sizes)) >= 4 and sum(0 < n < ROWS for n in sizes) >= 3, sizes


def test_sigkill_twice_then_resume(resume_ws, tmp_path):
    ws = resume_ws
    out = tmp_path / "twice"
    committed1, _, _ = _interrupt(ws, out, 40, signal.SIGKILL, ("--no-cache",))
    committed2, mark, _ = _interrupt(ws, out, len(committed1) + 60, signal.SIGKILL, ("--no-cache", "--resume"))
    assert committed1 <= committed2
    res = ws.run(out, "--batch-size", "16", "--quiet", "--resume", "--no-cache", timeout=60)
    assert res.returncode == 0, res.stderr
    _check_resumed(ws, out, committed2, mark)


def test_sigint_is_graceful_and_resumable(resume_ws, tmp_path):
    ws = resume_ws
    out = tmp_path / "sigint"
    committed_before, _, proc = _interrupt(ws, out, 50, signal.SIGINT, ("--no-cache",))
    stdout, stderr = proc.stdout.read().decode(), proc.stderr.read().decode()
    assert proc.returncode == 130, (stdout, stderr)
    assert "--resume" in stdout + stderr, "no resume hint printed"
    j = journal(out)
    assert j is not None and not j["completed"]
    import json

    assert json.loads((out / "metadata.json").read_text())["status"] == "interrupted"
    assert len(committed_before) < ROWS
    # what finished before the signal was flushed: every committed row is on disk, whole
    recs = run_records(out)
    assert {int(r["row_id"]) for r in recs["flattened"]} == committed_before
    mark = len(ws.server.requests())
    res = ws.run(out, "--batch-size", "16", "--quiet", "--resume", "--no-cache", timeout=60)
    assert res.returncode == 0, res.stderr
    _check_resumed(ws, out, committed_before, mark)


def test_sigint_with_json_logs_emits_a_resume_event(resume_ws, tmp_path):
    import json

    out = tmp_path / "sigint-json"
    proc = resume_ws.popen(out, "--batch-size", "16", "--json-logs", "--no-cache")
    try:
        assert wait_for(lambda: len(committed_rows(journal(out))) >= 30 or proc.poll() is not None, 30)
        proc.send_signal(signal.SIGINT)
        proc.wait(timeout=30)
    finally:
        if proc.poll() is None:
            kill_group(proc)
            proc.wait(timeout=10)
    events = [json.loads(line) for line in proc.stdout.read().decode().splitlines() if line.startswith("{")]
    assert proc.returncode == 130
    hint = [e for e in events if e.get("event") == "Interrupted"]
    assert hint and "--resume" in hint[0]["hint"]
