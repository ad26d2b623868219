"""Server manager, pool, broker and warmup state against our stand-in ``vllm`` executable."""

from __future__ import annotations

import asyncio
import json
import shutil
import threading
import time
from pathlib import Path

import pytest
from pydantic import BaseModel

from chainette.engine import process_manager as pm
from chainette.engine import server_state
from chainette.engine.broker import EngineBroker
from chainette.engine.engine_pool import EnginePool
from chainette.engine.factory import create_engine
from chainette.engine.protocol import CompletionRequest
from chainette.engine.registry import EngineConfig, register_engine, unregister_engine
from chainette.errors import ConfigError, ServerStartError
from chainette.utils.events import ServerReady, ServerStarting, bus


class Out(BaseModel):
    answer: str
    n: int


def vcfg(tmp_path: Path, name: str = "qwen", **kw) -> EngineConfig:
    env = {"STANDIN_VLLM_RECORD": str(tmp_path / f"{name}-argv.json"), **kw.pop("extra_env", {})}
    return EngineConfig(
        name=name, backend="vllm_api", model="Qwen/Qwen2.5-0.5B", startup_timeout=20, extra_env=env, **kw
    )


def record(tmp_path: Path, name: str = "qwen") -> dict:
    return json.loads((tmp_path / f"{name}-argv.json").read_text())


def assert_group_gone(pgid: int) -> None:
    deadline = time.monotonic() + 5
    while time.monotonic() < deadline and pm.group_alive(pgid):
        time.sleep(0.05)
    assert not pm.group_alive(pgid), f"process group {pgid} still has members"


def test_flags_env_readiness_and_log(tmp_path, standin_path):
    cfg = vcfg(
        tmp_path,
        gpu_ids=[2, 3],
        dtype="bfloat16",
        gpu_memory_utilization=0.85,
        max_model_len=4096,
        reasoning_parser="deepseek_r1",
        extra_serve_flags=["--enforce-eager", "--seed=3"],
        extra_env={"STANDIN_VLLM_DELAY": "0.5", "STANDIN_EXTRA": "yes"},
    )
    events = []
    unsub = bus.subscribe(events.append)
    try:
        sp = pm.start_server(cfg, log_dir=tmp_path / "run")
    finally:
        unsub()
    try:
        rec = record(tmp_path)
        p = rec["parsed"]
        assert rec["argv"][1:3] == ["serve", "Qwen/Qwen2.5-0.5B"]
        assert p["host"] == "127.0.0.1" and p["port"] == sp.port and p["dtype"] == "bfloat16"
        assert p["gpu_memory_utilization"] == 0.85 and p["max_model_len"] == 4096
        assert p["tensor_parallel_size"] == 2  # from two gpu_ids
        assert p["reasoning_parser"] == "deepseek_r1" and "--enable-reasoning" not in rec["argv"]
        assert rec["unknown"] == ["--enforce-eager", "--seed=3"]  # verbatim, last
        assert rec["env"]["CUDA_VISIBLE_DEVICES"] == "2,3" and rec["env"]["STANDIN_EXTRA"] == "yes"
        assert rec["pgid"] == rec["pid"] == sp.pgid  # own process group
        assert sp.endpoint == f"http://127.0.0.1:{sp.port}/v1"
        assert Path(sp.log_path) == tmp_path / "run" / "servers" / "qwen.log"
        assert "Application startup complete" in Path(sp.log_path).read_text()
        kinds = [type(e) for e in events]
        assert ServerStarting in kinds and ServerReady in kinds

        async def ask():
            eng = create_engine(cfg, sp.endpoint)
            out = await eng.complete(
                CompletionRequest(messages=[{"role": "user", "content": "q"}], json_schema=Out.model_json_schema())
            )
            await eng.aclose()
            return out

        assert Out.model_validate_json(asyncio.run(ask()).text).n == 1
    finally:
        pm.stop_server(sp, grace=3)
    assert_group_gone(rec["pgid"])


def test_group_kill_takes_children_and_escalates_to_sigkill(tmp_path, standin_path):
    cfg = vcfg(tmp_path, extra_env={"STANDIN_VLLM_CHILD": "1", "STANDIN_VLLM_IGNORE_TERM": "1"})
    sp = pm.start_server(cfg)
    pgid = sp.pgid
    assert pgid is not None
    t0 = time.monotonic()
    pm.stop_server(sp, grace=0.5)
    assert time.monotonic() - t0 < 5
    assert_group_gone(pgid)


def test_crash_during_startup_reports_log_tail(tmp_path, standin_path):
    cfg = vcfg(tmp_path, extra_env={"STANDIN_VLLM_CRASH": "1", "STANDIN_VLLM_DELAY": "0.2"})
    with pytest.raises(ServerStartError) as info:
        pm.start_server(cfg, log_dir=tmp_path)
    assert "CUDA out of memory" in info.value.log_tail and "exited with code 1" in str(info.value)
    assert "CUDA out of memory" in str(info.value)
    assert_group_gone(record(tmp_path)["pgid"])


def test_startup_timeout_kills_and_reports(tmp_path, standin_path):
    cfg = vcfg(tmp_path, extra_env={"STANDIN_VLLM_DELAY": "30"}).model_copy(update={"startup_timeout": 1.0})
    t0 = time.monotonic()
    with pytest.raises(ServerStartError, match="not ready after 1s") as info:
        pm.start_server(cfg)
    assert time.monotonic() - t0 < 8
    assert "stand-in vllm starting" in info.value.log_tail
    assert_group_gone(record(tmp_path)["pgid"])


def test_missing_vllm_says_how_to_install(tmp_path, monkeypatch):
    monkeypatch.setattr(shutil, "which", lambda name: None)
    with pytest.raises(ServerStartError, match="pip install vllm") as info:
        pm.start_server(vcfg(tmp_path))
    assert "endpoint" in str(info.value)


def test_enable_reasoning_needs_a_parser_and_old_versions_get_the_flag(tmp_path, standin_path):
    with pytest.raises(ConfigError, match="reasoning_parser"):
        pm.build_command(vcfg(tmp_path, enable_reasoning=True), 8000)
    argv = pm.build_command(
        vcfg(tmp_path, enable_reasoning=True, reasoning_parser="qwen3", server_version="0.9.1"), 8000
    )
    assert argv[-3:] == ["--enable-reasoning", "--reasoning-parser", "qwen3"]


def test_reuse_of_server_already_serving_the_model(tmp_path, standin_path):
    first = pm.start_server(vcfg(tmp_path, port=pm.free_port()))
    try:
        again = pm.start_server(vcfg(tmp_path, port=first.port))
        assert again.reused and not again.owned and again.endpoint == first.endpoint
        pm.stop_server(again)  # a reused server is never stopped by us
        assert first.popen.poll() is None
        other = vcfg(tmp_path, port=first.port).model_copy(update={"model": "other/model"})
        with pytest.raises(ServerStartError, match="already used"):
            pm.start_server(other)
    finally:
        pm.stop_server(first, grace=3)


def test_api_key_goes_through_env_not_argv(tmp_path, standin_path):
    cfg = vcfg(tmp_path, api_key="sk-vllm-SECRET-4242")
    sp = pm.start_server(cfg, log_dir=tmp_path)
    try:
        rec = record(tmp_path)
        assert "sk-vllm-SECRET-4242" not in " ".join(rec["argv"])
        assert rec["env"]["VLLM_API_KEY"] == "sk-vllm-SECRET-4242"
        assert "sk-vllm-SECRET-4242" not in Path(sp.log_path).read_text()

        async def ask():
            eng = create_engine(cfg, sp.endpoint)
            out = await eng.complete(CompletionRequest(messages=[{"role": "user", "content": "q"}]))
            await eng.aclose()
            return out

        assert asyncio.run(ask()).text == "stand-in reply"
    finally:
        pm.stop_server(sp, grace=3)


def test_pool_starts_once_under_concurrency_and_refcounts(tmp_path, standin_path):
    pool = EnginePool(idle_timeout=0.3)
    cfg = vcfg(tmp_path, extra_env={"STANDIN_VLLM_DELAY": "0.3"})
    urls = []
    threads = [threading.Thread(target=lambda: urls.append(pool.start(cfg))) for _ in range(6)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert len(set(urls)) == 1 and pool.refcount("qwen") == 6
    (sp,) = pool.servers()
    pgid = sp.pgid
    for _ in range(6):
        pool.release("qwen")
    assert pool.refcount("qwen") == 0 and pool.servers()  # still up while idle
    time.sleep(0.8)  # idle eviction timer fires
    assert pool.servers() == []
    assert_group_gone(pgid)


def test_pool_persistent_servers_survive_flush_until_forced(tmp_path, standin_path):
    pool = EnginePool(idle_timeout=0.1)
    cfg = vcfg(tmp_path, lazy=False)
    pool.start(cfg)
    pool.release("qwen")
    time.sleep(0.3)
    assert pool.flush() == [] and pool.servers()
    pool.start(cfg)  # reused, not restarted
    assert pool.servers()[0].popen is not None
    assert pool.flush(force=True) == []  # still referenced
    pool.release("qwen")
    pgid = pool.servers()[0].pgid
    assert pool.flush(force=True) == ["qwen"]
    assert_group_gone(pgid)


def test_pool_restarts_a_dead_server(tmp_path, standin_path):
    pool = EnginePool()
    cfg = vcfg(tmp_path)
    pool.start(cfg)
    sp = pool.servers()[0]
    pm.stop_server(sp, grace=2, announce=False)
    url = pool.start(cfg)
    assert pool.servers()[0] is not sp and url.startswith("http://127.0.0.1:")
    for _ in range(2):
        pool.release("qwen")
    pool.flush(force=True)


def test_broker_acquire_and_unmanaged_endpoints(tmp_path, standin_path):
    register_engine(vcfg(tmp_path, name="brk"))
    try:
        with EngineBroker.acquire("brk", log_dir=tmp_path) as eng:
            assert EngineBroker.refcount("brk") == 1
            out = asyncio.run(eng.complete(CompletionRequest(messages=[{"role": "user", "content": "hi"}])))
            assert out.text == "stand-in reply"
        assert EngineBroker.refcount("brk") == 0
        assert "brk" in EngineBroker.flush(force=True)
    finally:
        unregister_engine("brk")
    remote = EngineConfig(name="r", backend="vllm_api", model="m", endpoint="http://gpu-box:8000/v1/")
    assert EngineBroker.start(remote) == "http://gpu-box:8000/v1"
    EngineBroker.release("r")  # no-op
    assert EngineBroker.start(EngineConfig(name="o", backend="ollama_api", model="m")) == "http://localhost:11434"


def test_warmup_state_detached_server_is_recorded_reused_and_stopped(tmp_path, standin_path):
    cfg = vcfg(tmp_path, name="warm")
    info = server_state.start_detached(cfg)
    assert info.pid and info.pgid
    state = json.loads(server_state.state_file().read_text())
    assert state["warm"]["endpoint"] == info.endpoint
    assert [i.name for i in server_state.list_running()] == ["warm"]
    assert server_state.start_detached(cfg).pid == info.pid  # not started twice
    pool = EnginePool()
    assert pool.start(cfg) == info.endpoint and pool.servers()[0].reused  # the broker reuses it
    pool.release("warm")
    assert pool.flush(force=True) == ["warm"]
    assert pm.group_alive(info.pgid)  # ...but never stops it
    assert server_state.stop_all_recorded(grace=3) == ["warm"]
    assert_group_gone(info.pgid)
    assert server_state.list_running() == []


def test_state_drops_dead_entries(tmp_path):
    server_state.record(
        server_state.ServerInfo(
            name="ghost", model="m", endpoint="http://127.0.0.1:1/v1", pid=2**22 - 3, pgid=2**22 - 3, log_path=None
        )
    )
    assert server_state.list_running() == []
    assert "ghost" not in json.loads(server_state.state_file().read_text())
