"""What recording the run report's metrics costs (``chainette/io/metrics.py``).

    python benchmarks/metrics_overhead.py [--rows 20000] [--rounds 5] [--json]

Two measurements, CPU time (``time.process_time``), best of ``--rounds`` (the least disturbed
by other processes on a shared machine):

* **per call**: nanoseconds of ``RunMetrics.observe`` (once per answered request: a latency
  bucket and a token bucket) and of ``RunMetrics.sample`` (a few times a second, five steps);
* **end to end**: CPU per row of a FakeEngine run (two LLM steps and an apply, StreamWriter,
  no item cache) with recording on, and with ``observe``/``sample``/``write`` replaced by
  no-ops (what the run would cost without it), rounds interleaved so that a busy machine
  slows both alike. The report page itself is built once, at the end, and timed apart.
"""

from __future__ import annotations

import argparse
import json
import shutil
import sys
import tempfile
import time
import timeit
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from pydantic import BaseModel  # noqa: E402

from chainette import Chain, FakeEngine, Step, apply  # noqa: E402
from chainette.core.result import StepStats  # noqa: E402
from chainette.io import metrics as metrics_mod  # noqa: E402
from chainette.io.metrics import RunMetrics  # noqa: E402


class Q(BaseModel):
    text: str


class A(BaseModel):
    answer: str
    score: int = 0


def keep(item: A) -> list[A]:
    return [item]


def build() -> Chain:
    return Chain(name="bench", steps=[
        Step("first", input_model=Q, output_model=A, engine_name="fk", user_prompt="{{text}}"),
        apply(keep, id="keep"),
        Step("second", output_model=A, engine_name="fk", user_prompt="{{first.answer}}"),
    ])


def per_call(rounds: int, number: int = 200_000) -> dict[str, float]:
    stats = {f"s{k}": StepStats() for k in range(5)}
    m = RunMetrics(None, stats)
    observe = timeit.Timer(lambda: m.observe("s1", 0.0421, 87), timer=time.process_time)
    best_obs = min(observe.timeit(number) for _ in range(rounds)) / number * 1e9

    def sample() -> None:
        for st in stats.values():
            st.done += 1
        m.sample(rows=1)

    timer = timeit.Timer(sample, timer=time.process_time)
    best_sample = min(timer.timeit(number // 10) for _ in range(rounds)) / (number // 10) * 1e9
    return {"observe_ns": best_obs, "sample_5_steps_ns": best_sample}


def one_run(rows: int, recording: bool) -> tuple[float, float]:
    """CPU seconds of one run, and of building its report (0 when not recording)."""
    saved = (RunMetrics.observe, RunMetrics.sample, RunMetrics.write)
    if not recording:
        RunMetrics.observe = lambda self, *a: None  # type: ignore[method-assign]
        RunMetrics.sample = lambda self, *a, **k: None  # type: ignore[method-assign]
        RunMetrics.write = lambda self, *a: None  # type: ignore[method-assign]
    out = Path(tempfile.mkdtemp(prefix="chainette-metrics-bench-"))
    try:
        cpu0 = time.process_time()
        build().run(({"text": f"q{i}"} for i in range(rows)), output_dir=out / "run", cache=False, report=False,
                    engines={"fk": FakeEngine(name="fk")})
        cpu = time.process_time() - cpu0
        report = 0.0
        if recording:
            from chainette.io.report import write_report

            t0 = time.process_time()
            write_report(out / "run")
            report = time.process_time() - t0
        return cpu, report
    finally:
        RunMetrics.observe, RunMetrics.sample, RunMetrics.write = saved  # type: ignore[method-assign]
        shutil.rmtree(out, ignore_errors=True)


def end_to_end(rows: int, rounds: int) -> dict[str, float]:
    one_run(min(rows, 500), True)  # warm imports and caches
    on, off, report = [], [], []
    for _ in range(rounds):
        cpu, rep = one_run(rows, True)
        on.append(cpu)
        report.append(rep)
        off.append(one_run(rows, False)[0])
    best_on, best_off = min(on), min(off)
    return {
        "rows": rows,
        "cpu_us_per_row_recording": best_on / rows * 1e6,
        "cpu_us_per_row_without": best_off / rows * 1e6,
        "overhead_pct": (best_on - best_off) / best_off * 100,
        "report_build_s": min(report),
    }


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--rows", type=int, default=20_000)
    ap.add_argument("--rounds", type=int, default=5)
    ap.add_argument("--json", action="store_true")
    a = ap.parse_args()
    assert metrics_mod.RunMetrics is RunMetrics
    result = {**per_call(a.rounds), **end_to_end(a.rows, a.rounds)}
    if a.json:
        print(json.dumps(result))
        return
    print(f"RunMetrics.observe (per answered request):   {result['observe_ns']:.0f} ns")
    print(f"RunMetrics.sample (5 steps, a few times a s): {result['sample_5_steps_ns']:.0f} ns")
    print(f"FakeEngine run, {a.rows:,} rows, 2 LLM steps + apply, best of {a.rounds}:")
    print(f"  recording on : {result['cpu_us_per_row_recording']:.1f} CPU us/row")
    print(f"  recording off: {result['cpu_us_per_row_without']:.1f} CPU us/row")
    print(f"  overhead     : {result['overhead_pct']:+.2f}%")
    print(f"report.html built in {result['report_build_s'] * 1000:.0f} ms CPU (once, at the end)")


if __name__ == "__main__":
    main()
