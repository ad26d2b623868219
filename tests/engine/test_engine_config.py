"""Engine configuration: unknown fields, removed backends, the spec's env forms."""

from __future__ import annotations

import pytest

from chainette.engine.registry import load_engines_file, register_engine, unregister_engine
from chainette.errors import ConfigError


def test_unknown_field_and_removed_backend_errors_name_the_problem():
    with pytest.raises(ConfigError, match="unknown field 'api_kee'"):
        register_engine(name="x", backend="openai", model="m", api_kee="sk-x")
    with pytest.raises(ConfigError, match="vllm_api"):
        register_engine(name="x", backend="vllm_local", model="m")
    unregister_engine("x")


def test_spec_env_forms_become_extra_env(tmp_path):
    f = tmp_path / "engines.yml"
    f.write_text(
        "engines:\n"
        "  - name: q\n    backend: vllm_api\n    model: m\n"
        "    extra_serve_flags: ['--enforce-eager', {env: {CUDA_VISIBLE_DEVICES: '0,1'}}]\n"
        "  - name: r\n    backend: vllm_api\n    model: m\n    env: {HF_HOME: /data}\n"
    )
    q, r = load_engines_file(f, register=False)
    assert q.extra_serve_flags == ["--enforce-eager"] and q.extra_env == {"CUDA_VISIBLE_DEVICES": "0,1"}
    assert r.extra_env == {"HF_HOME": "/data"}
