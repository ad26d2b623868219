"""Staged runs: two managed engines that must take turns (one GPU, two models)."""

import json
import os
from pathlib import Path

from chainette import Chain, Step, register_engine
from chainette.engine.registry import unregister_engine
from chainette.io.stream_writer import read_records
from chainette.run.stages import plan_stages
from chainette.utils.events import ServerStarting, ServerStopped
from chainette.utils.events import bus as global_bus
from tests.core.models import Answer, Question, Summary, Translation

STANDINS = Path(__file__).resolve().parents[1] / "standins"


def test_plan_cuts_between_exclusive_engines_only():
    def s(i, eng, inp=Question):
        return Step(i, input_model=inp, output_model=Question, engine_name=eng, user_prompt="{{text}}")

    items = [s("a", "gpu1"), s("b", "api"), s("c", "gpu1"), s("d", "gpu2"), s("e", "api"), s("f", "gpu1")]
    stages = plan_stages(items, exclusive=lambda e: e.startswith("gpu"))
    assert [[i.id for i in st] for st in stages] == [["a", "b", "c"], ["d", "e"], ["f"]]
    assert len(plan_stages(items, exclusive=lambda e: False)) == 1


def test_two_managed_engines_run_stage_by_stage(tmp_path, monkeypatch):
    monkeypatch.setenv("PATH", f"{STANDINS}{os.pathsep}{os.environ['PATH']}")
    monkeypatch.setenv("STANDIN_VLLM_DELAY", "0.2")
    for name in ("model_a", "model_b"):
        register_engine(name=name, backend="vllm_api", model=f"org/{name}", startup_timeout=30, max_in_flight=8)
    events = []
    unsubscribe = global_bus.subscribe(events.append)
    try:
        first = Step("first", input_model=Question, output_model=Answer, engine_name="model_a", user_prompt="{{text}}")
        second = Step(
            "second",
            input_model=Answer,
            output_model=Translation,
            engine_name="model_b",
            user_prompt="{{answer}} {{chain_input.text}}",
        )
        third = Step(
            "third",
            input_model=Translation,
            output_model=Summary,
            engine_name="model_a",
            user_prompt="{{translated}} {{first.answer}}",
        )
        chain = Chain("staged", steps=[first, second, third])
        result = chain.run([Question(text=f"q{i}") for i in range(12)], tmp_path, cache=False)
    finally:
        unsubscribe()
        unregister_engine("model_a")
        unregister_engine("model_b")
    assert result.error_count == 0 and not result.interrupted
    lifecycle = [(type(e).__name__, e.engine) for e in events if isinstance(e, (ServerStarting, ServerStopped))]
    # model_a is stopped before model_b starts, and started again for the last stage
    assert lifecycle == [
        ("ServerStarting", "model_a"),
        ("ServerStopped", "model_a"),
        ("ServerStarting", "model_b"),
        ("ServerStopped", "model_b"),
        ("ServerStarting", "model_a"),
        ("ServerStopped", "model_a"),
    ]
    flat = list(read_records(tmp_path / "flattened"))
    assert sorted(r["row_id"] for r in flat) == sorted(str(i) for i in range(12))
    assert all("first.answer" in r and "second.translated" in r and "third.summary" in r for r in flat)
    assert len(list(read_records(tmp_path / "second"))) == 12
    assert not list((tmp_path / ".chainette").glob("spill-*"))  # staged rows are cleaned up
    assert json.loads((tmp_path / "metadata.json").read_text())["status"] == "completed"


def test_staged_run_in_memory(monkeypatch):
    monkeypatch.setenv("PATH", f"{STANDINS}{os.pathsep}{os.environ['PATH']}")
    for name in ("mem_a", "mem_b"):
        register_engine(name=name, backend="vllm_api", model=f"org/{name}", startup_timeout=30)
    try:
        a = Step("a", input_model=Question, output_model=Answer, engine_name="mem_a", user_prompt="{{text}}")
        b = Step("b", input_model=Answer, output_model=Summary, engine_name="mem_b", user_prompt="{{answer}}")
        result = Chain("mem", steps=[a, b]).run([Question(text=f"q{i}") for i in range(5)], cache=False)
    finally:
        unregister_engine("mem_a")
        unregister_engine("mem_b")
    assert [r.row_id for r in result["b"]] == [str(i) for i in range(5)]
    assert [f["row_id"] for f in result.flattened] == [str(i) for i in range(5)]


def test_staged_run_resumes_at_the_stage_it_stopped(tmp_path, monkeypatch):
    import pytest

    from chainette.errors import ServerStartError

    monkeypatch.setenv("PATH", f"{STANDINS}{os.pathsep}{os.environ['PATH']}")
    register_engine(name="res_a", backend="vllm_api", model="org/res_a", startup_timeout=30)
    register_engine(
        name="res_b", backend="vllm_api", model="org/res_b", startup_timeout=30, extra_env={"STANDIN_VLLM_CRASH": "1"}
    )
    a = Step("a", input_model=Question, output_model=Answer, engine_name="res_a", user_prompt="{{text}}")
    b = Step("b", input_model=Answer, output_model=Summary, engine_name="res_b", user_prompt="{{answer}}")
    chain = Chain("resume-staged", steps=[a, b])
    inputs = [Question(text=f"q{i}") for i in range(7)]
    try:
        with pytest.raises(ServerStartError):
            chain.run(inputs, tmp_path, cache=False)
        assert len(list(read_records(tmp_path / "a"))) == 7  # stage 0 was committed
        register_engine(name="res_b", backend="vllm_api", model="org/res_b", startup_timeout=30)
        result = chain.run(inputs, tmp_path, cache=False, resume=True)
    finally:
        unregister_engine("res_a")
        unregister_engine("res_b")
    assert result.step_stats["a"].reached == 0  # nothing of stage 0 was requested again
    assert result.step_stats["b"].done == 7 and result.rows_in == 7
    assert len(list(read_records(tmp_path / "a"))) == 7
    assert sorted(r["row_id"] for r in read_records(tmp_path / "flattened")) == [str(i) for i in range(7)]


def test_persistent_engine_starts_up_front_and_never_forces_a_stage(tmp_path, monkeypatch):
    monkeypatch.setenv("PATH", f"{STANDINS}{os.pathsep}{os.environ['PATH']}")
    register_engine(name="keep", backend="vllm_api", model="org/keep", startup_timeout=30, lazy=False)
    register_engine(name="lazy1", backend="vllm_api", model="org/lazy1", startup_timeout=30)
    events = []
    unsubscribe = global_bus.subscribe(events.append)
    try:
        a = Step("a", input_model=Question, output_model=Answer, engine_name="lazy1", user_prompt="{{text}}")
        b = Step("b", input_model=Answer, output_model=Summary, engine_name="keep", user_prompt="{{answer}}")
        result = Chain("persist", steps=[a, b]).run([Question(text="x")], tmp_path, cache=False)
    finally:
        unsubscribe()
        unregister_engine("keep")
        unregister_engine("lazy1")
    assert result.error_count == 0
    starts = [e.engine for e in events if isinstance(e, ServerStarting)]
    assert starts == ["keep", "lazy1"]  # the persistent one first, before any row
    assert not (tmp_path / ".chainette" / "spill-0").exists()
