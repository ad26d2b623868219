"""One event bus per run (issue #10 item 4): a user's bus gets every event of its run,
engine retries and server events included, and nothing from another run in the process."""

from __future__ import annotations

import threading

from pydantic import BaseModel

from chainette import Chain, EventBus, SamplingParams, Step, register_engine
from chainette.engine.registry import unregister_engine
from chainette.events import EngineRetry, RunFinished, RunStarted, ServerReady, ServerStarting
from chainette.events import bus as global_bus
from tests.engine._support import STANDINS, threaded_api
from tests.engine.test_fail_fast import reply


class In(BaseModel):
    text: str


class Out(BaseModel):
    label: str


def chain(name: str, engine: str) -> Chain:
    return Chain(
        name,
        steps=[
            Step(
                "label",
                input_model=In,
                output_model=Out,
                engine_name=engine,
                sampling=SamplingParams(max_tokens=16),
                user_prompt="{{ text }}",
            )
        ],
    )


def flaky(seen):
    """Every row's first attempt is a 503, the retry succeeds."""
    text = seen.body["messages"][-1]["content"]
    flaky.count[text] = flaky.count.get(text, 0) + 1
    return (503, {"error": {"message": "busy"}}, {}) if flaky.count[text] == 1 else (200, reply('{"label": "x"}'), {})


def test_two_concurrent_runs_each_see_only_their_own_events():
    flaky.count = {}
    leaked = []
    unsubscribe = global_bus.subscribe(leaked.append)
    with threaded_api(flaky) as api:
        buses, results = {}, {}
        for name in ("a", "b"):
            register_engine(
                name=f"bus-{name}",
                backend="openai",
                model="m",
                endpoint=api.url + "/v1",
                api_key="sk-test",
                max_retries=2,
            )
            buses[name] = (EventBus(), [])
            buses[name][0].subscribe(buses[name][1].append)

        def go(name):
            rows = [{"text": f"{name}-{i}"} for i in range(5)]
            results[name] = chain(f"run-{name}", f"bus-{name}").run(rows, events=buses[name][0], cache=False)

        threads = [threading.Thread(target=go, args=(n,)) for n in buses]
        for t in threads:
            t.start()
        for t in threads:
            t.join(60)
    unsubscribe()
    for name in ("a", "b"):
        unregister_engine(f"bus-{name}")
    for name, (_, events) in buses.items():
        other = "b" if name == "a" else "a"
        started = [e for e in events if isinstance(e, RunStarted)]
        assert [e.chain_name for e in started] == [f"run-{name}"]
        retries = [e for e in events if isinstance(e, EngineRetry)]
        assert len(retries) == 5 and {e.engine for e in retries} == {f"bus-{name}"}
        assert not any(getattr(e, "engine", None) == f"bus-{other}" for e in events)
        assert sum(isinstance(e, RunFinished) for e in events) == 1
    assert leaked == []  # runs with a bus of their own publish nothing on the process-wide bus


def test_server_events_reach_the_runs_bus(tmp_path, monkeypatch):
    import os

    monkeypatch.setenv("PATH", f"{STANDINS}{os.pathsep}{os.environ.get('PATH', '')}")
    register_engine(name="bus-vllm", backend="vllm_api", model="Qwen/Qwen2.5-0.5B", startup_timeout=20)
    mine, events = EventBus(), []
    mine.subscribe(events.append)
    try:
        chain("served", "bus-vllm").run([{"text": "x"}], events=mine, cache=False)
    finally:
        unregister_engine("bus-vllm")
    kinds = [type(e) for e in events]
    assert ServerStarting in kinds and ServerReady in kinds
