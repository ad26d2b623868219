"""``RunEngines``: the engines of one run, created on first use and closed at the end.

Servers are started through the ``EngineBroker`` (in a worker thread: starting blocks);
clients are created inside the run's event loop. Engine instances passed by the caller
(``engines={"name": FakeEngine()}``) are used as they are and never cached.
"""

from __future__ import annotations

import time
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import anyio

from chainette.core.step import Step
from chainette.engine.backend_registry import backend_of
from chainette.engine.identity import answering_identity
from chainette.engine.pricing import Price, resolve_price
from chainette.engine.protocol import Engine
from chainette.engine.registry import EngineConfig, get_engine_config
from chainette.events import EventBus
from chainette.events import bus as global_bus


class RunEngines:
    """The engines of one run: created on first use, on the run's event bus, closed at the end."""

    def __init__(
        self, overrides: Mapping[str, Any] | None = None, *, log_dir: Path | None = None, events: EventBus | None = None
    ) -> None:
        self._overrides = dict(overrides or {})
        self._log_dir = log_dir
        self._events = events if events is not None else global_bus
        self._engines: dict[str, Engine] = {}
        self._scopes: dict[str, dict[str, Any] | None] = {}
        self._owned: list[str] = []
        self._started: list[EngineConfig] = []
        self._locks: dict[str, anyio.Lock] = {}
        self._held_since: dict[str, float] = {}
        self._held_s: dict[str, float] = {}
        self._batch_state: dict[str, Any] = {}  # batch mode: the run's journal, shared by its engines

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
        # several endpoints (or replicas): each has its own max_in_flight (chainette/engine/multi_endpoint.py)
        return cfg.max_in_flight * max(1, len(cfg.endpoints), cfg.replicas) if cfg else 64

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
                self._held_since[name] = time.monotonic()
        return engine

    def price(self, name: str) -> tuple[Price | None, str]:
        """``(price, source)`` of engine ``name`` (see :mod:`chainette.engine.pricing`); an
        injected engine instance may carry a ``price`` attribute."""
        override = self._overrides.get(name)
        if override is not None and not isinstance(override, EngineConfig):
            price = getattr(override, "price", None)
            if isinstance(price, dict):
                price = Price(**price)
            return (price, "engine object") if isinstance(price, Price) else (None, "unknown")
        cfg = self.config(name)
        return resolve_price(cfg) if cfg is not None else (None, "unknown")

    def held_seconds(self) -> dict[str, float]:
        """Seconds each engine has been held by this run so far (from first use to release)."""
        now = time.monotonic()
        out = dict(self._held_s)
        for name, since in self._held_since.items():
            out[name] = out.get(name, 0.0) + now - since
        return out

    def _release_hold(self, name: str) -> None:
        since = self._held_since.pop(name, None)
        if since is not None:
            self._held_s[name] = self._held_s.get(name, 0.0) + time.monotonic() - since

    async def _create(self, name: str) -> Engine:
        override = self._overrides.get(name)
        if override is not None and not isinstance(override, EngineConfig):
            return override
        cfg = self.config(name)
        assert cfg is not None
        from chainette.engine.broker import EngineBroker
        from chainette.engine.factory import create_engine

        spec = backend_of(cfg)
        if _batch_mode(cfg):  # a Batch API or `vllm run-batch`: no server to start
            from chainette.run.batch_mode import create_batch_engine

            if spec.cacheable:
                self._scopes[name] = await anyio.to_thread.run_sync(answering_identity, cfg, None)
            self._owned.append(name)
            return await create_batch_engine(cfg, self._log_dir, self._batch_state, self._events)
        endpoint = None
        urls: list[Any] = [None]
        client_cfg = cfg
        if not spec.in_process:
            urls = await anyio.to_thread.run_sync(
                lambda: EngineBroker.start_all(cfg, log_dir=self._log_dir, events=self._events)
            )
            endpoint = urls[0]
            self._started.append(cfg)
            if getattr(cfg, "replicas", 1) > 1:  # its servers, one per replica: spread like endpoints
                client_cfg = cfg.model_copy(update={"endpoints": urls, "endpoint": urls[0], "replicas": 1})
                endpoint = None
        if spec.cacheable:
            self._scopes[name] = await anyio.to_thread.run_sync(answering_identity, cfg, urls[0])
        self._owned.append(name)
        engine = create_engine(client_cfg, endpoint)
        engine.events = self._events  # type: ignore[attr-defined]  # every built-in engine has `events`: this run's bus
        try:
            await engine.prepare()
        except BaseException:  # failed or cancelled (a run that could not open): close its connections
            with anyio.CancelScope(shield=True):
                await engine.aclose()
            raise
        return engine

    async def warm_up(self, names: list[str]) -> None:
        """Create the clients of the engines ``names`` that answer from an endpoint already
        running (and ask a vLLM server its version), so that this overlaps the opening
        of the run's files instead of delaying the first row. Servers Chainette starts itself,
        in-process models, batch-mode engines and injected instances are left to their usual
        first use; so is a failure here: the first row's :meth:`get` tries again and reports it."""
        for name in names:
            cfg = self.config(name)
            if cfg is None or cfg.is_managed or _batch_mode(cfg) or backend_of(cfg).in_process:
                continue
            try:
                await self.get(name)
            except Exception:  # noqa: BLE001 - reported by the first row's get()
                pass

    def release_batch_waiters(self, reason: str) -> None:
        """The run is stopping: rows waiting on a batch engine's batches stop waiting, uncommitted
        (the batches already submitted go on at the provider; ``--resume`` collects them)."""
        for name, engine in self._engines.items():
            cfg = self.config(name)
            if cfg is not None and _batch_mode(cfg):
                from chainette.engine.batch.engine import BatchEngine

                if isinstance(engine, BatchEngine):
                    engine.release_waiting(reason)

    def end_holds(self) -> None:
        """The run no longer holds any engine: the time each was held (hourly prices) ends now."""
        for name in list(self._held_since):
            self._release_hold(name)

    def cache_scope(self, step: Step) -> dict[str, Any] | None:
        """What identifies this step's engine in cache keys; ``None`` = do not cache."""
        # set when the engine is created (what answers: see engine/identity.py); absent for an
        # injected engine instance and for backends whose answers are not cached
        return self._scopes.get(step.engine_name)

    def is_exclusive(self, name: str) -> bool:
        """A server Chainette starts itself and may stop between stages (managed and lazy)."""
        cfg = self.config(name)
        return cfg is not None and cfg.is_managed and cfg.lazy and not _batch_mode(cfg)

    async def release_except(self, keep: set[str]) -> None:
        """Close the exclusive engines not in ``keep`` and stop their servers (between stages)."""
        names = [n for n in self._owned if n not in keep and self.is_exclusive(n)]
        if not names:
            return
        from chainette.engine.broker import EngineBroker

        for name in names:
            engine = self._engines.pop(name, None)
            self._owned.remove(name)
            self._release_hold(name)
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
        self.end_holds()
        for name in self._owned:
            engine = self._engines.get(name)
            if engine is not None:
                try:
                    await engine.aclose()
                except Exception:
                    pass
        if self._batch_state:
            from chainette.run.batch_mode import close_batch_state

            close_batch_state(self._batch_state)
        if self._started:
            from chainette.engine.broker import EngineBroker

            def release() -> None:
                for cfg in self._started:
                    EngineBroker.release(cfg.name)
                EngineBroker.flush(force=True)

            with anyio.CancelScope(shield=True):
                await anyio.to_thread.run_sync(release)


def _batch_mode(cfg: EngineConfig) -> bool:
    """Whether the engine sends its requests as batches (the Batch API, ``vllm run-batch``)."""
    return getattr(cfg, "mode", "online") == "batch"
