"""Start, probe and stop the LLM server processes Chainette owns.

``vllm serve`` (backend ``vllm_api`` without an endpoint) and the embedded llama.cpp
server (backend ``local``) are started with an argv list (never a shell), in their
own session/process group, GPU-pinned through ``CUDA_VISIBLE_DEVICES``, with stdout
and stderr in a log file. Readiness: ``/health`` then ``/v1/models`` listing the
wanted model, polled with exponential back-off until ``startup_timeout``. A server
already answering with the wanted model on the configured port is reused. Stopping
sends SIGTERM to the whole group, then SIGKILL after a grace period.
"""

from __future__ import annotations

import http.client
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from chainette.errors import ConfigError, ServerStartError
from chainette.utils.events import ServerReady, ServerStarting, ServerStopped, bus

if TYPE_CHECKING:
    from chainette.engine.registry import EngineConfig

LOG_TAIL_LINES = 40


@dataclass
class ServerProcess:
    """A running server: ours (``popen`` set or ``owned``), or one we found and reuse."""

    name: str
    model: str
    endpoint: str  # base URL ending in /v1
    host: str
    port: int
    pid: int | None = None
    pgid: int | None = None
    log_path: str | None = None
    argv: list[str] = field(default_factory=list)
    reused: bool = False
    popen: subprocess.Popen[bytes] | None = field(default=None, repr=False, compare=False)

    @property
    def owned(self) -> bool:
        return not self.reused and self.pgid is not None


def state_dir() -> Path:
    """Where server logs and the warmup state file live without a run directory."""
    env = os.environ.get("CHAINETTE_STATE_DIR")
    return Path(env) if env else Path.home() / ".cache" / "chainette"


def served_name(cfg: "EngineConfig") -> str:
    """The model id the server lists in ``/v1/models``."""
    if cfg.backend == "local":
        from chainette.engine.local_server import model_alias

        return model_alias(cfg.model)
    from chainette.engine.backends.vllm import served_model_name

    return served_model_name(cfg)


def free_port(host: str = "127.0.0.1") -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind((host, 0))
        return int(s.getsockname()[1])


def _probe_host(host: str) -> str:
    return "127.0.0.1" if host in ("0.0.0.0", "", "::") else host


# -- commands ------------------------------------------------------------------
def build_command(cfg: "EngineConfig", port: int, *, parent_pid: int | None = None) -> list[str]:
    """The argv that starts ``cfg``'s server on ``port`` (no shell involved).

    ``parent_pid``: the local server exits by itself once that process is gone (so a
    ``kill -9`` of the run leaves no server behind); detached servers get none.
    """
    if cfg.backend == "local":
        from chainette.engine.local_server import model_alias, resolve_model_path

        try:
            path = resolve_model_path(cfg.model or "smollm2")
        except FileNotFoundError as exc:
            raise ConfigError(f"engine '{cfg.name}': {exc}", engine=cfg.name) from None
        n_parallel = cfg.n_parallel or 4
        return [
            sys.executable, "-m", "chainette.engine.local_server",
            "--model", str(path), "--host", cfg.host, "--port", str(port),
            "--alias", model_alias(cfg.model or "smollm2"),
            "--n-parallel", str(n_parallel), "--threads", str(cfg.threads or 1),
            "--ctx", str(cfg.n_ctx or 1024 * n_parallel),
        ] + (["--parent-pid", str(parent_pid)] if parent_pid else [])
    if cfg.backend != "vllm_api":
        raise ConfigError(f"engine '{cfg.name}': backend '{cfg.backend}' has no managed server", engine=cfg.name)
    exe = shutil.which("vllm")
    if exe is None:
        raise ServerStartError(
            f"engine '{cfg.name}': the `vllm` executable is not on PATH. Install it with "
            "`pip install vllm` (on a machine with a GPU), or run the server elsewhere and set "
            f"`endpoint:` for engine '{cfg.name}' (e.g. http://host:8000/v1).",
            engine=cfg.name,
        )
    argv = [exe, "serve", cfg.model, "--host", cfg.host, "--port", str(port)]
    if cfg.dtype:
        argv += ["--dtype", cfg.dtype]
    if cfg.gpu_memory_utilization is not None:
        argv += ["--gpu-memory-utilization", str(cfg.gpu_memory_utilization)]
    if cfg.max_model_len is not None:
        argv += ["--max-model-len", str(cfg.max_model_len)]
    tp = cfg.tensor_parallel_size or (len(cfg.gpu_ids) if cfg.gpu_ids and len(cfg.gpu_ids) > 1 else None)
    if tp:
        argv += ["--tensor-parallel-size", str(tp)]
    extra = list(cfg.extra_serve_flags)
    if cfg.enable_reasoning or cfg.reasoning_parser:
        has_parser = any(f.startswith("--reasoning-parser") for f in extra)
        if not has_parser:
            if not cfg.reasoning_parser:
                raise ConfigError(
                    f"engine '{cfg.name}': enable_reasoning needs reasoning_parser "
                    "(e.g. deepseek_r1, qwen3; see `vllm serve --help`)",
                    engine=cfg.name,
                )
            from chainette.engine.backends.vllm import parse_version

            version = parse_version(cfg.server_version)
            # --enable-reasoning was deprecated in 0.9 and removed in 0.10; the parser alone enables it
            if version is not None and version < (0, 10):
                argv.append("--enable-reasoning")
            argv += ["--reasoning-parser", cfg.reasoning_parser]
    return argv + extra


def build_env(cfg: "EngineConfig") -> dict[str, str]:
    """The server's environment: ours + ``extra_env`` + ``CUDA_VISIBLE_DEVICES`` from ``gpu_ids``."""
    env = dict(os.environ)
    env.update(cfg.extra_env)
    if cfg.gpu_ids is not None:
        env["CUDA_VISIBLE_DEVICES"] = ",".join(str(g) for g in cfg.gpu_ids)
    key = cfg.resolved_api_key() if cfg.backend == "vllm_api" else None
    if key:
        env["VLLM_API_KEY"] = key  # via the environment: never in argv or the log
    if cfg.backend == "local":
        env.setdefault("PYTHONUNBUFFERED", "1")
        # the server runs `python -m chainette.engine.local_server`: make this chainette importable
        root = str(Path(__file__).resolve().parents[2])
        env["PYTHONPATH"] = os.pathsep.join(p for p in (root, env.get("PYTHONPATH", "")) if p)
    return env


# -- probing -----------------------------------------------------------------
def _get(host: str, port: int, path: str, timeout: float = 2.0, api_key: str | None = None) -> tuple[int, bytes]:
    conn = http.client.HTTPConnection(_probe_host(host), port, timeout=timeout)
    try:
        headers = {"Authorization": f"Bearer {api_key}"} if api_key else {}
        conn.request("GET", path, headers=headers)
        resp = conn.getresponse()
        return resp.status, resp.read()
    finally:
        conn.close()


def served_models(host: str, port: int, *, timeout: float = 2.0, api_key: str | None = None) -> list[str] | None:
    """Model ids listed by ``/v1/models`` (with aliases and roots), or ``None`` if nothing answers."""
    try:
        status, body = _get(host, port, "/v1/models", timeout, api_key)
    except (OSError, http.client.HTTPException):
        return None
    if status != 200:
        return None
    try:
        data = json.loads(body)
    except ValueError:
        return None
    ids: list[str] = []
    for entry in data.get("data") or []:
        if isinstance(entry, dict):
            ids += [v for v in (entry.get("id"), entry.get("root")) if isinstance(v, str)]
            ids += [a for a in entry.get("aliases") or [] if isinstance(a, str)]
    return ids


def is_ready(host: str, port: int, model: str, *, api_key: str | None = None) -> bool:
    """``/health`` answers 200 and ``/v1/models`` lists ``model``."""
    try:
        status, _ = _get(host, port, "/health", 2.0, api_key)
    except (OSError, http.client.HTTPException):
        return False
    if status != 200:
        return False
    models = served_models(host, port, api_key=api_key)
    return models is not None and model in models


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
def find_running(cfg: "EngineConfig") -> ServerProcess | None:
    """A server already answering on ``cfg.port`` with the wanted model, if any.

    Raises :class:`ServerStartError` when the port answers with a different model.
    """
    if cfg.port is None:
        return None
    want = served_name(cfg)
    key = cfg.resolved_api_key() if cfg.backend == "vllm_api" else None
    models = served_models(cfg.host, cfg.port, api_key=key)
    if models is None:
        return None
    if want not in models:
        raise ServerStartError(
            f"engine '{cfg.name}': port {cfg.port} is already used by a server serving "
            f"{models or 'no model'}, not '{want}'. Choose another `port:` or stop that server.",
            engine=cfg.name,
        )
    if not is_ready(cfg.host, cfg.port, want, api_key=key):
        return None
    return ServerProcess(
        name=cfg.name, model=want, endpoint=f"http://{_probe_host(cfg.host)}:{cfg.port}/v1",
        host=cfg.host, port=cfg.port, reused=True,
    )


def default_log_path(cfg: "EngineConfig", log_dir: str | Path | None, port: int) -> Path:
    if log_dir is not None:
        return Path(log_dir) / "servers" / f"{cfg.name}.log"
    return state_dir() / "logs" / f"{cfg.name}-{port}.log"


def start_server(
    cfg: "EngineConfig",
    *,
    log_dir: str | Path | None = None,
    log_path: str | Path | None = None,
    detached: bool = False,
) -> ServerProcess:
    """Start ``cfg``'s server (or reuse one already serving it) and wait until it is ready.

    A server that is not ``detached`` is tied to this process where the backend allows it.
    """
    running = find_running(cfg)
    t0 = time.monotonic()
    if running is not None:
        bus.publish(ServerReady(engine=cfg.name, endpoint=running.endpoint, seconds=0.0, reused=True))
        return running
    port = cfg.port or free_port(_probe_host(cfg.host))
    argv = build_command(cfg, port, parent_pid=None if detached else os.getpid())
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
                argv, stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT,
                env=env, start_new_session=True, close_fds=True,
            )
        except OSError as exc:
            raise ServerStartError(f"engine '{cfg.name}': cannot run {argv[0]}: {exc}", engine=cfg.name) from exc
    sp = ServerProcess(
        name=cfg.name, model=served_name(cfg), endpoint=endpoint, host=cfg.host, port=port,
        pid=popen.pid, pgid=popen.pid, log_path=str(path), argv=argv, popen=popen,
    )
    try:
        _wait_ready(sp, cfg, t0)
    except BaseException:
        stop_server(sp, grace=5.0, announce=False)
        raise
    bus.publish(ServerReady(engine=cfg.name, endpoint=endpoint, seconds=time.monotonic() - t0))
    return sp


def _wait_ready(sp: ServerProcess, cfg: "EngineConfig", t0: float) -> None:
    deadline = t0 + cfg.startup_timeout
    key = cfg.resolved_api_key() if cfg.backend == "vllm_api" else None
    delay = 0.05
    while True:
        code = sp.popen.poll() if sp.popen is not None else None
        if code is not None:
            raise ServerStartError(
                f"engine '{cfg.name}': server exited with code {code} during startup (log: {sp.log_path})",
                log_tail=log_tail(sp.log_path), engine=cfg.name,
            )
        if is_ready(sp.host, sp.port, sp.model, api_key=key):
            return
        now = time.monotonic()
        if now >= deadline:
            raise ServerStartError(
                f"engine '{cfg.name}': server not ready after {cfg.startup_timeout:g}s "
                f"(startup_timeout; log: {sp.log_path})",
                log_tail=log_tail(sp.log_path), engine=cfg.name,
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
        bus.publish(ServerStopped(engine=sp.name))


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


def describe(sp: ServerProcess) -> dict[str, Any]:
    return {k: getattr(sp, k) for k in ("name", "model", "endpoint", "pid", "pgid", "log_path", "reused")}
