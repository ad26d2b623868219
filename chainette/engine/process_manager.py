"""Spawn, probe, log and stop the LLM server processes Chainette owns.

What to run comes from the server's description (a
:class:`~chainette.engine.servers.base.ManagedServer`, looked up for the engine's backend
in :mod:`chainette.engine.backend_registry`): argv, environment, served model name,
readiness paths, API key. This module does the same for every kind: the argv runs
without a shell, in its own session/process group, with stdout and stderr in a log file.
Readiness: the health path answers 200 and the models path lists the served model,
polled with exponential back-off until ``startup_timeout``; a server answering 401/403
there is an immediate :class:`~chainette.errors.ServerStartError` (it wants a key we do not
send; waiting would not help). A server already answering with the wanted model on the
configured port is reused. Stopping sends SIGTERM to the whole group, then SIGKILL after
a grace period.
"""

from __future__ import annotations

import http.client
import json
import os
import signal
import socket
import subprocess
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

from chainette.engine.servers import managed_server
from chainette.errors import ServerStartError
from chainette.events import EventBus, ServerReady, ServerStarting, ServerStopped
from chainette.events import bus as global_bus

if TYPE_CHECKING:
    from chainette.engine.registry import EngineConfig

LOG_TAIL_LINES = 40
PROBE_TIMEOUT = 2.0
REFUSED_STATUSES = (401, 403)


@dataclass
class ServerProcess:
    """A running server: ours (``popen`` set or ``owned``), or one we found and reuse."""

    name: str
    model: str  # the served model name
    endpoint: str  # base URL ending in /v1
    host: str
    port: int
    pid: int | None = None
    pgid: int | None = None
    log_path: str | None = None
    argv: list[str] = field(default_factory=list)
    reused: bool = False
    popen: subprocess.Popen[bytes] | None = field(default=None, repr=False, compare=False)
    events: EventBus | None = field(default=None, repr=False, compare=False)
    """the bus of the run that started it (its ``ServerStopped`` goes there too)"""

    @property
    def owned(self) -> bool:
        return not self.reused and self.pgid is not None


def state_dir() -> Path:
    """Where server logs and the warmup state file live without a run directory."""
    env = os.environ.get("CHAINETTE_STATE_DIR")
    return Path(env) if env else Path.home() / ".cache" / "chainette"


def free_port(host: str = "127.0.0.1") -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind((host, 0))
        return int(s.getsockname()[1])


def _probe_host(host: str) -> str:
    return "127.0.0.1" if host in ("0.0.0.0", "", "::") else host


# -- what to spawn (from the server's description) ---------------------------
def build_command(cfg: EngineConfig, port: int, *, parent_pid: int | None = None) -> list[str]:
    """The argv that starts ``cfg``'s server on ``port`` (no shell involved).

    ``parent_pid``: the server exits by itself once that process is gone, where its kind
    can watch it (so a ``kill -9`` of the run leaves no server behind); detached servers get none.
    """
    return managed_server(cfg).argv(cfg, port, parent_pid=parent_pid)


def build_env(cfg: EngineConfig) -> dict[str, str]:
    """The server's environment, as its description builds it."""
    return managed_server(cfg).env(cfg)


def served_name(cfg: EngineConfig) -> str:
    """The model id ``cfg``'s server lists once ready."""
    return managed_server(cfg).served_model_name(cfg)


# -- probing -----------------------------------------------------------------
@dataclass(frozen=True)
class Probe:
    """What a server answered to one readiness check."""

    healthy: bool = False
    """The health path answered 200."""
    models: list[str] | None = None
    """Ids (with aliases and roots) listed by the models path; ``None``: no list came back."""
    refused: str | None = None
    """E.g. ``"401 on /v1/models"``: the server wants credentials the probe did not have."""

    def serves(self, model: str) -> bool:
        return self.healthy and self.models is not None and model in self.models


def probe(cfg: EngineConfig, host: str, port: int) -> Probe:
    """Ask the server of ``cfg``'s kind on ``host:port`` whether it is up, with the key it demands."""
    server = managed_server(cfg)
    key = server.api_key(cfg)
    try:
        health, _ = _get(host, port, server.health_path, key)
    except (OSError, http.client.HTTPException):
        return Probe()  # nothing answers (yet)
    try:
        status, body = _get(host, port, server.models_path, key)
    except (OSError, http.client.HTTPException):
        status, body = None, b""
    refused = next(
        (
            f"{code} on {path}"
            for code, path in ((health, server.health_path), (status, server.models_path))
            if code in REFUSED_STATUSES
        ),
        None,
    )
    return Probe(healthy=health == 200, models=_model_ids(body) if status == 200 else None, refused=refused)


def served_models(host: str, port: int, *, api_key: str | None = None, path: str = "/v1/models") -> list[str] | None:
    """Model ids listed at ``path`` (with aliases and roots), or ``None`` if nothing lists any."""
    try:
        status, body = _get(host, port, path, api_key)
    except (OSError, http.client.HTTPException):
        return None
    return _model_ids(body) if status == 200 else None


def _get(host: str, port: int, path: str, api_key: str | None) -> tuple[int, bytes]:
    conn = http.client.HTTPConnection(_probe_host(host), port, timeout=PROBE_TIMEOUT)
    try:
        headers = {"Authorization": f"Bearer {api_key}"} if api_key else {}
        conn.request("GET", path, headers=headers)
        resp = conn.getresponse()
        return resp.status, resp.read()
    finally:
        conn.close()


def _model_ids(body: bytes) -> list[str] | None:
    """The ids, roots and aliases in an OpenAI ``/v1/models`` reply (``None`` if unreadable)."""
    try:
        data = json.loads(body)
    except ValueError:
        return None
    if not isinstance(data, dict):
        return None
    ids: list[str] = []
    for entry in data.get("data") or []:
        if isinstance(entry, dict):
            ids += [v for v in (entry.get("id"), entry.get("root")) if isinstance(v, str)]
            ids += [a for a in entry.get("aliases") or [] if isinstance(a, str)]
    return ids


def log_tail(path: str | Path | None, lines: int = LOG_TAIL_LINES) -> str:
    if not path:
        return ""
    try:
        with open(path, "rb") as f:
            f.seek(0, os.SEEK_END)
            f.seek(max(0, f.tell() - 16384))
            text = f.read().decode("utf-8", "replace")
    except OSError:
        return ""
    return "\n".join(text.splitlines()[-lines:])


# -- lifecycle ---------------------------------------------------------------
def find_running(cfg: EngineConfig) -> ServerProcess | None:
    """A server already answering on ``cfg.port`` with the wanted model, if any.

    Raises :class:`ServerStartError` when the port answers with a different model, or
    refuses our credentials.
    """
    if cfg.port is None:
        return None
    want = served_name(cfg)
    found = probe(cfg, cfg.host, cfg.port)
    if found.refused:
        raise ServerStartError(
            f"engine '{cfg.name}': port {cfg.port} is already used by a server that answered "
            f"{found.refused}: {managed_server(cfg).unauthorized_hint(cfg)}. Or choose another `port:`.",
            engine=cfg.name,
        )
    if found.models is None:
        return None
    if want not in found.models:
        raise ServerStartError(
            f"engine '{cfg.name}': port {cfg.port} is already used by a server serving "
            f"{found.models or 'no model'}, not '{want}'. Choose another `port:` or stop that server.",
            engine=cfg.name,
        )
    if not found.healthy:
        return None
    return ServerProcess(
        name=cfg.name,
        model=want,
        endpoint=f"http://{_probe_host(cfg.host)}:{cfg.port}/v1",
        host=cfg.host,
        port=cfg.port,
        reused=True,
    )


def default_log_path(cfg: EngineConfig, log_dir: str | Path | None, port: int) -> Path:
    from chainette.utils.paths import confined  # an engine name is not trusted to be a file name

    if log_dir is not None:
        return confined(log_dir, "servers", f"{cfg.name}.log")
    return confined(state_dir() / "logs", f"{cfg.name}-{port}.log")


def start_server(
    cfg: EngineConfig,
    *,
    log_dir: str | Path | None = None,
    log_path: str | Path | None = None,
    detached: bool = False,
    events: EventBus | None = None,
) -> ServerProcess:
    """Start ``cfg``'s server (or reuse one already serving it) and wait until it is ready.

    A server that is not ``detached`` is tied to this process where its kind allows it.
    Server events go to ``events`` (the run's bus; default: the process-wide one), and so
    does the ``ServerStopped`` of the server when it is stopped later.
    """
    bus = events if events is not None else global_bus
    running = find_running(cfg)
    if running is not None:
        bus.publish(ServerReady(engine=cfg.name, endpoint=running.endpoint, seconds=0.0, reused=True))
        running.events = bus
        return running
    port = cfg.port or free_port(_probe_host(cfg.host))
    argv = build_command(cfg, port, parent_pid=None if detached else os.getpid())  # may pull the model first
    t0 = time.monotonic()  # startup_timeout counts from the spawn, not from a first-run model pull
    env = build_env(cfg)
    path = Path(log_path) if log_path else default_log_path(cfg, log_dir, port)
    path.parent.mkdir(parents=True, exist_ok=True)
    endpoint = f"http://{_probe_host(cfg.host)}:{port}/v1"
    bus.publish(ServerStarting(engine=cfg.name, command=list(argv), endpoint=endpoint))
    with open(path, "ab") as log:
        log.write(f"--- chainette: starting {' '.join(argv)}\n".encode())
        log.flush()
        try:
            popen = subprocess.Popen(
                argv,
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                env=env,
                start_new_session=True,
                close_fds=True,
            )
        except OSError as exc:
            raise ServerStartError(f"engine '{cfg.name}': cannot run {argv[0]}: {exc}", engine=cfg.name) from exc
    sp = ServerProcess(
        name=cfg.name,
        model=served_name(cfg),
        endpoint=endpoint,
        host=cfg.host,
        port=port,
        pid=popen.pid,
        pgid=popen.pid,
        log_path=str(path),
        argv=argv,
        popen=popen,
        events=bus,
    )
    try:
        _wait_ready(sp, cfg, t0)
    except BaseException:
        stop_server(sp, grace=5.0, announce=False)
        raise
    bus.publish(ServerReady(engine=cfg.name, endpoint=endpoint, seconds=time.monotonic() - t0))
    return sp


def _wait_ready(sp: ServerProcess, cfg: EngineConfig, t0: float) -> None:
    deadline = t0 + cfg.startup_timeout
    delay = 0.05
    while True:
        code = sp.popen.poll() if sp.popen is not None else None
        if code is not None:
            raise ServerStartError(
                f"engine '{cfg.name}': server exited with code {code} during startup (log: {sp.log_path})",
                log_tail=log_tail(sp.log_path),
                engine=cfg.name,
            )
        found = probe(cfg, sp.host, sp.port)
        if found.refused:  # it wants a key we do not send: waiting would not help
            raise ServerStartError(
                f"engine '{cfg.name}': the server answered {found.refused} while starting: "
                f"{managed_server(cfg).unauthorized_hint(cfg)} (log: {sp.log_path})",
                log_tail=log_tail(sp.log_path),
                engine=cfg.name,
            )
        if found.serves(sp.model):
            return
        now = time.monotonic()
        if now >= deadline:
            raise ServerStartError(
                f"engine '{cfg.name}': server not ready after {cfg.startup_timeout:g}s "
                f"(startup_timeout; log: {sp.log_path})",
                log_tail=log_tail(sp.log_path),
                engine=cfg.name,
            )
        time.sleep(min(delay, deadline - now))
        delay = min(delay * 1.5, 2.0)


def group_alive(pgid: int) -> bool:
    """True while any process of group ``pgid`` exists."""
    try:
        os.killpg(pgid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def stop_server(sp: ServerProcess, *, grace: float = 10.0, announce: bool = True) -> None:
    """SIGTERM the server's process group, SIGKILL it after ``grace`` seconds. Reused servers are left alone."""
    if not sp.owned or sp.pgid is None:
        return
    _signal_group(sp.pgid, signal.SIGTERM)
    deadline = time.monotonic() + grace
    while time.monotonic() < deadline:
        _reap(sp)  # so that the leader does not linger as a zombie
        if not group_alive(sp.pgid):
            break
        time.sleep(0.05)
    else:
        _signal_group(sp.pgid, signal.SIGKILL)
        end = time.monotonic() + 5.0
        while time.monotonic() < end and group_alive(sp.pgid):
            _reap(sp)
            time.sleep(0.05)
    if sp.popen is not None:
        try:
            sp.popen.wait(timeout=5.0)
        except subprocess.TimeoutExpired:
            pass
    sp.pgid = None
    if announce:
        (sp.events if sp.events is not None else global_bus).publish(ServerStopped(engine=sp.name))


def _reap(sp: ServerProcess) -> None:
    if sp.popen is not None:
        sp.popen.poll()
    elif sp.pid:
        try:  # a detached server started by this very process (warmup in-process)
            os.waitpid(sp.pid, os.WNOHANG)
        except ChildProcessError:
            pass


def _signal_group(pgid: int, sig: int) -> None:
    try:
        os.killpg(pgid, sig)
    except (ProcessLookupError, PermissionError):
        pass
