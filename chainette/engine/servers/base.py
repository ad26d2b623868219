"""``ManagedServer``: how one kind of server Chainette starts describes itself.

A description says *what* to run (:meth:`~ManagedServer.argv`, :meth:`~ManagedServer.env`),
*what model id it answers to* (:meth:`~ManagedServer.served_model_name`), *where to ask
whether it is up* (:attr:`~ManagedServer.health_path`, :attr:`~ManagedServer.models_path`)
and *which API key it demands* (:meth:`~ManagedServer.api_key`). It does no I/O of its
own: the process manager (:mod:`chainette.engine.process_manager`) spawns, probes, logs
and stops every kind the same way. A backend names its server kind in the backend
registry (:mod:`chainette.engine.backend_registry`); adding a kind is registering a
description there, with no edit to the process manager.
"""

from __future__ import annotations

import os
from abc import ABC, abstractmethod
from pathlib import Path
from typing import TYPE_CHECKING, ClassVar

if TYPE_CHECKING:
    from chainette.engine.registry import EngineConfig


class ManagedServer(ABC):
    """One kind of server process that Chainette starts and stops itself."""

    kind: ClassVar[str] = "server"
    """A short name for messages (``"vllm"``, ``"llama.cpp"``)."""
    health_path: ClassVar[str] = "/health"
    """Answers 200 once the server is up."""
    models_path: ClassVar[str] = "/v1/models"
    """Lists the served model ids (OpenAI ``{"data": [{"id": ...}]}``) once it can answer requests."""

    @abstractmethod
    def argv(self, cfg: EngineConfig, port: int, *, parent_pid: int | None = None) -> list[str]:
        """The command that serves ``cfg``'s model on ``cfg.host:port`` (an argv list, never a shell).

        ``parent_pid``: the process whose end should end the server too, for kinds that can
        watch it; ``None`` for a server meant to outlive its starter (``chainette warmup``).
        Raises :class:`~chainette.errors.ConfigError` or
        :class:`~chainette.errors.ServerStartError` when it cannot be built.
        """

    def env(self, cfg: EngineConfig) -> dict[str, str]:
        """The server's environment: ours, then ``extra_env``, then ``CUDA_VISIBLE_DEVICES`` from ``gpu_ids``."""
        env = dict(os.environ)
        env.update(cfg.extra_env)
        if cfg.gpu_ids is not None:
            env["CUDA_VISIBLE_DEVICES"] = ",".join(str(g) for g in cfg.gpu_ids)
        return env

    def served_model_name(self, cfg: EngineConfig) -> str:
        """The model id the server lists at :attr:`models_path` (what requests name)."""
        return cfg.model

    def weights(self, cfg: EngineConfig) -> str:
        """What the server loads (a weights path or a repository id): the item cache keys on it,
        so other weights under the same name never share answers, and a restart on another
        port still hits the cache."""
        path = Path(cfg.model).expanduser()
        return str(path.resolve()) if path.exists() else cfg.model

    def api_key(self, cfg: EngineConfig) -> str | None:
        """The key sent as ``Authorization: Bearer`` by the readiness probe; ``None``: none."""
        return None

    def unauthorized_hint(self, cfg: EngineConfig) -> str:
        """What to tell the user when the server answers 401/403 to the readiness probe."""
        return (
            f"the {self.kind} server demands credentials that engine '{cfg.name}' does not "
            "give it; check the environment it inherits and `extra_env`"
        )
