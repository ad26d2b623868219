"""Fault injection against the mock server: for recoverable faults the final outputs are
complete and correct; for unrecoverable ones each affected row has an error record and the
rest complete; no run hangs (every CLI run is bounded) and every JSONL line parses.

Runs ``chainette run`` (two LLM steps) in a subprocess, 24 rows, ``max_retries: 3``.
"""

from __future__ import annotations

import signal
import time

import pytest

from .conftest import (
    MockServer,
    Workspace,
    assert_accounted,
    committed_rows,
    journal,
    kill_group,
    run_records,
    wait_for,
    write_chain,
    write_engines,
    write_inputs,
)

ROWS = 24
# transport and HTTP faults: a retry sends the same request, so outputs equal a clean run's
SAME_REQUEST = ["500", "502", "503", "429", "429-retry-after", "timeout", "reset", "truncated", "bad-body", "empty"]
# bad content: healed by re-asking (a different request), so outputs are valid but may differ.
# Counter mode could fault the same row in lockstep (queued re-asks come round every W requests),
# so these use random faults (seeded) one request at a time.
REASKED = ["schema-invalid"]  # "invalid-json" is cut off at max_tokens: not re-asked (issue #11), see below


@pytest.fixture(scope="module")
def reference(tmp_path_factory):
    base = tmp_path_factory.mktemp("fault-ref")
    srv = MockServer(base / "requests.log").start()
    try:
        ws = Workspace(
            dir=base,
            chain=write_chain(base / "rel_chain.py"),
            inputs=write_inputs(base / "in.jsonl", ROWS),
            engines=write_engines(base / "engines.yml", srv.port),
            server=srv,
            env={"CHAINETTE_STATE_DIR": str(base / "state"), "CHAINETTE_CACHE_DIR": str(base / "cache")},
        )
        res = ws.run(base / "out", "--quiet", "--no-cache")
        assert res.returncode == 0, res.stderr
        yield run_records(base / "out")
    finally:
        srv.stop()


def _run(ws, *extra: str, timeout: float = 90, code: int = 0):
    res = ws.run(ws.dir / "out", "--quiet", "--no-cache", *extra, timeout=timeout)
    assert res.returncode == code, (res.stdout[-2000:], res.stderr[-2000:])
    assert "Traceback" not in res.stderr
    return res


@pytest.mark.parametrize("kind", SAME_REQUEST + REASKED)
def test_recoverable_fault_heals(workspace, reference, kind):
    mode = (
        ("--error-mode", "random", "--seed", "7", "--error-rate", "0.1")
        if kind in REASKED
        else ("--error-rate", "0.25")
    )
    ws = workspace(
        *mode,
        "--error-kinds",
        kind,
        "--retry-after-s",
        "1",
        rows=ROWS,
        timeout=1 if kind == "timeout" else 5,
        max_in_flight=1 if kind in REASKED else 64,
    )
    _run(ws)
    recs = assert_accounted(ws.dir / "out", ROWS)
    assert "errors" not in recs, recs.get("errors")
    log = ws.server.requests()
    assert sum(r["outcome"] == kind for r in log) >= (2 if kind in REASKED else ROWS // 2 - 1)  # faults happened
    if kind in SAME_REQUEST:
        for folder in ("label", "summary", "flattened"):
            assert recs[folder] == reference[folder]


@pytest.mark.parametrize(
    "kind, rate, error_type, attempts",
    [
        ("500", "0.3", "EngineHTTPError", 4),  # permanent: the same request always fails
        ("reset", "0.3", "EngineConnectionError", 4),
        ("timeout", "0.15", "EngineTimeoutError", 2),
        ("schema-invalid", "1", "OutputValidationError", 3),  # re-asked twice, then recorded
        ("empty", "1", "EmptyCompletionError", 4),
        ("invalid-json", "0.3", "TruncatedCompletionError", 1),  # finish_reason length: one attempt
    ],
)
def test_unrecoverable_fault_gives_error_records_and_the_rest_completes(
    workspace, reference, kind, rate, error_type, attempts
):
    ws = workspace(
        "--error-mode",
        "hash",
        "--error-rate",
        rate,
        "--error-kinds",
        kind,
        rows=ROWS,
        timeout=1,
        max_retries=1 if kind == "timeout" else 3,
    )
    _run(ws, code=3 if rate == "1" else 0)  # a run in which every row failed never exits 0
    recs = assert_accounted(ws.dir / "out", ROWS)
    errors = recs.get("errors", [])
    assert errors, "no row failed"
    for e in errors:
        assert e["error_type"] == error_type and e["attempts"] == attempts, e
        assert e["message"] and e["step_id"] in ("label", "summary")
    for folder in ("label", "summary", "flattened"):
        ok = {r["row_id"] for r in recs.get(folder, [])}
        assert recs.get(folder, []) == [r for r in reference[folder] if r["row_id"] in ok]
    if rate == "1":
        assert len(errors) == ROWS and "label" not in recs


def test_no_server_at_all_records_every_row_and_ends(workspace, tmp_path):
    # fewer connection attempts (6 rows, no retry) than the unreachable rule's streak of 8
    # (engine/health.py), so however slow the machine the run ends by the error rate and every
    # row is recorded; a longer run stops early instead (tests/engine/test_fail_fast.py)
    from chainette.engine.health import UNREACHABLE_STREAK

    assert 6 < UNREACHABLE_STREAK  # the premise of this test
    ws = workspace(rows=6, max_retries=0)
    ws.server.stop()
    res = ws.run(ws.dir / "out", "--quiet", "--no-cache", "--max-error-rate", "0.5", timeout=60)
    assert res.returncode == 3, res.stderr
    assert "error rate" in res.stderr and "errors/" in res.stderr
    recs = assert_accounted(ws.dir / "out", 6)
    assert {e["error_type"] for e in recs["errors"]} == {"EngineConnectionError"}
    assert "cannot reach" in recs["errors"][0]["message"]


def test_server_killed_mid_run_and_restarted(workspace, reference):
    ws = workspace("--latency-ms", "20", rows=ROWS * 5, max_in_flight=8, max_retries=8, timeout=2)
    srv = ws.server
    out = ws.dir / "out"
    proc = ws.popen(out, "--quiet", "--no-cache", "--batch-size", "8")
    try:
        assert wait_for(lambda: len(committed_rows(journal(out))) >= 16, 30)
        srv.kill()
        time.sleep(0.5)
        srv.start()  # same port
        proc.wait(timeout=90)
    finally:
        if proc.poll() is None:
            kill_group(proc, signal.SIGKILL)
            proc.wait(timeout=10)
    assert proc.returncode == 0, proc.stderr.read().decode()[-2000:]
    recs = assert_accounted(out, ROWS * 5)
    assert "errors" not in recs, recs["errors"][:3]
    # rows beyond the reference's 24 are checked for completeness above; the first 24 for content
    for folder in ("label", "summary", "flattened"):
        head = [r for r in recs[folder] if int(r["row_id"]) < ROWS]
        assert head == reference[folder]
