"""What recording the run report's metrics costs (``chainette/io/metrics.py``).

    python benchmarks/metrics_overhead.py [--rows 20000] [--rounds 5] [--json]

Three measurements, CPU time (``time.process_time``), best of ``--rounds`` (the least disturbed
by other processes on a shared machine):

* **per call**: nanoseconds of ``RunMetrics.observe`` (once per answered request: a latency
  bucket and a token bucket) and of ``RunMetrics.sample`` (a few times a second, five steps);
* **attributed**: in one real run, the calls counted and each priced at its per-call cost, plus
  the time spent encoding and writing ``metrics.json``: the recording's own CPU per row, which
  the noise of a shared machine does not blur;
* **end to end**: CPU per row of a FakeEngine run (two LLM steps and an apply, StreamWriter,
  no item cache) with recording on, and with ``observe``/``sample``/``write`` replaced by
  no-ops (what the run would cost without it), rounds interleaved (the order alternating) so
  that a busy machine slows both alike; best and median of each are compared. The report page itself is built once, at the end, and timed apart.
"""

from __future__ import annotations

import argparse
import json
import shutil
import statistics
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
    return Chain(
        name="bench",
        steps=[
            Step("first", input_model=Q, output_model=A, engine_name="fk", user_prompt="{{text}}"),
            apply(keep, id="keep"),
            Step("second", output_model=A, engine_name="fk", user_prompt="{{first.answer}}"),
        ],
    )


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
        build().run(
            ({"text": f"q{i}"} for i in range(rows)),
            output_dir=out / "run",
            cache=False,
            report=False,
            engines={"fk": FakeEngine(name="fk")},
        )
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


def attributed(rows: int, costs: dict[str, float]) -> dict[str, float]:
    """The recording's own CPU in one run: calls counted, each priced at its measured per-call
    cost; ``write`` (JSON encoding and the file) and ``document`` timed as they run."""
    calls = {"observe": 0, "sample": 0}
    timed = {"write": 0.0, "document": 0.0}
    saved = {name: getattr(RunMetrics, name) for name in ("observe", "sample", "write", "document")}

    def counting(name: str):
        orig = saved[name]

        def f(self, *a, **k):
            calls[name] += 1
            return orig(self, *a, **k)

        return f

    def timing(name: str):
        orig = saved[name]

        def f(self, *a, **k):
            t0 = time.thread_time()
            try:
                return orig(self, *a, **k)
            finally:
                timed[name] += time.thread_time() - t0

        return f

    RunMetrics.observe, RunMetrics.sample = counting("observe"), counting("sample")  # type: ignore[method-assign]
    RunMetrics.write, RunMetrics.document = timing("write"), timing("document")  # type: ignore[method-assign]
    try:
        cpu, _ = one_run(rows, True)
    finally:
        for name, fn in saved.items():
            setattr(RunMetrics, name, fn)
    spent = (calls["observe"] * costs["observe_ns"] + calls["sample"] * costs["sample_5_steps_ns"]) / 1e9
    spent += timed["write"] + timed["document"]
    return {
        "observe_calls": calls["observe"],
        "sample_calls": calls["sample"],
        "write_s": timed["write"],
        "attributed_us_per_row": spent / rows * 1e6,
        "attributed_pct": spent / cpu * 100,
    }


def end_to_end(rows: int, rounds: int) -> dict[str, float]:
    one_run(min(rows, 500), True)  # warm imports and caches
    on, off, report = [], [], []
    for k in range(rounds):  # the order alternates: the second run of a pair is not favoured
        for recording in (True, False) if k % 2 == 0 else (False, True):
            cpu, rep = one_run(rows, recording)
            (on if recording else off).append(cpu)
            if recording:
                report.append(rep)
    best_on, best_off = min(on), min(off)
    med_on, med_off = statistics.median(on), statistics.median(off)
    return {
        "rows": rows,
        "cpu_us_per_row_recording": best_on / rows * 1e6,
        "cpu_us_per_row_without": best_off / rows * 1e6,
        "overhead_pct": (best_on - best_off) / best_off * 100,
        "median_overhead_pct": (med_on - med_off) / med_off * 100,
        "spread_pct": (max(off) - min(off)) / min(off) * 100,
        "report_build_s": min(report),
    }


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--rows", type=int, default=20_000)
    ap.add_argument("--rounds", type=int, default=5)
    ap.add_argument("--json", action="store_true")
    a = ap.parse_args()
    assert metrics_mod.RunMetrics is RunMetrics
    costs = per_call(a.rounds)
    result = {**costs, **attributed(a.rows, costs), **end_to_end(a.rows, a.rounds)}
    if a.json:
        print(json.dumps(result))
        return
    print(f"RunMetrics.observe (per answered request):   {result['observe_ns']:.0f} ns")
    print(f"RunMetrics.sample (5 steps, a few times a s): {result['sample_5_steps_ns']:.0f} ns")
    print(
        f"In one run of {a.rows:,} rows: {result['observe_calls']:,} observe, {result['sample_calls']:,} sample, "
        f"metrics.json written in {result['write_s'] * 1000:.0f} ms: the recording's own CPU is "
        f"{result['attributed_us_per_row']:.2f} us/row ({result['attributed_pct']:.2f}% of the run)"
    )
    print(f"FakeEngine run, {a.rows:,} rows, 2 LLM steps + apply, best of {a.rounds}:")
    print(f"  recording on : {result['cpu_us_per_row_recording']:.1f} CPU us/row")
    print(f"  recording off: {result['cpu_us_per_row_without']:.1f} CPU us/row")
    print(
        f"  overhead     : {result['overhead_pct']:+.2f}% (best of each), {result['median_overhead_pct']:+.2f}% "
        f"(medians); runs without recording spread over {result['spread_pct']:.0f}% on this machine"
    )
    print(f"report.html built in {result['report_build_s'] * 1000:.0f} ms CPU (once, at the end)")


if __name__ == "__main__":
    main()
