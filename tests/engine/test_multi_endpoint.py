"""An engine with several endpoints: least-outstanding routing, per-endpoint health, failover.

Each test serves fake OpenAI-compatible endpoints on 127.0.0.1 (tests/engine/_support.py)
and checks what each endpoint received, not only the outcome.
"""

from __future__ import annotations

import asyncio
import json
import socket
import time
from collections import Counter

import pytest
from pydantic import BaseModel

from chainette import Chain, SamplingParams, Step, register_engine
from chainette.engine.factory import create_engine
from chainette.engine.multi_endpoint import MultiEndpointEngine
from chainette.engine.protocol import CompletionRequest
from chainette.engine.registry import EngineConfig, unregister_engine
from chainette.errors import ConfigError, EngineHTTPError, EngineStoppedError

from ._support import chat_reply as reply
from ._support import fake_api, ok


def echo(seen):
    """Answer with the row's own text, so that every answer can be matched to its request."""
    return ok(reply(json.dumps({"label": seen.body["messages"][-1]["content"]})))


def slow(seconds: float):
    async def handler(seen):
        await asyncio.sleep(seconds)
        return echo(seen)

    return handler


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def chats(api) -> int:
    return sum(1 for s in api.seen if s.path.endswith("/chat/completions"))


def cfg(urls: list[str], **kw) -> EngineConfig:
    return EngineConfig(
        name="multi", backend="openai", model="m", api_key="sk-test", endpoints=[u + "/v1" for u in urls], **kw
    )


def request(i: int) -> CompletionRequest:
    return CompletionRequest(messages=[{"role": "user", "content": f"row {i}"}], row_id=str(i), step_id="s")


async def answer_all(engine, n: int) -> list[str]:
    out = await asyncio.gather(*(engine.complete(request(i)) for i in range(n)))
    return [json.loads(c.text)["label"] for c in out]


class In(BaseModel):
    text: str


class Out(BaseModel):
    label: str


# -- configuration ------------------------------------------------------------------------
def test_endpoints_build_a_multi_endpoint_engine_and_one_endpoint_does_not():
    multi = create_engine(cfg(["http://127.0.0.1:1", "http://127.0.0.1:2"]))
    assert isinstance(multi, MultiEndpointEngine)
    assert [e.url for e in multi.endpoints] == ["http://127.0.0.1:1/v1", "http://127.0.0.1:2/v1"]
    assert multi.max_in_flight == 2 * 256  # each endpoint has its own limit
    assert all(c.policy.max_retries == 0 for c in multi.clients)  # the engine retries, on other endpoints
    single = create_engine(cfg(["http://127.0.0.1:1"]))
    assert not isinstance(single, MultiEndpointEngine)
    assert multi.sampling_problems(SamplingParams(top_k=3))  # validation hooks answer as a client does


def test_endpoint_outside_endpoints_is_refused():
    with pytest.raises(ConfigError, match="not one of endpoints"):
        register_engine(
            name="bad-multi",
            backend="openai",
            model="m",
            endpoint="http://a/v1",
            endpoints=["http://b/v1", "http://c/v1"],
        )


# -- routing ------------------------------------------------------------------------------
def test_requests_spread_over_endpoints_and_each_is_answered_once():
    async def go():
        async with fake_api(slow(0.02)) as a, fake_api(slow(0.02)) as b, fake_api(slow(0.02)) as c:
            engine = create_engine(cfg([a.url, b.url, c.url], max_in_flight=8))
            labels = await answer_all(engine, 300)
            await engine.aclose()
            return labels, [chats(x) for x in (a, b, c)], [x.max_seen_in_flight for x in (a, b, c)]

    labels, counts, peaks = asyncio.run(go())
    assert sorted(labels) == sorted(f"row {i}" for i in range(300))
    assert sum(counts) == 300 and min(counts) >= 60, counts
    assert max(peaks) <= 8, peaks  # each endpoint's own in-flight limit holds


def test_a_slow_endpoint_gets_fewer_requests():
    async def go():
        async with fake_api(slow(0.01)) as fast1, fake_api(slow(0.01)) as fast2, fake_api(slow(0.3)) as lagging:
            engine = create_engine(cfg([fast1.url, fast2.url, lagging.url], max_in_flight=16))
            labels = await answer_all(engine, 400)
            await engine.aclose()
            return labels, chats(fast1), chats(fast2), chats(lagging)

    labels, f1, f2, lag = asyncio.run(go())
    assert len(set(labels)) == 400
    assert lag < min(f1, f2) / 2, (f1, f2, lag)


# -- failures -----------------------------------------------------------------------------
def test_a_dead_endpoint_is_taken_out_and_no_request_fails():
    dead = f"http://127.0.0.1:{free_port()}"

    async def go():
        async with fake_api(echo) as a, fake_api(echo) as b:
            engine = create_engine(cfg([a.url, dead, b.url], max_in_flight=8))
            labels = await answer_all(engine, 200)
            stats = engine.stats()
            await engine.aclose()
            return labels, stats

    labels, stats = asyncio.run(go())
    assert sorted(labels) == sorted(f"row {i}" for i in range(200))
    dead_stats = stats[1]
    assert not dead_stats["up"] and dead_stats["taken_out"] == 1
    assert dead_stats["requests"] <= 9  # the requests routed there before the first refusal, then probes


def test_requests_in_flight_on_an_endpoint_that_dies_go_to_the_others():
    async def go():
        async with fake_api(echo) as a, fake_api(slow(0.05)) as b:
            dying = fake_api(slow(0.5))
            c = await dying.__aenter__()
            engine = create_engine(cfg([a.url, b.url, c.url], max_in_flight=8, timeout=5))
            task = asyncio.ensure_future(answer_all(engine, 150))
            await asyncio.sleep(0.25)  # requests are in flight on the slow one; now it goes away
            in_flight_when_killed = c.in_flight
            await dying.__aexit__(None, None, None)
            labels = await task
            stats = engine.stats()
            await engine.aclose()
            return labels, in_flight_when_killed, stats

    labels, killed_in_flight, stats = asyncio.run(go())
    assert killed_in_flight > 0
    assert Counter(labels) == Counter(f"row {i}" for i in range(150))  # each answered once, none lost
    assert stats[2]["taken_out"] >= 1


def test_a_streak_of_5xx_takes_an_endpoint_out_and_a_probe_brings_it_back():
    healthy = {"on": False}

    def flaky(seen):
        return echo(seen) if healthy["on"] else (503, {"error": {"message": "overloaded"}}, {})

    async def go():
        async with fake_api(echo) as a, fake_api(flaky) as b:
            engine = create_engine(cfg([a.url, b.url], max_in_flight=4))
            first = await answer_all(engine, 60)
            out_after_first = not engine.endpoints[1].up
            healthy["on"] = True
            await asyncio.sleep(1.1)  # past the first probe delay
            second = await answer_all(engine, 60)
            back = engine.endpoints[1].up
            served_after = chats(b)
            await engine.aclose()
            return first, second, out_after_first, back, served_after

    first, second, was_out, back, b_chats = asyncio.run(go())
    assert len(set(first)) == 60 and len(set(second)) == 60
    assert was_out and back, (was_out, back)
    assert b_chats > 3 + 1  # the failures, a probe, then regular traffic again


def test_a_4xx_is_not_retried_elsewhere():
    async def go():
        async with (
            fake_api(lambda s: (400, {"error": {"message": "bad request"}}, {})) as a,
            fake_api(lambda s: (400, {"error": {"message": "bad request"}}, {})) as b,
        ):
            engine = create_engine(cfg([a.url, b.url]))
            with pytest.raises(EngineHTTPError) as info:
                await engine.complete(request(0))
            await engine.aclose()
            return info.value, chats(a) + chats(b)

    exc, sent = asyncio.run(go())
    assert sent == 1 and exc.attempts == 1 and exc.row_id == "0"


def test_401_on_one_endpoint_stops_the_engine():
    async def go():
        async with (
            fake_api(lambda s: (401, {"error": {"message": "Incorrect API key", "code": "invalid_api_key"}}, {})) as a,
            fake_api(lambda s: (401, {"error": {"message": "Incorrect API key", "code": "invalid_api_key"}}, {})) as b,
        ):
            engine = create_engine(cfg([a.url, b.url]))
            results = await asyncio.gather(*(engine.complete(request(i)) for i in range(50)), return_exceptions=True)
            await engine.aclose()
            return results, chats(a) + chats(b)

    results, sent = asyncio.run(go())
    assert all(isinstance(r, Exception) and r.stop is not None for r in results)
    assert sent <= 2, sent  # one probe request per endpoint, then nothing


def test_all_endpoints_down_stops_the_run_resumable(tmp_path):
    name = "multi-all-down"
    register_engine(
        name=name,
        backend="openai",
        model="m",
        api_key="sk-test",
        max_retries=3,
        endpoints=[f"http://127.0.0.1:{free_port()}/v1" for _ in range(3)],
    )
    try:
        step = Step("label", input_model=In, output_model=Out, engine_name=name, user_prompt="{{ text }}")
        t0 = time.monotonic()
        result = Chain("down", steps=[step]).run([{"text": f"r{i}"} for i in range(100)], tmp_path / "run")
        assert time.monotonic() - t0 < 60
        assert result.stopped_by == "engine" and result.interrupted
        assert result.failed_rows < 10
    finally:
        unregister_engine(name)


def test_a_chain_over_three_endpoints_with_one_killed_completes_every_row_once(tmp_path):
    name = "multi-chain"

    async def go():
        # the first and the dying endpoint answer alike, so the dying one takes ~half the rows and is
        # killed mid-run (with an instant first endpoint it got only 50-80 of 600: a race)
        async with fake_api(slow(0.02)) as a, fake_api(slow(0.2)) as b:
            dying = fake_api(slow(0.02))
            c = await dying.__aenter__()
            register_engine(
                name=name,
                backend="openai",
                model="m",
                api_key="sk-test",
                max_in_flight=16,
                endpoints=[a.url + "/v1", b.url + "/v1", c.url + "/v1"],
            )
            step = Step("label", input_model=In, output_model=Out, engine_name=name, user_prompt="{{ text }}")
            run = asyncio.ensure_future(
                Chain("three", steps=[step]).run_async(
                    [{"text": f"row {i}"} for i in range(600)], tmp_path / "run", cache=False
                )
            )
            while chats(c) < 50 and not run.done():
                await asyncio.sleep(0.01)
            assert not run.done(), f"the run ended before the third endpoint was killed ({chats(c)} requests to it)"
            await dying.__aexit__(None, None, None)
            return await run

    try:
        result = asyncio.run(go())
    finally:
        unregister_engine(name)
    assert not result.interrupted and result.failed_rows == 0
    lines = [json.loads(x) for x in (tmp_path / "run" / "flattened" / "000.jsonl").read_text().splitlines()]
    assert Counter(r["row_id"] for r in lines) == Counter(str(i) for i in range(600))
    assert all(r["label.label"] == f"row {r['row_id']}" for r in lines)
    assert not (tmp_path / "run" / "errors").exists() or not any((tmp_path / "run" / "errors").iterdir())


def test_engine_stopped_error_is_raised_before_sending_once_stopped():
    async def go():
        engine = create_engine(cfg(["http://127.0.0.1:1", "http://127.0.0.1:2"]))
        engine.health.stopped = EngineStoppedError("stopped", kind="auth", engine="multi")
        with pytest.raises(EngineStoppedError):
            await engine.complete(request(0))

    asyncio.run(go())


# -- managed replicas -----------------------------------------------------------------------
def test_managed_replicas_start_one_server_per_gpu_share_and_share_the_rows(tmp_path, monkeypatch):
    import os
    import stat
    import sys

    from ._support import STANDINS

    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    wrapper = bin_dir / "vllm"  # notes each start's GPUs, then runs the stand-in vllm
    wrapper.write_text(
        f'#!/bin/sh\necho "$CUDA_VISIBLE_DEVICES" >> "{tmp_path}/starts.log"\n'
        f'exec "{sys.executable}" "{STANDINS / "vllm"}" "$@"\n'
    )
    wrapper.chmod(wrapper.stat().st_mode | stat.S_IEXEC)
    monkeypatch.setenv("PATH", f"{bin_dir}{os.pathsep}{os.environ.get('PATH', '')}")
    name = "replicated"
    register_engine(
        name=name,
        backend="vllm_api",
        model="org/standin",
        replicas=2,
        gpu_ids=[0, 1, 2, 3],
        max_in_flight=4,
        startup_timeout=60,
    )
    try:
        step = Step("label", input_model=In, output_model=Out, engine_name=name, user_prompt="{{ text }}")
        result = Chain("replicas", steps=[step]).run(
            [{"text": f"r{i}"} for i in range(120)], tmp_path / "run", cache=False
        )
    finally:
        unregister_engine(name)
    assert not result.interrupted and result.failed_rows == 0
    assert sorted((tmp_path / "starts.log").read_text().split()) == ["0,1", "2,3"]
    served = [
        (tmp_path / "run" / "servers" / f"{name}-r{i}.log").read_text().count("POST /v1/chat/completions")
        for i in range(2)
    ]
    assert sum(served) == 120 and min(served) >= 20, served


def test_replicas_are_for_managed_servers_and_split_the_gpus_evenly():
    with pytest.raises(ConfigError, match="list them in endpoints"):
        register_engine(name="bad-rep", backend="vllm_api", model="m", replicas=2, endpoint="http://a/v1")
    with pytest.raises(ConfigError, match="equal shares"):
        register_engine(name="bad-rep", backend="vllm_api", model="m", replicas=2, gpu_ids=[0, 1, 2])


def test_waiting_requests_are_served_first_come_first_served():
    """A request that waited for a slot is not overtaken again and again by newcomers: otherwise one
    early row can wait for most of the run and hold back the run's journal (and its memory)."""
    order: list[int] = []

    async def go():
        async with fake_api(slow(0.002)) as a, fake_api(slow(0.002)) as b:
            engine = create_engine(cfg([a.url, b.url], max_in_flight=2))
            feed = iter(range(400))

            async def worker() -> None:  # the executor's pattern: a finished row's worker asks again at once
                for i in feed:
                    await engine.complete(request(i))
                    order.append(i)

            await asyncio.gather(*(worker() for _ in range(12)))
            await engine.aclose()

    asyncio.run(go())
    lateness = max(rank - i for rank, i in enumerate(order))
    assert sorted(order) == list(range(400)) and lateness <= 24, lateness
