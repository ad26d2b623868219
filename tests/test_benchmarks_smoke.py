"""CI runs the benchmark suite's smoke version: every workload runs and the targets table prints.

The full suite (``python benchmarks/run_all.py``) is the measurement; this only proves it works.
"""

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
    assert (tmp_path / "smoke.json").is_file()
