"""Integration: the real embedded llama.cpp server (SmolLM2-135M) started by the process manager."""

from __future__ import annotations

import asyncio
import os
import signal
import time

import pytest
from pydantic import BaseModel

from chainette.engine import process_manager as pm
from chainette.engine.broker import EngineBroker
from chainette.engine.factory import create_engine
from chainette.engine.protocol import CompletionRequest, SamplingParams
from chainette.engine.registry import EngineConfig
from chainette.errors import EngineError

pytestmark = pytest.mark.integration


class City(BaseModel):
    name: str
    country: str
    population: int


@pytest.fixture(scope="module")
def local_server(tmp_path_factory):
    cfg = EngineConfig(name="local-it", backend="local", model="smollm2", startup_timeout=60, max_retries=1)
    sp = pm.start_server(cfg, log_dir=tmp_path_factory.mktemp("run"))
    yield cfg, sp
    pm.stop_server(sp, grace=5)


def test_structured_output_through_local_client(local_server):
    cfg, sp = local_server
    assert sp.owned and pm.served_models(sp.host, sp.port) and "smollm2" in pm.served_models(sp.host, sp.port)
    req = CompletionRequest(
        messages=[{"role": "user", "content": "Describe the city of Lyon as JSON."}],
        json_schema=City.model_json_schema(),
        schema_name="City",
        sampling=SamplingParams(temperature=0, max_tokens=80, seed=1),
    )

    async def go():
        eng = create_engine(cfg, sp.endpoint)
        try:
            return await asyncio.gather(*(eng.complete(req) for _ in range(4)))
        finally:
            await eng.aclose()

    outs = asyncio.run(go())
    for out in outs:
        City.model_validate_json(out.text)  # the grammar makes it valid
        assert out.usage.completion_tokens > 0 and out.latency_s > 0


def test_server_killed_mid_run_gives_errors_not_a_hang(tmp_path):
    cfg = EngineConfig(
        name="local-kill", backend="local", model="smollm2", startup_timeout=60, max_retries=1, timeout=20
    )
    sp = pm.start_server(cfg, log_dir=tmp_path)
    req = CompletionRequest(
        messages=[{"role": "user", "content": "Write a long story about a dragon."}],
        sampling=SamplingParams(max_tokens=400),
    )

    async def go():
        eng = create_engine(cfg, sp.endpoint)
        eng.policy.base = eng.policy.max_delay = 0.05
        tasks = [asyncio.create_task(eng.complete(req)) for _ in range(6)]
        await asyncio.sleep(0.7)
        os.killpg(sp.pgid, signal.SIGKILL)
        t0 = time.monotonic()
        results = await asyncio.gather(*tasks, return_exceptions=True)
        await eng.aclose()
        return results, time.monotonic() - t0

    try:
        results, waited = asyncio.run(go())
    finally:
        pm.stop_server(sp, grace=2)
    assert waited < 10
    errors = [r for r in results if isinstance(r, BaseException)]
    assert errors and all(isinstance(e, EngineError) for e in errors)
    assert not pm.group_alive(sp.pgid or 0) if sp.pgid else True


def test_broker_starts_the_default_local_engine_once(tmp_path):
    with EngineBroker.acquire("local", log_dir=tmp_path) as a, EngineBroker.acquire("local") as b:
        assert a.endpoint == b.endpoint and EngineBroker.refcount("local") == 2
        out = asyncio.run(
            a.complete(
                CompletionRequest(
                    messages=[{"role": "user", "content": "Say hi."}], sampling=SamplingParams(max_tokens=8)
                )
            )
        )
        assert out.text
    assert (tmp_path / "servers" / "local.log").exists()
    assert "local" in EngineBroker.flush(force=True)
