"""``vllm serve``: the managed server of backend ``vllm_api`` when no ``endpoint`` is set.

argv: ``vllm serve <model> --host H --port P [--dtype D] [--gpu-memory-utilization F]
[--max-model-len N] [--tensor-parallel-size N] [--enable-reasoning] [--reasoning-parser P]
<extra_serve_flags verbatim>``. The engine's API key reaches the server as ``VLLM_API_KEY``
in its environment (never in argv, so never in the log); vLLM then demands
``Authorization: Bearer <key>`` on every ``/v1`` path. The tests' stand-in executable
(``tests/standins/vllm``, put first on ``PATH``) is started through this same description.
"""

from __future__ import annotations

import os
import shutil
from typing import TYPE_CHECKING

from chainette.engine.servers.base import ManagedServer
from chainette.errors import ConfigError, ServerStartError

if TYPE_CHECKING:
    from chainette.engine.registry import EngineConfig

API_KEY_VARIABLE = "VLLM_API_KEY"
ENABLE_REASONING_REMOVED_IN = (0, 10)  # deprecated in 0.9; since 0.10 the parser alone enables it


class VLLMServer(ManagedServer):
    """``vllm serve <model>`` (vLLM's OpenAI-compatible server)."""

    kind = "vllm"

    def argv(self, cfg: EngineConfig, port: int, *, parent_pid: int | None = None) -> list[str]:
        """``parent_pid`` is not used: ``vllm serve`` cannot watch its starter."""
        exe = shutil.which("vllm")
        if exe is None:
            raise ServerStartError(
                f"engine '{cfg.name}': the `vllm` executable is not on PATH. Install it with "
                "`pip install vllm` (on a machine with a GPU), or run the server elsewhere and set "
                f"`endpoint:` for engine '{cfg.name}' (e.g. http://host:8000/v1).",
                engine=cfg.name,
            )
        argv = [exe, "serve", cfg.model, "--host", cfg.host, "--port", str(port)]
        if cfg.dtype:
            argv += ["--dtype", cfg.dtype]
        if cfg.gpu_memory_utilization is not None:
            argv += ["--gpu-memory-utilization", str(cfg.gpu_memory_utilization)]
        if cfg.max_model_len is not None:
            argv += ["--max-model-len", str(cfg.max_model_len)]
        tp = cfg.tensor_parallel_size or (len(cfg.gpu_ids) if cfg.gpu_ids and len(cfg.gpu_ids) > 1 else None)
        if tp:
            argv += ["--tensor-parallel-size", str(tp)]
        extra = list(cfg.extra_serve_flags)
        return argv + _reasoning_flags(cfg, extra) + extra

    def env(self, cfg: EngineConfig) -> dict[str, str]:
        env = super().env(cfg)
        key = cfg.resolved_api_key()
        if key:
            env[API_KEY_VARIABLE] = key  # via the environment: never in argv or the log
        return env

    def served_model_name(self, cfg: EngineConfig) -> str:
        from chainette.engine.backends.vllm import served_model_name

        return served_model_name(cfg)

    def api_key(self, cfg: EngineConfig) -> str | None:
        return cfg.resolved_api_key()

    def unauthorized_hint(self, cfg: EngineConfig) -> str:
        if cfg.resolved_api_key() is not None:
            return (
                f"it rejects the `api_key` of engine '{cfg.name}': the server was given another key "
                f"(check --api-key in `extra_serve_flags` and {API_KEY_VARIABLE} in `extra_env`)"
            )
        if any(f == "--api-key" or f.startswith("--api-key=") for f in cfg.extra_serve_flags):
            cause = "`extra_serve_flags` passes --api-key"
        elif API_KEY_VARIABLE in cfg.extra_env:
            cause = f"{API_KEY_VARIABLE} is set in `extra_env`"
        elif API_KEY_VARIABLE in os.environ:
            cause = f"{API_KEY_VARIABLE} is set in this environment and the server inherits it"
        else:
            cause = "the server was configured with a key"
        return (
            f"it demands an API key ({cause}) but engine '{cfg.name}' has none. Set `api_key:` "
            f"(or `api_key_env: {API_KEY_VARIABLE}`) for engine '{cfg.name}', or unset {API_KEY_VARIABLE}"
        )


def _reasoning_flags(cfg: EngineConfig, extra: list[str]) -> list[str]:
    """``--reasoning-parser`` (and, for servers older than 0.10, ``--enable-reasoning``)."""
    if not (cfg.enable_reasoning or cfg.reasoning_parser):
        return []
    if any(f.startswith("--reasoning-parser") for f in extra):
        return []  # the user's own flag, passed verbatim
    if not cfg.reasoning_parser:
        raise ConfigError(
            f"engine '{cfg.name}': enable_reasoning needs reasoning_parser "
            "(e.g. deepseek_r1, qwen3; see `vllm serve --help`)",
            engine=cfg.name,
        )
    from chainette.engine.backends.vllm import parse_version

    version = parse_version(cfg.server_version)
    old = version is not None and version < ENABLE_REASONING_REMOVED_IN
    return (["--enable-reasoning"] if old else []) + ["--reasoning-parser", cfg.reasoning_parser]
