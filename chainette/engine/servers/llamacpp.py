"""The embedded llama.cpp server: the managed server of backend ``local``.

argv: ``<this python> -m chainette.engine.local_server --model <gguf> --host H --port P
--alias <name> --n-parallel N --threads T --ctx C [--parent-pid PID]``. With
``--parent-pid`` the server exits by itself once that process is gone, so a ``kill -9``
of the run leaves no server behind. The model name is resolved to a GGUF file by
:func:`chainette.engine.local_server.resolve_model_path`; the server answers to
:func:`~chainette.engine.local_server.model_alias` of it.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path
from typing import TYPE_CHECKING

from chainette.engine.servers.base import ManagedServer
from chainette.errors import ConfigError

if TYPE_CHECKING:
    from chainette.engine.registry import EngineConfig

SERVER_MODULE = "chainette.engine.local_server"
DEFAULT_MODEL = "smollm2"


class LlamaCppServer(ManagedServer):
    """``python -m chainette.engine.local_server`` (llama.cpp through xllamacpp)."""

    kind = "llama.cpp"

    def argv(self, cfg: EngineConfig, port: int, *, parent_pid: int | None = None) -> list[str]:
        from chainette.engine.local_server import resolve_model_path
        from chainette.engine.local_tuning import local_server_settings

        try:
            path = resolve_model_path(cfg.model or DEFAULT_MODEL)
        except FileNotFoundError as exc:
            raise ConfigError(f"engine '{cfg.name}': {exc}", engine=cfg.name) from None
        threads, n_parallel, n_ctx = local_server_settings(cfg.threads, cfg.n_parallel, cfg.n_ctx)
        return [
            sys.executable,
            "-m",
            SERVER_MODULE,
            "--model",
            str(path),
            "--host",
            cfg.host,
            "--port",
            str(port),
            "--alias",
            self.served_model_name(cfg),
            "--n-parallel",
            str(n_parallel),
            "--threads",
            str(threads),
            "--ctx",
            str(n_ctx),
        ] + (["--parent-pid", str(parent_pid)] if parent_pid else [])

    def env(self, cfg: EngineConfig) -> dict[str, str]:
        env = super().env(cfg)
        env.setdefault("PYTHONUNBUFFERED", "1")
        # the server runs `python -m chainette.engine.local_server`: make this chainette importable
        env["PYTHONPATH"] = os.pathsep.join(p for p in (_chainette_root(), env.get("PYTHONPATH", "")) if p)
        return env

    def weights(self, cfg: EngineConfig) -> str:
        from chainette.engine.local_server import resolve_model_path

        return str(resolve_model_path(cfg.model or DEFAULT_MODEL).resolve())

    def served_model_name(self, cfg: EngineConfig) -> str:
        from chainette.engine.local_server import model_alias

        return model_alias(cfg.model or DEFAULT_MODEL)


def _chainette_root() -> str:
    """The folder that holds this ``chainette`` package (chainette/engine/servers/llamacpp.py)."""
    return str(Path(__file__).resolve().parents[3])
