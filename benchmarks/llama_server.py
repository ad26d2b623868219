"""A real server saturated: Chainette and the raw client against the embedded llama.cpp server.

    python benchmarks/llama_server.py --rows 24 --repeat 2

Starts the local llama.cpp server Chainette ships (``python -m chainette.engine.local_server``,
the default model SmolLM2-135M, this machine's default threads and slots, or ``--slots`` /
``--threads``) once, then alternates the raw aiohttp client and a one-Step Chainette chain
(default settings: item cache on, a fresh cache each run, StreamWriter run directory), both
with as many requests in flight as the server has slots, the same prompts (Chainette's schema
instruction as the system message, ``q<i>`` as the user message), the same strict
``response_format`` json_schema (llama.cpp compiles it to a grammar) and ``max_tokens``.
Each pair of runs sends prompts the server has not seen, the same to both clients, at
temperature 0 (the same replies: tokens/s then compares the time the same work took), the
order alternating from pair to pair.

Reports completion tokens/s of each client (the server's ``usage``) and the ratio, one
``RESULT {json}`` line: ``runs`` (every run) and ``ratio_median`` (Chainette / raw, the
median over the repeats). Exits 0 with ``skipped`` set when the server cannot start (no
``xllamacpp`` or no model).
"""

from __future__ import annotations

import argparse
import os
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

from common import REPO, emit, run_child, stop_process_group

HERE = Path(__file__).resolve().parent


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def start_server(slots: int | None, threads: int | None, ctx: int, log: Path) -> tuple[subprocess.Popen, str]:
    port = _free_port()
    argv = [sys.executable, "-m", "chainette.engine.local_server", "--port", str(port), "--ctx", str(ctx)]
    if slots:
        argv += ["--n-parallel", str(slots)]
    if threads:
        argv += ["--threads", str(threads)]
    proc = subprocess.Popen(
        argv,
        stdout=log.open("w"),
        stderr=subprocess.STDOUT,
        start_new_session=True,
        env=dict(os.environ, PYTHONPATH=str(REPO)),
    )
    deadline = time.monotonic() + 180
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"llama.cpp server exited {proc.returncode}: {log.read_text()[-800:]}")
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{port}/health", timeout=2) as r:
                if r.status == 200:
                    return proc, f"http://127.0.0.1:{port}/v1"
        except OSError:
            pass
        time.sleep(0.5)
    stop_process_group(proc)
    raise RuntimeError("llama.cpp server did not answer /health within 180 s")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--rows", type=int, default=24, help="rows per run")
    ap.add_argument("--repeat", type=int, default=2, help="raw/Chainette pairs")
    ap.add_argument("--slots", type=int, default=None, help="server slots (default: this machine's default)")
    ap.add_argument("--threads", type=int, default=None)
    ap.add_argument("--ctx", type=int, default=2048)
    ap.add_argument("--max-tokens", type=int, default=160, help="both clients (a small model can ramble)")
    a = ap.parse_args()

    from chainette.engine.local_models import model_alias
    from chainette.engine.local_tuning import local_defaults

    d_threads, d_slots = local_defaults()
    slots = a.slots or d_slots
    alias = model_alias("smollm2")
    folder = Path(tempfile.mkdtemp(prefix="chainette-llama-bench-"))
    try:
        proc, url = start_server(a.slots, a.threads, a.ctx, folder / "server.log")
    except Exception as exc:  # noqa: BLE001 - no xllamacpp, no model: a skip, not a crash
        emit({"client": "llama-server", "skipped": f"{type(exc).__name__}: {str(exc)[-300:]}"})
        shutil.rmtree(folder, ignore_errors=True)
        return
    runs: list[dict] = []
    ratios: list[float] = []
    offset = 0
    try:
        # warm-up: the first requests pay the server's first-use costs
        run_child(
            [
                sys.executable,
                str(HERE / "raw_client.py"),
                "--url",
                url,
                "--rows",
                str(slots),
                "--in-flight",
                str(slots),
                "--model",
                alias,
            ],
            timeout=300,
        )
        for k in range(a.repeat):
            pair = {}
            # each pair: new prompts q<offset+i>, the same for both clients, temperature 0 (both
            # get the same replies, so tokens/s compares the time the same work took); the
            # order alternates so that neither client always runs second
            offset += 10_000
            for client in ("raw", "chainette") if k % 2 == 0 else ("chainette", "raw"):
                # the same request for both: rows, in flight, model, prompts, max_tokens, temperature
                common_args = ["--url", url, "--rows", str(a.rows), "--in-flight", str(slots), "--model", alias]
                common_args += ["--first", str(offset), "--max-tokens", str(a.max_tokens), "--temperature", "0"]
                if client == "raw":
                    argv, env = [sys.executable, str(HERE / "raw_client.py"), *common_args], None
                else:
                    argv = [sys.executable, str(HERE / "chainette_workloads.py"), "step", *common_args]
                    argv += ["--backend", "openai", "--cache"]
                    env = {"CHAINETTE_CACHE_DIR": str(folder / f"cache{offset}")}
                res, err = run_child(argv, timeout=900, env=env)
                if res is None:
                    raise RuntimeError(f"{client} run failed: {err[-500:]}")
                res["loadavg_1m"] = os.getloadavg()[0]
                res["client"] = "raw-aiohttp" if client == "raw" else "chainette"
                runs.append(res)
                pair[client] = res
                print(
                    f"  {client:9s} {res['rows']:.0f} rows, {res['completion_tokens']} completion tokens, "
                    f"{res['completion_tokens_per_s']:.1f} tok/s [load {res['loadavg_1m']:.1f}]",
                    flush=True,
                )
            if pair["raw"]["completion_tokens_per_s"]:
                ratios.append(pair["chainette"]["completion_tokens_per_s"] / pair["raw"]["completion_tokens_per_s"])
    finally:
        stop_process_group(proc)
        shutil.rmtree(folder, ignore_errors=True)
    emit(
        {
            "client": "llama-server",
            "model": alias,
            "slots": slots,
            "threads": a.threads or d_threads,
            "rows": a.rows,
            "runs": runs,
            "ratios": ratios,
            "ratio_median": statistics.median(ratios) if ratios else None,
        }
    )


if __name__ == "__main__":
    main()
