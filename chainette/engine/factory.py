"""``create_engine(cfg, endpoint)``: the engine object for a config (no I/O at construction).

An engine with several ``endpoints`` becomes a
:class:`~chainette.engine.multi_endpoint.MultiEndpointEngine` over one client per endpoint.
A runner may decorate every engine a run creates (the Ray runner swaps each client's
in-flight limiter for one leased across worker processes) by setting
:data:`engine_decorator` for the duration of the run.
"""

from __future__ import annotations

from collections.abc import Callable
from contextvars import ContextVar
from typing import TYPE_CHECKING, Any

from chainette.engine.backend_registry import backend_of

if TYPE_CHECKING:
    from chainette.engine.protocol import Engine
    from chainette.engine.registry import EngineConfig

engine_decorator: ContextVar[Callable[[EngineConfig, Any], Any] | None] = ContextVar(
    "chainette_engine_decorator", default=None
)
"""``(cfg, engine) -> engine`` applied to every engine created in this context (``None``: none)."""


def create_engine(cfg: EngineConfig, endpoint: str | None = None) -> Engine:
    """Build the client for ``cfg``, as its backend's entry in the backend registry says.

    ``endpoint`` is the base URL (e.g. from :meth:`EngineBroker.start`); without it the
    config's own endpoint is used (all of ``endpoints`` when there are several). The HTTP
    session is created lazily on the first request, inside whatever event loop is running then.
    """
    spec = backend_of(cfg)
    endpoints = getattr(cfg, "endpoints", None) or []
    if len(endpoints) > 1 and not spec.in_process and endpoint in (None, "", cfg.endpoint):
        from chainette.engine.multi_endpoint import MultiEndpointEngine

        # each endpoint's client tries once; the engine retries on the other endpoints
        clients = [
            spec.create_client(cfg.model_copy(update={"endpoint": url, "endpoints": [], "max_retries": 0}), url)
            for url in endpoints
        ]
        engine: Any = MultiEndpointEngine(cfg, clients)
    else:
        engine = spec.create_client(cfg, endpoint)
    decorate = engine_decorator.get()
    return decorate(cfg, engine) if decorate is not None else engine
