"""CI runs the benchmark suite's smoke version: every workload runs and the targets table prints.

The full suite (``python benchmarks/run_all.py``) is the measurement; this only proves it works.
"""

import json
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


@pytest.mark.skipif(shutil.which("node") is None, reason="the mock server needs Node.js")
def test_benchmark_smoke_runs_every_section(tmp_path):
    proc = subprocess.run(
        [sys.executable, "benchmarks/run_all.py", "--smoke", "--json", str(tmp_path / "smoke.json")],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    out = proc.stdout
    assert "## Targets" in out and "PASS" in out
    for workload in ("step-20ms", "step-0ms", "chain3", "lognormal"):
        assert workload in out
    # issue #17: default settings as the headline (cache off beside it), the warm cache, the
    # cache at scale, the real llama.cpp server and every peer (skipped where not installed)
    assert "step-0ms-cache-off" in out and "default settings: CPU per row vs raw" in out
    assert "Warm item cache" in out and "step-20ms-warm-cache" in out
    assert "## Item cache at scale" in out and "Item cache insert (a run's put) cost per entry" in out
    assert "Item cache open (stored key filter)" in out and "a cache of" in out and "vs an empty one" in out
    assert "Real llama.cpp server at its slot count" in out
    for peer in ("curator", "langchain", "data-designer", "distilabel"):
        assert f"Chainette vs {peer}" in out
    report = json.loads((tmp_path / "smoke.json").read_text())
    assert len(report["cache_scale"]) == 3 and not report["crashes"]
    assert all(size["open_source"] == "stored" for size in report["cache_scale"])  # a run's open reads the filter
    # the transport comparison runs the engines' own HTTP/1.1 client beside aiohttp, without errors
    ours = [r for r in report["transport"] if r["client"] == "chainette-http1"]
    assert ours and all(r.get("ok") and not r.get("errors") for r in ours), ours
    warm = next(t for t in report["targets"] if t["target"].startswith("Warm item cache") and t["op"])
    assert warm["measured"] == 0  # a warm cache sends no request
