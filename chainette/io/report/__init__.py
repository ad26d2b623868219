"""The run report: one self-contained HTML page built from a run directory.

``build_report(run_dir) -> str`` is pure apart from reading the run directory's files (a
bounded amount, see :mod:`chainette.io.report.data`); ``write_report`` saves it, by default
as ``RUN_DIR/report.html``. The executor writes it at the end of every session of a run
with a run directory; ``chainette report RUN_DIR [-o FILE]`` rebuilds it at any time (also
while a run is going, or after its process was killed: only committed rows are shown).

The page holds the chain's DAG, a per-step table (rows in and out, errors, cached, tokens,
cost, latency p50/p95/p99), charts of throughput, latency, tokens and errors over the run
(every session of a resumed run, back to back), latency histograms, error groups with
examples, and a sample browser with one row's values at every step side by side. It loads
nothing from the network: CSS, JavaScript and SVG are inline.
"""

from __future__ import annotations

from pathlib import Path

from chainette.errors import ConfigError
from chainette.io.report.data import load_report_data
from chainette.io.report.page import render

__all__ = ["REPORT_FILE", "build_report", "write_report", "write_report_or_warn"]

REPORT_FILE = "report.html"


def build_report(run_dir: str | Path) -> str:
    """The report of ``run_dir`` as one HTML document."""
    run_dir = Path(run_dir)
    if not run_dir.is_dir():
        raise ConfigError(
            f"run directory {run_dir} not found: pass the directory given to -o/--output-dir (output_dir=) of a run"
        )
    if not (run_dir / "graph.json").is_file() and not (run_dir / "metadata.json").is_file():
        raise ConfigError(
            f"{run_dir} is not a Chainette run directory (it has no graph.json or metadata.json): "
            "pass the directory given to -o/--output-dir (output_dir=) of a run"
        )
    return render(load_report_data(run_dir))


def write_report(run_dir: str | Path, path: str | Path | None = None) -> Path:
    """Build the report of ``run_dir`` and write it to ``path`` (default ``RUN_DIR/report.html``),
    replacing the file atomically; return the path written."""
    from chainette.io.journal import write_atomic
    from chainette.utils.paths import confined

    run_dir = Path(run_dir)
    html = build_report(run_dir)
    target = confined(run_dir, REPORT_FILE) if path is None else Path(path)
    target.parent.mkdir(parents=True, exist_ok=True)
    write_atomic(target, html, durable=False)
    return target


def write_report_or_warn(run_dir: str | Path) -> None:
    """Write ``RUN_DIR/report.html`` at the end of a run: a failure is a ``RuntimeWarning``
    saying how to build it again, never a failed run (the run's data is written)."""
    import warnings

    try:
        write_report(run_dir)
    except Exception as exc:  # noqa: BLE001 - only the report is missing
        warnings.warn(
            f"the run report of {run_dir} was not written: {type(exc).__name__}: {exc}. "
            f"Rebuild it with: chainette report {run_dir}",
            RuntimeWarning,
            stacklevel=2,
        )
