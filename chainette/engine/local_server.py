"""The embedded llama.cpp server (xllamacpp), run as its own process.

``python -m chainette.engine.local_server --model PATH --host 127.0.0.1 --port N
--alias NAME --n-parallel 2 --threads 1 --ctx 2048`` serves the OpenAI-compatible API
(``/health``, ``/v1/models``, ``/v1/chat/completions``) until SIGTERM/SIGINT. The
process manager starts it exactly like ``vllm serve``. ``--model`` is resolved by
:mod:`chainette.engine.local_models` (a GGUF path, ``hf://owner/repo/file.gguf``, or a
named model such as ``smollm2``, the default); ``--threads`` and ``--n-parallel``
default to :func:`chainette.engine.local_tuning.local_defaults` for this machine.
"""

from __future__ import annotations

import argparse
import signal
import sys
import threading

from chainette.engine.local_models import model_alias, resolve_model_path  # noqa: F401  (re-exported)
from chainette.engine.local_tuning import local_defaults


def _watch_parent(pid: int, stop: threading.Event) -> None:
    """Stop when the process that started us is gone (e.g. it was killed with SIGKILL)."""
    import os

    while not stop.wait(1.0):
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            print(f"chainette local server: parent {pid} is gone, stopping", flush=True)
            stop.set()
        except PermissionError:
            pass


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m chainette.engine.local_server")
    ap.add_argument("--model", default="smollm2")
    ap.add_argument("--host", default="127.0.0.1")
    ap.add_argument("--port", type=int, required=True)
    ap.add_argument("--alias", default=None)
    threads, n_parallel = local_defaults()
    ap.add_argument("--n-parallel", type=int, default=n_parallel)
    ap.add_argument("--threads", type=int, default=threads)
    ap.add_argument("--ctx", type=int, default=4096, help="total context, shared by the parallel slots")
    ap.add_argument("--parent-pid", type=int, default=None, help="exit when this process is gone")
    args = ap.parse_args(argv)

    try:
        path = resolve_model_path(args.model)
    except FileNotFoundError as exc:
        print(f"error: {exc}", file=sys.stderr, flush=True)
        return 2
    import xllamacpp

    p = xllamacpp.CommonParams()
    p.model.path = str(path)
    p.hostnames = [args.host]
    p.port = args.port
    p.n_parallel = args.n_parallel
    p.n_ctx = args.ctx
    p.cpuparams.n_threads = args.threads
    p.cpuparams_batch.n_threads = args.threads
    p.model_alias = {args.alias or model_alias(args.model)}
    stop = threading.Event()
    for sig in (signal.SIGTERM, signal.SIGINT):
        signal.signal(sig, lambda *_: stop.set())
    print(f"chainette local server: {path.name} on http://{args.host}:{args.port}", flush=True)
    server = xllamacpp.Server(p)  # starts serving in background threads
    if args.parent_pid:
        threading.Thread(target=_watch_parent, args=(args.parent_pid, stop), daemon=True).start()
    stop.wait()
    del server
    print("chainette local server: stopped", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
