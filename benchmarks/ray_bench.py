"""The Ray runner against the local runner on this machine (issue #15).

    python benchmarks/ray_bench.py --rows 1000000 --servers 2 --latency-ms 20
    python benchmarks/ray_bench.py --rows 50000 --modes local,ray     # a quick look

Starts ``--servers`` mock OpenAI-compatible servers (benchmarks/mock_server.js) and runs the
one-step workload (``Q -> A``, the ``step`` workload of chainette_workloads.py) over ``--rows``
lazily generated rows, once per mode, each in a fresh subprocess:

* ``local``: ``chain.run(rows, out)``, one process, the engine listing every server (endpoints);
* ``ray``: ``chain.run(rows, out, runner="ray")`` on a local Ray cluster with ``--workers`` workers
  (default: the CPUs), blocks of ``--block-rows`` rows.

Each mode prints a ``RESULT {json}`` line: rows/s, wall seconds of the run (imports, cluster start
and chain building excluded), client CPU per row (driver + workers), peak RSS of the driver and of
each worker, and the mock servers' CPU. The item cache is off. ``--json FILE`` keeps every result.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

from common import RESULT_PREFIX, cpu_seconds, emit, peak_rss_mb  # noqa: E402


def rows(n: int):
    for i in range(n):
        yield {"text": f"question number {i}: what is {i % 997} plus {i % 13}?"}


def chain(engine: str):
    from pydantic import BaseModel

    from chainette import Chain, SamplingParams, Step

    class Q(BaseModel):
        text: str

    class A(BaseModel):
        answer: str
        score: float

    return Chain(
        name="bench-ray",
        steps=[
            Step(
                "s1",
                input_model=Q,
                output_model=A,
                engine_name=engine,
                user_prompt="{{text}}",
                sampling=SamplingParams(max_tokens=64),
            )
        ],
    )


def run_mode(args: argparse.Namespace) -> None:
    """One measurement, in this process (called by the parent through a subprocess)."""
    from chainette import register_engine

    register_engine(
        name="bench",
        backend="vllm_api",
        model="mock",
        endpoints=args.urls.split(","),
        max_in_flight=args.in_flight,
        timeout=60,
    )
    ch = chain("bench")
    out = Path(tempfile.mkdtemp(prefix=f"ray-bench-{args.mode}-"))
    options = {}
    ray = None
    if args.mode == "ray":
        import ray

        ray.init(num_cpus=args.cpus, include_dashboard=False, log_to_driver=False)
        options = {"runner": "ray", "block_rows": args.block_rows, "num_workers": args.workers or None}
    try:
        cpu0, t0 = cpu_seconds(), time.perf_counter()
        result = ch.run(rows(args.rows), out / "run", cache=False, **options)
        wall, cpu = time.perf_counter() - t0, cpu_seconds() - cpu0
        meta = json.loads((out / "run" / "metadata.json").read_text())
        lines = sum(1 for f in (out / "run" / "flattened").glob("*.jsonl") for _ in open(f, "rb"))
        workers = meta.get("runner", {}).get("workers", {})
        worker_cpu = sum(w.get("cpu_s", 0.0) for w in workers.values())
        emit(
            {
                "mode": args.mode,
                "rows": args.rows,
                "flattened": lines,
                "failed_rows": result.failed_rows,
                "wall_s": round(wall, 2),
                "rows_per_s": round(args.rows / wall, 1),
                "cpu_us_per_row": round((cpu + worker_cpu) / args.rows * 1e6, 1),
                "driver_cpu_s": round(cpu, 1),
                "workers_cpu_s": round(worker_cpu, 1),
                "driver_peak_rss_mb": round(peak_rss_mb(), 1),
                "worker_peak_rss_mb": sorted(w.get("peak_rss_mb") for w in workers.values()),
                "worker_rows": sorted(w.get("rows") for w in workers.values()),
                "slots": meta.get("runner", {}).get("in_flight_slots"),
                "run_dir_mb": round(sum(p.stat().st_size for p in (out / "run").rglob("*") if p.is_file()) / 2**20, 1),
            }
        )
    finally:
        if ray is not None:
            ray.shutdown()
        shutil.rmtree(out, ignore_errors=True)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--rows", type=int, default=1_000_000)
    ap.add_argument("--servers", type=int, default=2)
    ap.add_argument("--latency-ms", type=float, default=20.0)
    ap.add_argument("--in-flight", type=int, default=128, help="max_in_flight per endpoint")
    ap.add_argument("--modes", default="local,ray")
    ap.add_argument("--workers", type=int, default=0, help="Ray workers (default: the CPUs)")
    ap.add_argument("--cpus", type=int, default=os.cpu_count() or 2)
    ap.add_argument("--block-rows", type=int, default=20_000)
    ap.add_argument("--json", type=Path, default=None)
    ap.add_argument("--mode", help=argparse.SUPPRESS)
    ap.add_argument("--urls", help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.mode:
        run_mode(args)
        return
    from contextlib import ExitStack

    from common import mock_server  # the parent owns the mock servers

    results = []
    with ExitStack() as stack:
        servers = [stack.enter_context(mock_server("--latency-ms", str(args.latency_ms))) for _ in range(args.servers)]
        urls = ",".join(s.base_url for s in servers)
        for mode in args.modes.split(","):
            for s in servers:
                s.reset()
            mock_cpu0 = [s.cpu_seconds() for s in servers]
            argv = [
                sys.executable,
                __file__,
                "--mode",
                mode,
                "--urls",
                urls,
                "--rows",
                str(args.rows),
                "--in-flight",
                str(args.in_flight),
                "--workers",
                str(args.workers),
                "--cpus",
                str(args.cpus),
                "--block-rows",
                str(args.block_rows),
            ]
            done = subprocess.run(argv, capture_output=True, text=True)
            line = next((x for x in done.stdout.splitlines()[::-1] if x.startswith(RESULT_PREFIX)), None)
            if line is None:
                sys.stderr.write(done.stdout[-3000:] + done.stderr[-5000:])
                raise SystemExit(f"mode {mode} failed")
            res = json.loads(line[len(RESULT_PREFIX) :])
            res["mock_cpu_s"] = [round(s.cpu_seconds() - c, 1) for s, c in zip(servers, mock_cpu0, strict=True)]
            res["load_1m"] = round(os.getloadavg()[0], 2)
            res["latency_ms"], res["servers"] = args.latency_ms, args.servers
            results.append(res)
            print(json.dumps(res), flush=True)
    if args.json:
        args.json.write_text(json.dumps(results, indent=2))


if __name__ == "__main__":
    main()
