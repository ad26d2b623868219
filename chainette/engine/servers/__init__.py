"""The servers Chainette starts itself: one description per kind, and the pool that shares them.

==========================  ==============  ==========================================
module                      kind            started as
==========================  ==============  ==========================================
:mod:`.vllm`                ``vllm``        ``vllm serve <model> ...``
:mod:`.llamacpp`            ``llama.cpp``   ``python -m chainette.engine.local_server``
==========================  ==============  ==========================================

:mod:`.base` defines the :class:`ManagedServer` description; :mod:`.pool` the
reference-counted :class:`~chainette.engine.servers.pool.ServerPool` (import it from there).
Which backend uses which kind is said once, in :mod:`chainette.engine.backend_registry`;
:func:`managed_server` looks it up for an engine.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from chainette.engine.backend_registry import backend_of
from chainette.engine.servers.base import ManagedServer
from chainette.engine.servers.llamacpp import LlamaCppServer
from chainette.engine.servers.vllm import VLLMServer
from chainette.errors import ConfigError

if TYPE_CHECKING:
    from chainette.engine.registry import EngineConfig

__all__ = ["LlamaCppServer", "ManagedServer", "VLLMServer", "managed_server"]


def managed_server(cfg: EngineConfig) -> ManagedServer:
    """The description of the server Chainette starts for ``cfg``; :class:`ConfigError` if it starts none."""
    server = backend_of(cfg).managed_server()
    if server is None:
        raise ConfigError(f"engine '{cfg.name}': backend '{cfg.backend}' has no managed server", engine=cfg.name)
    if not isinstance(server, ManagedServer):
        raise ConfigError(
            f"engine '{cfg.name}': backend '{cfg.backend}' registers {server!r} as its server, "
            "which is not a chainette.engine.servers.ManagedServer",
            engine=cfg.name,
        )
    return server
