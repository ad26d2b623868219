"""``RunEngines``: the engines of one run, created on first use and closed at the end.

Servers are started through the ``EngineBroker`` (in a worker thread: starting blocks);
clients are created inside the run's event loop. Engine instances passed by the caller
(``engines={"name": FakeEngine()}``) are used as they are and never cached.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Mapping

import anyio

from chainette.core.step import Step
from chainette.engine.protocol import Engine
from chainette.engine.registry import EngineConfig, get_engine_config


class RunEngines:
    def __init__(self, overrides: Mapping[str, Any] | None = None, *, log_dir: Path | None = None) -> None:
        self._overrides = dict(overrides or {})
        self._log_dir = log_dir
        self._engines: dict[str, Engine] = {}
        self._scopes: dict[str, dict[str, Any] | None] = {}
        self._owned: list[str] = []
        self._started: list[EngineConfig] = []
        self._locks: dict[str, anyio.Lock] = {}

    def config(self, name: str) -> EngineConfig | None:
        """The config behind ``name`` (``None`` for an injected engine instance)."""
        override = self._overrides.get(name)
        if override is not None:
            return override if isinstance(override, EngineConfig) else None
        return get_engine_config(name)

    def max_in_flight(self, name: str) -> int:
        override = self._overrides.get(name)
        if override is not None and not isinstance(override, EngineConfig):
            return int(getattr(override, "max_in_flight", 64))
        cfg = self.config(name)
        return cfg.max_in_flight if cfg else 64

    async def get(self, name: str) -> Engine:
        engine = self._engines.get(name)
        if engine is not None:
            return engine
        lock = self._locks.setdefault(name, anyio.Lock())
        async with lock:
            engine = self._engines.get(name)
            if engine is None:
                engine = await self._create(name)
                self._engines[name] = engine
        return engine

    async def _create(self, name: str) -> Engine:
        override = self._overrides.get(name)
        if override is not None and not isinstance(override, EngineConfig):
            return override
        cfg = self.config(name)
        assert cfg is not None
        from chainette.engine.broker import EngineBroker
        from chainette.engine.factory import create_engine

        endpoint = None
        if cfg.backend != "fake":
            endpoint = await anyio.to_thread.run_sync(lambda: EngineBroker.start(cfg, log_dir=self._log_dir))
            self._started.append(cfg)
        self._owned.append(name)
        return create_engine(cfg, endpoint)

    def cache_scope(self, step: Step) -> dict[str, Any] | None:
        """What identifies this step's engine in cache keys; ``None`` = do not cache (per row: memoised)."""
        name = step.engine_name
        if name not in self._scopes:
            cfg = self.config(name)  # None for an injected engine instance
            self._scopes[name] = (
                None if cfg is None or cfg.backend == "fake" else {"model": cfg.model, "backend": cfg.backend}
            )
        return self._scopes[name]

    def is_exclusive(self, name: str) -> bool:
        """A server Chainette starts itself and may stop between stages (managed and lazy)."""
        cfg = self.config(name)
        return cfg is not None and cfg.is_managed and cfg.lazy

    async def release_except(self, keep: set[str]) -> None:
        """Close the exclusive engines not in ``keep`` and stop their servers (between stages)."""
        names = [n for n in self._owned if n not in keep and self.is_exclusive(n)]
        if not names:
            return
        from chainette.engine.broker import EngineBroker

        for name in names:
            engine = self._engines.pop(name, None)
            self._owned.remove(name)
            if engine is not None:
                await engine.aclose()
        stopped = [c for c in self._started if c.name in names]
        self._started = [c for c in self._started if c.name not in names]

        def release() -> None:
            for cfg in stopped:
                EngineBroker.release(cfg.name)
            EngineBroker.flush(force=True)

        await anyio.to_thread.run_sync(release)

    async def aclose(self) -> None:
        for name in self._owned:
            engine = self._engines.get(name)
            if engine is not None:
                try:
                    await engine.aclose()
                except Exception:
                    pass
        if self._started:
            from chainette.engine.broker import EngineBroker

            def release() -> None:
                for cfg in self._started:
                    EngineBroker.release(cfg.name)
                EngineBroker.flush(force=True)

            with anyio.CancelScope(shield=True):
                await anyio.to_thread.run_sync(release)
