"""``create_engine(cfg, endpoint)``: the engine object for a config (no I/O at construction)."""

from __future__ import annotations

from typing import TYPE_CHECKING

from chainette.errors import ConfigError

if TYPE_CHECKING:
    from chainette.engine.protocol import Engine
    from chainette.engine.registry import EngineConfig


def create_engine(cfg: "EngineConfig", endpoint: str | None = None) -> "Engine":
    """Build the client for ``cfg``.

    ``endpoint`` is the base URL (e.g. from :meth:`EngineBroker.start`); without it the
    config's own endpoint is used. The HTTP session is created lazily on the first
    request, inside whatever event loop is running then.
    """
    if cfg.backend == "fake":
        from chainette.engine.fake import FakeEngine

        return FakeEngine(name=cfg.name, max_in_flight=cfg.max_in_flight)
    from chainette.engine.http_client import CLIENTS

    cls = CLIENTS.get(cfg.backend)
    if cls is None:
        raise ConfigError(f"engine '{cfg.name}': unknown backend '{cfg.backend}'", engine=cfg.name)
    return cls(cfg, endpoint)
