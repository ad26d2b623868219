"""``EngineBroker``: the one door to engines for the executor and for users.

```python
endpoint = EngineBroker.start(cfg, log_dir=run_dir)   # sync, blocking, thread-safe
engine = create_engine(cfg, endpoint)
...
EngineBroker.release(cfg.name)
EngineBroker.flush(force=True)                         # at run end

with EngineBroker.acquire("gpt") as eng:               # the spec's sync API
    ...
```
Managed engines (a backend with a managed server and no ``endpoint``: ``vllm_api``,
``local``) get a server started or reused and reference-counted in a
:class:`~chainette.engine.servers.pool.ServerPool`; unmanaged ones just return their
endpoint, no I/O; in-process ones (``fake``) return ``""``.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING

from chainette.engine.backend_registry import backend_of
from chainette.engine.servers.pool import ServerPool
from chainette.errors import ConfigError

if TYPE_CHECKING:
    from chainette.engine.process_manager import ServerProcess
    from chainette.engine.protocol import Engine
    from chainette.engine.registry import EngineConfig
    from chainette.events import EventBus


class EngineBroker:
    """Class-level facade over a process-wide :class:`ServerPool`."""

    pool: ServerPool = ServerPool()

    @classmethod
    def start(cls, cfg: EngineConfig, log_dir: str | Path | None = None, events: EventBus | None = None) -> str:
        """Base URL for ``cfg``; starts (or reuses) its server when Chainette manages it
        (server events on ``events``, the run's bus; default: the process-wide one)."""
        if backend_of(cfg).in_process:
            return ""
        if not cfg.is_managed:
            endpoint = cfg.resolved_endpoint()
            if not endpoint:
                raise ConfigError(f"engine '{cfg.name}': no endpoint configured", engine=cfg.name)
            return endpoint
        return cls.pool.start(cfg, log_dir=log_dir, events=events)

    @classmethod
    def start_all(
        cls, cfg: EngineConfig, log_dir: str | Path | None = None, events: EventBus | None = None
    ) -> list[str]:
        """Every base URL of ``cfg``: its ``endpoints``, or the servers of its ``replicas`` (started
        side by side, each on its share of the GPUs), or the one of :meth:`start`."""
        if getattr(cfg, "replicas", 1) <= 1 or not cfg.is_managed:
            if len(getattr(cfg, "endpoints", None) or []) > 1 and not cfg.is_managed:
                return list(cfg.endpoints)
            return [cls.start(cfg, log_dir=log_dir, events=events)]
        from concurrent.futures import ThreadPoolExecutor

        from chainette.engine.replicas import replica_configs

        subs = replica_configs(cfg)
        with ThreadPoolExecutor(len(subs), thread_name_prefix=f"start-{cfg.name}") as pool:
            futures = [pool.submit(cls.pool.start, sub, log_dir=log_dir, events=events) for sub in subs]
        errors = [exc for f in futures if (exc := f.exception()) is not None]
        if errors:
            for sub, f in zip(subs, futures, strict=True):
                if f.exception() is None:
                    cls.pool.release(sub.name)
            raise errors[0]
        cls._replicas[cfg.name] = [sub.name for sub in subs]
        return [f.result() for f in futures]

    _replicas: dict[str, list[str]] = {}

    @classmethod
    def release(cls, name: str) -> None:
        """Drop one reference to ``name``'s server, or to each of its replicas (no-op for unmanaged engines)."""
        for server in cls._replicas.get(name, [name]):
            cls.pool.release(server)

    @classmethod
    def flush(cls, force: bool = False) -> list[str]:
        """Stop idle servers we started (``force``: persistent ones too). Returns their names."""
        return cls.pool.flush(force=force)

    @classmethod
    def refcount(cls, name: str) -> int:
        """How many users hold ``name``'s server now (0 when it is idle or not running)."""
        return cls.pool.refcount(name)

    @classmethod
    def servers(cls) -> list[ServerProcess]:
        """The servers the pool holds (running or idle), one per engine name."""
        return cls.pool.servers()

    @classmethod
    def set_idle_timeout(cls, seconds: float) -> None:
        """Stop an idle lazy server after ``seconds`` without users (default 180)."""
        cls.pool.idle_timeout = seconds

    @classmethod
    @contextmanager
    def acquire(cls, name: str, log_dir: str | Path | None = None) -> Iterator[Engine]:
        """Registered engine ``name``, its server running, released on exit."""
        from chainette.engine.factory import create_engine
        from chainette.engine.registry import get_engine_config

        cfg = get_engine_config(name)
        endpoint = cls.start(cfg, log_dir=log_dir)
        try:
            engine = create_engine(cfg, endpoint or None)
            try:
                yield engine
            finally:
                close = getattr(engine, "close_sync", None)
                if close is not None:
                    close()
        finally:
            if cfg.is_managed:
                cls.release(name)
