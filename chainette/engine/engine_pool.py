"""The spec's import path for the server pool: :class:`chainette.engine.servers.pool.ServerPool`.

``EnginePool`` is its old name (it pools server processes, not engine objects).
"""

from chainette.engine.servers.pool import DEFAULT_IDLE_TIMEOUT, ServerPool

EnginePool = ServerPool

__all__ = ["DEFAULT_IDLE_TIMEOUT", "EnginePool", "ServerPool"]
