"""Servers started by ``chainette warmup`` that outlive the process, recorded in a state file.

The file is ``$CHAINETTE_STATE_DIR/servers.json`` (default ``~/.cache/chainette/servers.json``).
``start_detached(cfg)`` starts and records a server; ``list_running()`` returns the live
ones (dead pids are dropped); ``stop_recorded(name)`` / ``stop_all_recorded()`` stop them
(SIGTERM then SIGKILL of the process group). The engine broker's server pool
(:class:`~chainette.engine.servers.pool.ServerPool`) reuses a recorded server that still
serves the wanted model.
"""

from __future__ import annotations

import fcntl
import json
import os
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from chainette.engine.process_manager import ServerProcess, start_server, state_dir, stop_server

if TYPE_CHECKING:
    from chainette.engine.registry import EngineConfig


@dataclass
class ServerInfo:
    """One recorded server."""

    name: str
    model: str
    endpoint: str
    pid: int
    pgid: int
    log_path: str | None
    backend: str = ""
    started_at: float = 0.0

    def to_process(self) -> ServerProcess:
        host, _, port = self.endpoint.split("//", 1)[-1].split("/", 1)[0].rpartition(":")
        return ServerProcess(
            name=self.name,
            model=self.model,
            endpoint=self.endpoint,
            host=host,
            port=int(port),
            pid=self.pid,
            pgid=self.pgid,
            log_path=self.log_path,
        )


def state_file() -> Path:
    return state_dir() / "servers.json"


@contextmanager
def _locked() -> Iterator[dict[str, dict]]:
    path = state_file()
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path.with_suffix(".lock"), "a") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        try:
            try:
                data = json.loads(path.read_text() or "{}")
                if not isinstance(data, dict):
                    data = {}
            except (OSError, ValueError):
                data = {}
            before = json.dumps(data, sort_keys=True)
            yield data
            if json.dumps(data, sort_keys=True) != before:
                tmp = path.with_suffix(f".tmp{os.getpid()}")
                tmp.write_text(json.dumps(data, indent=2, sort_keys=True))
                os.replace(tmp, path)
        finally:
            fcntl.flock(lock, fcntl.LOCK_UN)


def _alive(info: ServerInfo) -> bool:
    try:
        os.kill(info.pid, 0)
        return os.getpgid(info.pid) == info.pgid
    except (ProcessLookupError, PermissionError):
        return False


def record(info: ServerInfo) -> None:
    with _locked() as data:
        data[info.name] = asdict(info)


def remove(name: str) -> None:
    with _locked() as data:
        data.pop(name, None)


def list_running() -> list[ServerInfo]:
    """Recorded servers whose process still runs (entries of dead ones are removed)."""
    out = []
    with _locked() as data:
        for name in list(data):
            try:
                info = ServerInfo(**data[name])
            except TypeError:
                del data[name]
                continue
            if _alive(info):
                out.append(info)
            else:
                del data[name]
    return sorted(out, key=lambda i: i.name)


def find(name: str) -> ServerInfo | None:
    return next((i for i in list_running() if i.name == name), None)


def start_detached(cfg: EngineConfig, *, log_dir: str | Path | None = None) -> ServerInfo:
    """Start ``cfg``'s server so that it outlives this process, and record it.

    A server already recorded (and alive) or already answering on ``cfg.port`` is
    returned as is.
    """
    existing = find(cfg.name)
    if existing is not None:
        return existing
    sp = start_server(cfg, log_dir=log_dir, detached=True)
    if sp.reused or sp.pid is None or sp.pgid is None:
        return ServerInfo(
            name=cfg.name, model=sp.model, endpoint=sp.endpoint, pid=0, pgid=0, log_path=None, backend=cfg.backend
        )
    info = ServerInfo(
        name=cfg.name,
        model=sp.model,
        endpoint=sp.endpoint,
        pid=sp.pid,
        pgid=sp.pgid,
        log_path=sp.log_path,
        backend=cfg.backend,
        started_at=time.time(),
    )
    record(info)
    return info


def stop_recorded(name: str, *, grace: float = 10.0) -> bool:
    """Stop the recorded server ``name``; ``False`` if none was running."""
    info = find(name)
    if info is None:
        remove(name)
        return False
    stop_server(info.to_process(), grace=grace)
    remove(name)
    return True


def stop_all_recorded(*, grace: float = 10.0) -> list[str]:
    """Stop every recorded server; returns their names."""
    return [i.name for i in list_running() if stop_recorded(i.name, grace=grace)]
