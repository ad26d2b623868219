"""Transport comparison: Chainette's own HTTP/1.1 client vs aiohttp vs httpx vs the openai SDK.

Each (client, in-flight) pair runs in its own subprocess against one mock server, sends the same
structured-output body as ``raw_client.py`` and parses the reply, bounded by ``--max-requests``
and ``--max-seconds`` (at the deadline, requests still in flight are cancelled and only completed
ones count). Prints req/s, process CPU µs per request and the ratio to aiohttp.

    python benchmarks/transport_bench.py                 # 8, 64, 256 in flight, 0 ms latency
    python benchmarks/transport_bench.py --latency-ms 20 --levels 64,256

Clients:
  aiohttp         one aiohttp.ClientSession (the raw baseline)
  chainette-http1 chainette.engine.http1.HTTPPool, the client Chainette's engines use (body by
                  orjson, reply parsed by orjson, as an engine does)
  httpx           httpx.AsyncClient with pool limits = in-flight
  openai-httpx    openai.AsyncOpenAI default transport (httpx), max_retries=0
  openai-aiohttp  openai.AsyncOpenAI(http_client=DefaultAioHttpClient()) -- needs
                  ``openai[aiohttp]``; taken from this interpreter or benchmarks/.venv-peers.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
import time

from common import HERE, cpu_seconds, emit, mock_server, peak_rss_mb, run_child
from raw_client import make_body

CLIENTS = ["aiohttp", "chainette-http1", "httpx", "openai-httpx", "openai-aiohttp"]
PEERS_PY = HERE / ".venv-peers" / "bin" / "python"


async def drive(send, n: int, in_flight: int, max_s: float) -> dict:
    """``in_flight`` workers call ``send(i)`` until ``n`` sent or ``max_s`` elapsed."""
    counter = 0
    ok = 0
    errors = 0
    t0 = time.perf_counter()
    deadline = t0 + max_s

    async def worker() -> None:
        nonlocal counter, ok, errors
        while counter < n and time.perf_counter() < deadline:
            i = counter
            counter += 1
            try:
                await send(i)
                ok += 1
            except asyncio.CancelledError:
                raise
            except Exception:  # noqa: BLE001
                errors += 1

    cpu0 = cpu_seconds()
    workers = [asyncio.create_task(worker()) for _ in range(in_flight)]
    _, pending = await asyncio.wait(workers, timeout=max_s + 0.5)
    for t in pending:
        t.cancel()
    if pending:
        await asyncio.wait(pending, timeout=5)
    wall = time.perf_counter() - t0
    cpu = cpu_seconds() - cpu0
    return {"ok": ok, "errors": errors, "wall_s": wall, "cpu_s": cpu, "timed_out": bool(pending)}


async def child(client: str, base_url: str, in_flight: int, n: int, max_s: float) -> dict:
    chat_url = base_url + "/chat/completions"
    if client == "aiohttp":
        import aiohttp

        conn = aiohttp.TCPConnector(limit=in_flight)
        async with aiohttp.ClientSession(connector=conn) as s:

            async def send(i: int) -> None:
                async with s.post(chat_url, json=make_body(i)) as r:
                    data = await r.json()
                    r.raise_for_status()
                    json.loads(data["choices"][0]["message"]["content"])

            return await drive(send, n, in_flight, max_s) | {"version": aiohttp.__version__}
    if client == "chainette-http1":
        import orjson

        from chainette._version import __version__
        from chainette.engine.http1 import HTTPPool

        pool = HTTPPool(base_url, headers={"Content-Type": "application/json"}, max_idle=in_flight)
        target = base_url.split("//", 1)[1].partition("/")[2]
        path = "/" + target.rstrip("/") + "/chat/completions"

        async def send(i: int) -> None:
            r = await pool.request("POST", path, orjson.dumps(make_body(i)), timeout=120)
            if r.status != 200:
                raise RuntimeError(f"HTTP {r.status}")
            orjson.loads(orjson.loads(r.body)["choices"][0]["message"]["content"])

        try:
            return await drive(send, n, in_flight, max_s) | {"version": __version__}
        finally:
            await pool.aclose()
    if client == "httpx":
        import httpx

        limits = httpx.Limits(max_connections=in_flight, max_keepalive_connections=in_flight)
        async with httpx.AsyncClient(limits=limits, timeout=120) as c:

            async def send(i: int) -> None:
                r = await c.post(chat_url, json=make_body(i))
                r.raise_for_status()
                json.loads(r.json()["choices"][0]["message"]["content"])

            return await drive(send, n, in_flight, max_s) | {"version": httpx.__version__}
    import openai

    if client == "openai-httpx":
        oc = openai.AsyncOpenAI(base_url=base_url, api_key="sk-mock", max_retries=0, timeout=120)
    else:
        from openai import DefaultAioHttpClient

        oc = openai.AsyncOpenAI(
            base_url=base_url, api_key="sk-mock", max_retries=0, timeout=120, http_client=DefaultAioHttpClient()
        )
    async with oc:

        async def send(i: int) -> None:
            body = make_body(i)
            r = await oc.chat.completions.create(
                model=body["model"],
                messages=body["messages"],
                response_format=body["response_format"],
                max_tokens=body["max_tokens"],
            )
            json.loads(r.choices[0].message.content)

        return await drive(send, n, in_flight, max_s) | {"version": openai.__version__}


def openai_aiohttp_python() -> str | None:
    """An interpreter where ``DefaultAioHttpClient()`` can be built (needs httpx_aiohttp)."""
    import subprocess

    probe = "from openai import DefaultAioHttpClient; DefaultAioHttpClient()"
    for py in (sys.executable, str(PEERS_PY)):
        try:
            if subprocess.run([py, "-c", probe], capture_output=True, timeout=60).returncode == 0:
                return py
        except (OSError, subprocess.TimeoutExpired):
            continue
    return None


def measure(
    levels: list[int], latency_ms: float, max_requests: int, max_seconds: float, clients: list[str] = CLIENTS, log=print
) -> list[dict]:
    rows: list[dict] = []
    aio_py = openai_aiohttp_python() if "openai-aiohttp" in clients else None
    with mock_server("--latency-ms", str(latency_ms)) as srv:
        for level in levels:
            base = None
            for client in clients:
                py = sys.executable
                if client == "openai-aiohttp":
                    if aio_py is None:
                        rows.append(
                            {
                                "client": client,
                                "in_flight": level,
                                "skipped": "openai[aiohttp] (httpx_aiohttp) not importable here or in "
                                "benchmarks/.venv-peers",
                            }
                        )
                        continue
                    py = aio_py
                res, err = run_child(
                    [
                        py,
                        __file__,
                        "--child",
                        client,
                        "--url",
                        srv.base_url,
                        "--in-flight",
                        str(level),
                        "--max-requests",
                        str(max_requests),
                        "--max-seconds",
                        str(max_seconds),
                    ],
                    timeout=max_seconds + 60,
                )
                if res is None:
                    rows.append({"client": client, "in_flight": level, "error": err})
                    log(f"  {client:15s} @{level:<4d} ERROR {err[:200]}")
                    continue
                res["req_per_s"] = res["ok"] / res["wall_s"] if res["wall_s"] else 0.0
                res["cpu_us_per_req"] = res["cpu_s"] / res["ok"] * 1e6 if res["ok"] else None
                if client == "aiohttp":
                    base = res
                res["ratio_to_aiohttp"] = res["req_per_s"] / base["req_per_s"] if base else None
                res["cpu_ratio_to_aiohttp"] = (
                    res["cpu_us_per_req"] / base["cpu_us_per_req"] if base and res["cpu_us_per_req"] else None
                )
                res.update(client=client, in_flight=level, python=py)
                rows.append(res)
                log(
                    f"  {client:15s} @{level:<4d} {res['req_per_s']:9.0f} req/s "
                    f"{(res['cpu_us_per_req'] or 0):8.0f} CPU us/req "
                    f"({res['ok']} ok, {res['errors']} errors, {res['wall_s']:.1f}s)"
                )
    return rows


def format_table(rows: list[dict]) -> str:
    out = [
        "| client | version | in flight | req/s | CPU µs/req | req/s vs aiohttp | CPU vs aiohttp |",
        "|---|---|---:|---:|---:|---:|---:|",
    ]
    for r in rows:
        if "skipped" in r or "error" in r:
            out.append(
                f"| {r['client']} | | {r['in_flight']} | SKIPPED ({r.get('skipped') or r.get('error')[:80]}) | | | |"
            )
            continue
        ratio = f"{r['ratio_to_aiohttp']:.2f}x" if r.get("ratio_to_aiohttp") else "-"
        cratio = f"{r['cpu_ratio_to_aiohttp']:.1f}x" if r.get("cpu_ratio_to_aiohttp") else "-"
        cpu = f"{r['cpu_us_per_req']:.0f}" if r.get("cpu_us_per_req") else "-"
        out.append(
            f"| {r['client']} | {r.get('version', '')} | {r['in_flight']} | {r['req_per_s']:.0f} | "
            f"{cpu} | {ratio} | {cratio} |"
        )
    return "\n".join(out)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--levels", default="8,64,256")
    ap.add_argument("--latency-ms", type=float, default=0.0)
    ap.add_argument("--max-requests", type=int, default=4000)
    ap.add_argument("--max-seconds", type=float, default=12.0)
    ap.add_argument("--clients", default=",".join(CLIENTS))
    ap.add_argument("--child", choices=CLIENTS)
    ap.add_argument("--url")
    ap.add_argument("--in-flight", type=int, default=64)
    a = ap.parse_args()
    if a.child:
        res = asyncio.run(child(a.child, a.url, a.in_flight, a.max_requests, a.max_seconds))
        res["peak_rss_mb"] = peak_rss_mb()
        emit(res)
        return
    t0 = time.perf_counter()
    levels = [int(x) for x in a.levels.split(",")]
    rows = measure(levels, a.latency_ms, a.max_requests, a.max_seconds, a.clients.split(","))
    print(
        f"\nTransport comparison, mock server latency {a.latency_ms:g} ms, "
        f"<= {a.max_requests} requests or {a.max_seconds:g} s each "
        f"(total {time.perf_counter() - t0:.0f} s)\n"
    )
    print(format_table(rows))
    emit({"transport": rows, "latency_ms": a.latency_ms})


if __name__ == "__main__":
    main()
