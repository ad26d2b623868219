"""Managed-server kinds: a new kind is one registered description; a server that wants a key we
lack fails the start at once (not after ``startup_timeout``); keyed servers are probed with the key."""

from __future__ import annotations

import json
import sys
import time
from pathlib import Path

import pytest

from chainette.engine import process_manager as pm
from chainette.engine import server_state
from chainette.engine.backend_registry import BackendSpec, register_backend, unregister_backend
from chainette.engine.fake import FakeEngine
from chainette.engine.registry import EngineConfig
from chainette.engine.servers import ManagedServer
from chainette.engine.servers.pool import ServerPool
from chainette.errors import ServerStartError
from chainette.events import ServerStarting, bus


def assert_group_gone(pgid: int) -> None:
    deadline = time.monotonic() + 5
    while time.monotonic() < deadline and pm.group_alive(pgid):
        time.sleep(0.05)
    assert not pm.group_alive(pgid), f"process group {pgid} still has members"


# -- a new kind of server, added without touching the process manager -----------
class StaticFilesServer(ManagedServer):
    """``python -m http.server`` over a folder that holds the readiness answers as files."""

    kind = "static files"
    health_path = "/ready.txt"
    models_path = "/models.json"

    def __init__(self, folder: Path) -> None:
        self.folder = folder

    def argv(self, cfg, port, *, parent_pid=None):
        return [sys.executable, "-m", "http.server", str(port), "--bind", cfg.host, "--directory", str(self.folder)]

    def served_model_name(self, cfg):
        return f"static/{cfg.model}"


@pytest.fixture
def static_backend(tmp_path):
    folder = tmp_path / "site"
    folder.mkdir()
    (folder / "ready.txt").write_text("ok")
    (folder / "models.json").write_text(json.dumps({"data": [{"id": "static/m"}]}))
    register_backend(
        BackendSpec(
            "static_files_test", lambda cfg, endpoint: FakeEngine(name=cfg.name), server=StaticFilesServer(folder)
        )
    )
    yield
    unregister_backend("static_files_test")


def test_a_new_server_kind_is_one_registered_description(tmp_path, static_backend):
    cfg = EngineConfig(name="static", backend="static_files_test", model="m", startup_timeout=20)
    assert cfg.is_managed and cfg.resolved_endpoint() is None
    events = []
    unsub = bus.subscribe(events.append)
    try:
        sp = pm.start_server(cfg, log_dir=tmp_path / "run")
    finally:
        unsub()
    try:
        assert sp.owned and sp.model == "static/m" and sp.argv[1:3] == ["-m", "http.server"]
        assert sp.endpoint == f"http://127.0.0.1:{sp.port}/v1"
        assert pm.served_models(sp.host, sp.port, path="/models.json") == ["static/m"]
        assert any(isinstance(e, ServerStarting) for e in events)
        assert Path(sp.log_path) == tmp_path / "run" / "servers" / "static.log"
    finally:
        pm.stop_server(sp, grace=3)
    assert_group_gone(sp.popen.pid)

    pool = ServerPool()
    url = pool.start(cfg)
    (pooled,) = pool.servers()
    assert url == pooled.endpoint and pool.refcount("static") == 1
    pool.release("static")
    assert pool.flush(force=True) == ["static"]
    assert_group_gone(pooled.popen.pid)


# -- 401 during readiness: an immediate, explained start error --------------------
def vcfg(tmp_path: Path, **kw) -> EngineConfig:
    env = {"STANDIN_VLLM_RECORD": str(tmp_path / "argv.json"), **kw.pop("extra_env", {})}
    return EngineConfig(
        name="keyed", backend="vllm_api", model="Qwen/Qwen2.5-0.5B", startup_timeout=30, extra_env=env, **kw
    )


def test_server_demanding_a_key_from_the_environment_fails_fast_and_says_why(tmp_path, standin_path, monkeypatch):
    monkeypatch.setenv("VLLM_API_KEY", "sk-inherited-7777")  # the server inherits it; the engine has no key
    t0 = time.monotonic()
    with pytest.raises(ServerStartError) as info:
        pm.start_server(vcfg(tmp_path))
    assert time.monotonic() - t0 < 10  # not startup_timeout (30 s here, 600 s by default)
    message = str(info.value)
    assert "401 on /v1/models" in message and "VLLM_API_KEY" in message and "api_key" in message
    assert "sk-inherited-7777" not in message
    assert_group_gone(json.loads((tmp_path / "argv.json").read_text())["pgid"])


def test_server_given_another_key_by_flag_fails_fast(tmp_path, standin_path, monkeypatch):
    monkeypatch.delenv("VLLM_API_KEY", raising=False)
    t0 = time.monotonic()
    with pytest.raises(ServerStartError, match="--api-key") as info:
        pm.start_server(vcfg(tmp_path, extra_serve_flags=["--api-key", "sk-flag-1"]))
    assert time.monotonic() - t0 < 10 and "engine 'keyed' has none" in str(info.value)
    with pytest.raises(ServerStartError, match="rejects the `api_key`"):
        pm.start_server(vcfg(tmp_path, api_key="sk-mine", extra_serve_flags=["--api-key=sk-other"]))
    assert time.monotonic() - t0 < 20


def test_keyed_servers_are_probed_with_the_key_when_reused(tmp_path, standin_path):
    cfg = vcfg(tmp_path, api_key="sk-warm-55")
    info = server_state.start_detached(cfg)  # `chainette warmup`, on a free port
    try:
        pool = ServerPool()
        assert pool.start(cfg) == info.endpoint and pool.servers()[0].reused  # found through the state file
        pool.release("keyed")
        pool.flush(force=True)
        on_port = cfg.model_copy(update={"port": int(info.endpoint.rsplit(":", 1)[1].split("/")[0])})
        again = pm.start_server(on_port)  # already serving on the configured port
        assert again.reused and again.endpoint == info.endpoint
        keyless = on_port.model_copy(update={"api_key": None})
        with pytest.raises(ServerStartError, match="port .* answered 401 on /v1/models"):
            pm.start_server(keyless)
    finally:
        server_state.stop_all_recorded(grace=3)
    assert_group_gone(info.pgid)
