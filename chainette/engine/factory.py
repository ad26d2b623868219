"""``create_engine(cfg, endpoint)``: the engine object for a config (no I/O at construction)."""

from __future__ import annotations

from typing import TYPE_CHECKING

from chainette.engine.backend_registry import backend_of

if TYPE_CHECKING:
    from chainette.engine.protocol import Engine
    from chainette.engine.registry import EngineConfig


def create_engine(cfg: "EngineConfig", endpoint: str | None = None) -> "Engine":
    """Build the client for ``cfg``, as its backend's entry in the backend registry says.

    ``endpoint`` is the base URL (e.g. from :meth:`EngineBroker.start`); without it the
    config's own endpoint is used. The HTTP session is created lazily on the first
    request, inside whatever event loop is running then.
    """
    return backend_of(cfg).create_client(cfg, endpoint)
