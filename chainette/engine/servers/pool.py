"""``ServerPool``: a thread-safe, reference-counted pool of the servers behind managed engines.

``start(cfg)`` makes sure ``cfg``'s server runs (starting it at most once, even when
many threads ask at the same time), counts one reference and returns the base URL.
``release(name)`` drops a reference; a *lazy* server with no references is stopped
after ``idle_timeout`` seconds (default 180) unless someone takes it again.
``flush()`` stops idle lazy servers now, ``flush(force=True)`` every idle server we
started. Servers we merely reuse (already running, or started by ``chainette warmup``)
are never stopped by the pool.
"""

from __future__ import annotations

import atexit
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from chainette.engine.process_manager import ServerProcess, probe, served_name, start_server, stop_server

if TYPE_CHECKING:
    from chainette.engine.registry import EngineConfig
    from chainette.events import EventBus

DEFAULT_IDLE_TIMEOUT = 180.0


@dataclass
class PooledServer:
    """One server in the pool, with the config it was started for and its reference count."""

    cfg: EngineConfig
    server: ServerProcess
    refs: int = 0
    idle_since: float | None = None


class ServerPool:
    """Reference-counted servers, keyed by engine name."""

    def __init__(self, idle_timeout: float = DEFAULT_IDLE_TIMEOUT) -> None:
        self.idle_timeout = idle_timeout
        self._lock = threading.Lock()
        self._name_locks: dict[str, threading.Lock] = {}
        self._entries: dict[str, PooledServer] = {}
        self._atexit = False

    def _name_lock(self, name: str) -> threading.Lock:
        with self._lock:
            return self._name_locks.setdefault(name, threading.Lock())

    def start(self, cfg: EngineConfig, *, log_dir: str | Path | None = None, events: EventBus | None = None) -> str:
        """Ensure ``cfg``'s server runs; count a reference; return its base URL (``.../v1``).

        A server it starts reports on ``events`` (the run's bus; default: the process-wide one)."""
        with self._name_lock(cfg.name):
            with self._lock:
                entry = self._entries.get(cfg.name)
            if entry is not None and self._usable(entry, cfg):
                with self._lock:
                    entry.refs += 1
                    entry.idle_since = None
                return entry.server.endpoint
            if entry is not None:  # dead, or the config changed while idle
                with self._lock:
                    self._entries.pop(cfg.name, None)
                stop_server(entry.server)
            server = self._recorded(cfg) or start_server(cfg, log_dir=log_dir, events=events)
            if server.owned and not self._atexit:
                atexit.register(self.flush, force=True, all_refs=True)
                self._atexit = True
            with self._lock:
                self._entries[cfg.name] = PooledServer(cfg=cfg, server=server, refs=1)
            return server.endpoint

    @staticmethod
    def _usable(entry: PooledServer, cfg: EngineConfig) -> bool:
        if entry.cfg.backend != cfg.backend or served_name(entry.cfg) != served_name(cfg):
            return entry.refs > 0  # keep serving current users; restart once idle
        sp = entry.server
        if sp.popen is not None:
            return sp.popen.poll() is None
        return probe(entry.cfg, sp.host, sp.port).serves(sp.model)

    @staticmethod
    def _recorded(cfg: EngineConfig) -> ServerProcess | None:
        """A server started by ``chainette warmup`` that still serves this engine's model."""
        from chainette.engine import server_state

        try:
            info = server_state.find(cfg.name)
        except OSError:
            return None
        if info is None or info.model != served_name(cfg):
            return None
        sp = info.to_process()
        if not probe(cfg, sp.host, sp.port).serves(sp.model):
            return None
        sp.reused = True
        return sp

    def release(self, name: str) -> None:
        """Drop one reference; schedule idle eviction of a lazy server nobody uses."""
        with self._lock:
            entry = self._entries.get(name)
            if entry is None or entry.refs == 0:
                return
            entry.refs -= 1
            if entry.refs > 0:
                return
            entry.idle_since = time.monotonic()
            lazy = entry.cfg.lazy
        if lazy:
            timer = threading.Timer(self.idle_timeout + 0.01, self.evict_idle)
            timer.daemon = True
            timer.start()

    def evict_idle(self, now: float | None = None) -> list[str]:
        """Stop lazy servers idle for at least ``idle_timeout``; returns their names."""
        now = time.monotonic() if now is None else now
        return self._stop_where(
            lambda e: (
                e.refs == 0 and e.cfg.lazy and e.idle_since is not None and now - e.idle_since >= self.idle_timeout
            )
        )

    def flush(self, force: bool = False, *, all_refs: bool = False) -> list[str]:
        """Stop idle lazy servers now (``force``: every idle server; ``all_refs``: even referenced ones)."""
        return self._stop_where(lambda e: (all_refs or e.refs == 0) and (force or e.cfg.lazy))

    def _stop_where(self, pred: Callable[[PooledServer], bool]) -> list[str]:
        with self._lock:
            names = [n for n, e in self._entries.items() if pred(e)]
        stopped = []
        for name in names:
            with self._name_lock(name):
                with self._lock:
                    entry = self._entries.get(name)
                    if entry is None or not pred(entry):
                        continue
                    del self._entries[name]
                stop_server(entry.server)
                stopped.append(name)
        return stopped

    def refcount(self, name: str) -> int:
        with self._lock:
            entry = self._entries.get(name)
            return entry.refs if entry else 0

    def servers(self) -> list[ServerProcess]:
        with self._lock:
            return [e.server for e in self._entries.values()]
