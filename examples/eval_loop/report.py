"""Score an eval_loop run directory: judge pass rate before and after the retry.

python examples/eval_loop/report.py runs/eval_loop
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

from chainette.io.stream_writer import read_records  # reads JSONL or Parquet run folders


def score(run_dir: str | Path) -> dict:
    run = Path(run_dir)
    rows = sorted(read_records(run / "flattened"), key=lambda r: int(r["row_id"]))
    first = sum(r["judge.verdict"] == "correct" for r in rows)
    fixed = sum((r.get("retry.verdict") == "correct") for r in rows)
    errors = sum(1 for _ in read_records(run / "errors")) if (run / "errors").is_dir() else 0
    n = len(rows)
    return {
        "rows": n,
        "errors": errors,
        "correct_first_try": first,
        "correct_after_retry": first + fixed,
        "pass_rate_first_try": round(first / n, 3) if n else 0.0,
        "pass_rate_after_retry": round((first + fixed) / n, 3) if n else 0.0,
    }


if __name__ == "__main__":
    print(json.dumps(score(sys.argv[1] if len(sys.argv) > 1 else "runs/eval_loop"), indent=2))
