"""The benchmark workloads, run through Chainette in this process (one workload per process).

    python benchmarks/chainette_workloads.py step   --url URL --rows 20000 --in-flight 256
    python benchmarks/chainette_workloads.py chain3 --url URL --rows 5000
    python benchmarks/chainette_workloads.py memory --rows 1000000      # Step + Apply, FakeEngine
    python benchmarks/chainette_workloads.py two_step_fake --rows 200000 # issue #2

Each prints a ``RESULT {json}`` line: rows, wall/CPU seconds of the run itself (imports and
chain building excluded), rows/s, CPU µs per row and the process's peak RSS. Inputs are a lazy
generator of dicts, results stream to a StreamWriter run directory in a temporary folder, and the
on-disk item cache is off unless ``--cache`` is given.
"""

from __future__ import annotations

import argparse
import shutil
import tempfile
import time

from common import cpu_seconds, emit, peak_rss_mb
from pydantic import BaseModel


class Q(BaseModel):
    text: str


class A(BaseModel):
    answer: str
    score: float


RUNTIME_MODULES = [
    "chainette.engine.http1",
    "chainette.run.async_executor",
    "chainette.run.engines",
    "chainette.io.stream_writer",
    "chainette.io.item_cache",
    "chainette.engine.backends.vllm",
    "chainette.engine.backends.openai",
    "chainette.engine.identity",
    "chainette.engine.factory",
    "chainette.engine.broker",
    "chainette.engine.process_manager",
    "chainette.engine.servers",
    "chainette.engine.backends.checks",
    "chainette.run.local",
    "chainette.run.executor",
    "chainette.run.preflight",
    "chainette.run.batch_mode",
    "chainette.io.report",
    "anyio._backends._asyncio",
    "anyio.to_thread",
    "encodings.idna",
]
"""Imported before a measurement starts (what a second run in the same process would find)."""


def keep(a: A) -> list[A]:
    """The Apply node of the memory workloads: a 1:1 map (keeps the row)."""
    return [A(answer=a.answer.upper(), score=a.score)]


def build(workload: str, engine: str, max_tokens: int = 64, temperature: float | None = None):
    from chainette import Branch, Chain, SamplingParams, Step, apply

    def step(sid: str, prompt: str, input_model=A) -> Step:
        return Step(
            sid,
            input_model=input_model,
            output_model=A,
            engine_name=engine,
            user_prompt=prompt,
            sampling=SamplingParams(max_tokens=max_tokens, temperature=temperature),
        )

    s1 = step("s1", "{{text}}", Q)
    if workload == "step":
        return Chain(name="bench-step", steps=[s1])
    if workload == "chain3":
        b1 = Branch("b1", [step("x", "{{answer}}")]).join("bx")
        b2 = Branch("b2", [step("y", "{{answer}}")]).join("by")
        s4 = step("s4", "{{bx.answer}} {{by.answer}}")
        return Chain(name="bench-chain3", steps=[s1, [b1, b2], s4])
    if workload == "memory":
        return Chain(name="bench-memory", steps=[s1, apply(keep, id="keep")])
    if workload == "two_step_fake":
        return Chain(name="bench-two-step", steps=[s1, step("s2", "{{answer}}")])
    raise SystemExit(f"unknown workload {workload}")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("workload", choices=["step", "chain3", "memory", "two_step_fake"])
    ap.add_argument("--url", help="mock server base URL (…/v1); omitted = FakeEngine in process")
    ap.add_argument("--rows", type=int, default=20000)
    ap.add_argument("--in-flight", type=int, default=256)
    ap.add_argument("--cache", action="store_true", help="default settings: on-disk item cache on")
    ap.add_argument("--keep-output", action="store_true")
    ap.add_argument("--backend", default="vllm_api", help="the engine's backend (e.g. openai for llama.cpp)")
    ap.add_argument("--model", default="mock", help="the engine's model name")
    ap.add_argument("--first", type=int, default=0, help="inputs are q<first>, q<first+1>, ...")
    ap.add_argument("--max-tokens", type=int, default=64)
    ap.add_argument("--temperature", type=float, help="the step's sampling temperature (default: not set)")
    a = ap.parse_args()

    from chainette import FakeEngine, register_engine

    engines = None
    if a.url:
        register_engine(
            name="mock",
            backend=a.backend,
            endpoint=a.url,
            model=a.model,
            max_in_flight=a.in_flight,
            **({"api_key": "sk-bench"} if a.backend == "openai" else {}),
        )
    else:
        engines = {"mock": FakeEngine(name="mock", max_in_flight=a.in_flight)}
    chain = build(a.workload, "mock", a.max_tokens, a.temperature)
    out = tempfile.mkdtemp(prefix=f"chainette-bench-{a.workload}-")
    options = {"cache": bool(a.cache), "force": True}
    if engines:
        options["engines"] = engines
    inputs = ({"text": f"q{i}"} for i in range(a.first, a.first + a.rows))
    # the modules a run imports lazily (the executor, writer, cache, engines): imported before the clock
    # starts, as the raw client and the peers import theirs before theirs
    import importlib

    for module in RUNTIME_MODULES:
        importlib.import_module(module)

    rss_before = peak_rss_mb()
    cpu0, t0 = cpu_seconds(), time.perf_counter()
    result = chain.run(inputs, output_dir=out, **options)
    wall, cpu = time.perf_counter() - t0, cpu_seconds() - cpu0

    last = list(result.step_stats)[-1]
    done = result.step_stats[last].done
    if not a.keep_output:
        shutil.rmtree(out, ignore_errors=True)
    emit(
        {
            "client": "chainette",
            "workload": a.workload,
            "rows": done,
            "rows_in": result.rows_in,
            "errors": result.error_count,
            "requests": sum(s.done + s.errors for k, s in result.step_stats.items() if k != "keep"),
            "requests_sent": sum(s.requests for s in result.step_stats.values()),
            "cached": sum(s.cached for s in result.step_stats.values()),
            "completion_tokens": sum(s.completion_tokens for s in result.step_stats.values()),
            "completion_tokens_per_s": sum(s.completion_tokens for s in result.step_stats.values()) / wall
            if wall
            else 0.0,
            "wall_s": wall,
            "cpu_s": cpu,
            "rows_per_s": done / wall if wall else 0.0,
            "cpu_us_per_row": cpu / done * 1e6 if done else None,
            "peak_rss_mb": peak_rss_mb(),
            "rss_before_run_mb": rss_before,
        }
    )


if __name__ == "__main__":
    main()
