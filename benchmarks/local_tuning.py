"""Threads x parallel slots of the embedded llama.cpp server, measured on this machine.

    python benchmarks/local_tuning.py                       # grid: threads 1..ncpu x slots 1,2,4,8
    python benchmarks/local_tuning.py --threads 2 --slots 4 --rows 64

For each setting it starts the real local server (the default model, SmolLM2-135M), sends the
sentiment example's request (its step's own messages, schema and sampling) for ``--rows``
distinct reviews through Chainette's local engine client, all at once (the engine's in-flight
limit applies, as in a run), and prints rows/s, completion tokens/s and the p50/max request
latency. Server start-up is not timed; one warm-up request is sent first; a setting still
busy after ``--max-seconds`` is stopped and scored by the rows done by then. ``--repeat N`` runs
the grid N times, interleaved; a ``RESULT {...}`` JSON line per setting (the median run, and
every run's rows/s) follows the table, for the record in docs/benchmarks.md.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import statistics
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

ADJECTIVES = [
    "great",
    "awful",
    "fine",
    "broken",
    "lovely",
    "noisy",
    "cheap",
    "solid",
    "flimsy",
    "perfect",
    "slow",
    "fast",
    "ugly",
    "handy",
    "useless",
    "decent",
]
THINGS = ["blender", "kettle", "phone case", "backpack", "lamp", "keyboard", "chair", "toaster"]


def reviews(n: int) -> list[str]:
    return [
        f"Review #{i}: the {THINGS[(i // len(ADJECTIVES)) % len(THINGS)]} is "
        f"{ADJECTIVES[i % len(ADJECTIVES)]}, I used it for {i % 9 + 1} weeks."
        for i in range(n)
    ]


async def _send_all(engine, step, texts: list[str], max_seconds: float) -> list:
    from chainette.engine.protocol import CompletionRequest

    schema = step.output_model.model_json_schema()

    def request(i: int, text: str) -> CompletionRequest:
        return CompletionRequest(
            messages=step.render_row(str(i), None, {"text": text}),
            json_schema=schema,
            schema_name="Sentiment",
            sampling=step.sampling,
            row_id=str(i),
        )

    await engine.complete(request(-1, "warm-up review"))
    t0 = time.perf_counter()
    tasks = [asyncio.ensure_future(engine.complete(request(i, t))) for i, t in enumerate(texts)]
    finished, pending = await asyncio.wait(tasks, timeout=max_seconds)
    wall = time.perf_counter() - t0
    for task in pending:  # past the time budget: count what finished (rows/s stays comparable)
        task.cancel()
    await asyncio.gather(*pending, return_exceptions=True)
    await engine.aclose()
    return [wall, [t.result() for t in finished if not t.exception()]]


def measure(threads: int, slots: int, rows: int, max_seconds: float = 120.0) -> dict:
    from chainette.engine import process_manager as pm
    from chainette.engine.factory import create_engine
    from chainette.engine.registry import EngineConfig

    sys.path.insert(0, str(REPO / "examples" / "sentiment"))
    from chain import classify  # the sentiment example's step

    cfg = EngineConfig(
        name=f"tune-{threads}x{slots}",
        backend="local",
        model="smollm2",
        threads=threads,
        n_parallel=slots,
        startup_timeout=120,
    )
    sp = pm.start_server(cfg)
    try:
        engine = create_engine(cfg, sp.endpoint)
        wall, done = asyncio.run(_send_all(engine, classify, reviews(rows), max_seconds))
    finally:
        pm.stop_server(sp)
    lat = sorted(c.latency_s for c in done) or [float("nan")]
    tokens = sum(c.usage.completion_tokens for c in done)
    return {
        "threads": threads,
        "slots": slots,
        "rows": len(done),
        "wall_s": round(wall, 2),
        "rows_per_s": round(len(done) / wall, 2),
        "completion_tok_per_s": round(tokens / wall, 1),
        "p50_latency_s": round(statistics.median(lat), 2),
        "max_latency_s": round(lat[-1], 2),
        "load1": round(os.getloadavg()[0], 2),
    }


def main() -> int:
    from chainette.engine.local_tuning import cpu_count, local_defaults

    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--threads", type=int, nargs="*", default=None)
    ap.add_argument("--slots", type=int, nargs="*", default=None)
    ap.add_argument("--rows", type=int, default=48)
    ap.add_argument(
        "--max-seconds",
        type=float,
        default=120.0,
        help="stop a setting after this long and count the rows done by then",
    )
    ap.add_argument(
        "--repeat", type=int, default=1, help="run the whole grid N times, interleaved (the median is shown)"
    )
    args = ap.parse_args()
    threads = args.threads or list(range(1, cpu_count() + 1))
    slots = args.slots or [1, 2, 4, 8]
    print(f"{cpu_count()} cores; defaults here (threads, slots) = {local_defaults()}", flush=True)
    print(f"{'threads':>7} {'slots':>5} {'rows/s':>7} {'tok/s':>7} {'p50 s':>6} {'max s':>6} {'load':>5}", flush=True)
    runs: dict[tuple[int, int], list[dict]] = {}
    for _ in range(args.repeat):  # interleaved, so that drift in the machine's load hits every setting
        for t in threads:
            for s in slots:
                r = measure(t, s, args.rows, args.max_seconds)
                runs.setdefault((t, s), []).append(r)
                print(
                    f"{t:>7} {s:>5} {r['rows_per_s']:>7} {r['completion_tok_per_s']:>7} "
                    f"{r['p50_latency_s']:>6} {r['max_latency_s']:>6} {r['load1']:>5}",
                    flush=True,
                )
    for (t, s), rs in runs.items():
        best = sorted(rs, key=lambda r: r["rows_per_s"])[len(rs) // 2]
        print("RESULT " + json.dumps({**best, "runs_rows_per_s": [r["rows_per_s"] for r in rs]}))
    return 0


if __name__ == "__main__":
    sys.exit(main())
