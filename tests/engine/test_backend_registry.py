"""The backend registry: every backend in one table, the fake among them, unknown names refused."""

from __future__ import annotations

import re
from pathlib import Path
from typing import get_args

import pytest

from chainette.engine.backend_registry import (
    BackendSpec,
    backend_names,
    backend_of,
    backend_spec,
    register_backend,
    unregister_backend,
)
from chainette.engine.broker import EngineBroker
from chainette.engine.factory import create_engine
from chainette.engine.fake import FakeEngine
from chainette.engine.registry import Backend, EngineConfig, load_engines_file, register_engine
from chainette.engine.servers import LlamaCppServer, VLLMServer, managed_server
from chainette.errors import ConfigError

PACKAGE = Path(__file__).resolve().parents[2] / "chainette"


def test_every_builtin_backend_is_registered():
    assert set(get_args(Backend)) <= set(backend_names())
    for name in get_args(Backend):
        spec = backend_spec(name)
        assert spec.name == name and callable(spec.create_client)
    assert isinstance(backend_spec("vllm_api").managed_server(), VLLMServer)
    assert isinstance(backend_spec("local").managed_server(), LlamaCppServer)
    assert all(backend_spec(n).server is None for n in ("openai", "ollama_api", "fake"))


def test_unknown_backend_is_a_config_error_naming_the_known_ones(tmp_path):
    with pytest.raises(ConfigError, match=r"unknown backend 'nope' \(registered: .*vllm_api"):
        backend_spec("nope")
    with pytest.raises(ConfigError, match="unknown backend 'nope'"):
        register_engine(name="x", backend="nope", model="m")
    f = tmp_path / "engines.yml"
    f.write_text("engines:\n  - {name: y, backend: nope}\n")
    with pytest.raises(ConfigError, match=r"engines\[0\].*unknown backend 'nope'"):
        load_engines_file(f, register=False)
    ghost = EngineConfig.model_construct(name="ghost", backend="nope")  # bypasses validation
    with pytest.raises(ConfigError, match="engine 'ghost': unknown backend 'nope'"):
        backend_of(ghost)


def test_fake_is_a_registered_backend_like_the_others():
    cfg = EngineConfig(name="f", backend="fake", max_in_flight=7)
    spec = backend_of(cfg)
    assert spec.in_process and not spec.cacheable and not cfg.is_managed
    engine = create_engine(cfg)
    assert isinstance(engine, FakeEngine) and engine.name == "f" and engine.max_in_flight == 7
    assert EngineBroker.start(cfg) == ""  # nothing to start, no endpoint
    with pytest.raises(ConfigError, match="backend 'fake' has no managed server"):
        managed_server(cfg)


def test_managed_defaults_and_keys_come_from_the_table(monkeypatch):
    monkeypatch.delenv("OPENAI_BASE_URL", raising=False)
    monkeypatch.setenv("OPENAI_API_KEY", "sk-from-env")
    gpt = EngineConfig(name="g", backend="openai", model="m")
    assert gpt.resolved_endpoint() == "https://api.openai.com/v1" and gpt.resolved_api_key() == "sk-from-env"
    assert not gpt.is_managed and all(backend_spec(n).cacheable for n in ("openai", "vllm_api", "local"))
    assert EngineConfig(name="o", backend="ollama_api").resolved_endpoint() == "http://localhost:11434"
    vllm = EngineConfig(name="v", backend="vllm_api", model="m")
    assert vllm.is_managed and vllm.resolved_endpoint() is None and vllm.resolved_api_key() is None
    assert not vllm.model_copy(update={"endpoint": "http://gpu:8000/v1"}).is_managed
    assert EngineConfig(name="l", backend="local").is_managed


def test_a_registered_backend_is_accepted_by_engine_configs():
    register_backend(BackendSpec("echo_for_test", "chainette.engine.fake:FakeEngine.from_config"))
    try:
        cfg = EngineConfig(name="e", backend="echo_for_test")
        assert isinstance(create_engine(cfg), FakeEngine) and not cfg.is_managed
    finally:
        unregister_backend("echo_for_test")
    with pytest.raises(ConfigError, match="unknown backend"):
        register_engine(name="e", backend="echo_for_test")


def test_no_backend_name_comparisons_outside_the_registry():
    quoted = r"""["'][a-z_]+["']"""
    pattern = re.compile(
        rf"backend\s*(==|!=)\s*{quoted}|{quoted}\s*(==|!=)\s*\w*\.?backend\b|backend\s+(not\s+)?in\s*[(\[{{]\s*{quoted}"
    )
    offenders = []
    for path in PACKAGE.rglob("*.py"):
        if path.name == "backend_registry.py":
            continue
        for n, line in enumerate(path.read_text().splitlines(), 1):
            if pattern.search(line):
                offenders.append(f"{path.relative_to(PACKAGE)}:{n}: {line.strip()}")
    assert not offenders, "ask chainette.engine.backend_registry.backend_of(cfg) instead:\n" + "\n".join(offenders)
