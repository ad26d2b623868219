"""Raw aiohttp baseline: a plain client as a user would write it by hand, for ratios.

N requests with the same body shape a Chainette step sends (system + user message,
``response_format`` json_schema, ``max_tokens``) over one ``aiohttp.ClientSession`` with a fixed
in-flight bound (a semaphore acquired before each task is created, so at most ``--in-flight``
requests and tasks exist at once). Each reply is parsed (``resp.json()``) and its content
``json.loads``-ed. Reports rows/s, process CPU µs per row and peak RSS as a ``RESULT {json}`` line.

    python benchmarks/raw_client.py --url http://127.0.0.1:PORT/v1 --rows 20000 --in-flight 256

``--requests-per-row K`` drives K requests per row (the raw equivalent of a K-call chain); rows/s
is then rows (= requests / K) per second.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import time

import aiohttp
from common import ANSWER_SCHEMA, SYSTEM_PROMPT, cpu_seconds, emit, peak_rss_mb


def make_body(i: int, max_tokens: int = 64, model: str = "mock", temperature: float | None = None) -> dict:
    body = {
        "model": model,
        "messages": [
            {"role": "system", "content": SYSTEM_PROMPT},
            {"role": "user", "content": f"q{i}"},
        ],
        "response_format": {
            "type": "json_schema",
            "json_schema": {"name": "A", "schema": ANSWER_SCHEMA, "strict": True},
        },
        "max_tokens": max_tokens,
    }
    if temperature is not None:  # as a Chainette step sends SamplingParams(temperature=...)
        body["temperature"] = temperature
    return body


async def run(
    url: str,
    requests: int,
    in_flight: int,
    max_seconds: float,
    model: str = "mock",
    first: int = 0,
    max_tokens: int = 64,
    temperature: float | None = None,
) -> dict:
    chat_url = url.rstrip("/") + "/chat/completions"
    sem = asyncio.Semaphore(in_flight)
    ok = 0
    errors = 0
    completion_tokens = 0

    async def one(session: aiohttp.ClientSession, i: int) -> None:
        nonlocal ok, errors, completion_tokens
        try:
            async with session.post(chat_url, json=make_body(first + i, max_tokens, model, temperature)) as resp:
                data = await resp.json()
                if resp.status != 200:
                    errors += 1
                    return
                json.loads(data["choices"][0]["message"]["content"])
                ok += 1
                completion_tokens += (data.get("usage") or {}).get("completion_tokens") or 0
        except Exception:  # noqa: BLE001 - a baseline counts failures, it does not retry
            errors += 1
        finally:
            sem.release()

    connector = aiohttp.TCPConnector(limit=in_flight, limit_per_host=in_flight)
    timeout = aiohttp.ClientTimeout(total=120)
    async with aiohttp.ClientSession(connector=connector, timeout=timeout) as session:
        cpu0, t0 = cpu_seconds(), time.perf_counter()
        deadline = t0 + max_seconds
        tasks: set[asyncio.Task] = set()
        sent = 0
        for i in range(requests):
            await sem.acquire()
            if time.perf_counter() > deadline:
                sem.release()
                break
            task = asyncio.create_task(one(session, i))
            tasks.add(task)
            task.add_done_callback(tasks.discard)
            sent += 1
        if tasks:
            await asyncio.gather(*tasks)
        wall = time.perf_counter() - t0
        cpu = cpu_seconds() - cpu0
    return {
        "requests": sent,
        "ok": ok,
        "errors": errors,
        "wall_s": wall,
        "cpu_s": cpu,
        "completion_tokens": completion_tokens,
    }


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--url", required=True, help="base URL ending in /v1")
    ap.add_argument("--rows", type=int, default=20000)
    ap.add_argument("--in-flight", type=int, default=256)
    ap.add_argument("--requests-per-row", type=int, default=1)
    ap.add_argument("--max-seconds", type=float, default=600.0)
    ap.add_argument("--model", default="mock", help="the body's model name")
    ap.add_argument("--first", type=int, default=0, help="user prompts are q<first>, q<first+1>, ...")
    ap.add_argument("--max-tokens", type=int, default=64)
    ap.add_argument("--temperature", type=float, help="sent when given (default: the server's)")
    a = ap.parse_args()
    r = asyncio.run(
        run(
            a.url,
            a.rows * a.requests_per_row,
            a.in_flight,
            a.max_seconds,
            a.model,
            a.first,
            a.max_tokens,
            a.temperature,
        )
    )
    rows = r["ok"] / a.requests_per_row
    emit(
        {
            "client": "raw-aiohttp",
            "rows": rows,
            "requests": r["requests"],
            "errors": r["errors"],
            "wall_s": r["wall_s"],
            "cpu_s": r["cpu_s"],
            "rows_per_s": rows / r["wall_s"] if r["wall_s"] else 0.0,
            "cpu_us_per_row": r["cpu_s"] / rows * 1e6 if rows else None,
            "cpu_us_per_request": r["cpu_s"] / r["ok"] * 1e6 if r["ok"] else None,
            "completion_tokens": r["completion_tokens"],
            "completion_tokens_per_s": r["completion_tokens"] / r["wall_s"] if r["wall_s"] else 0.0,
            "peak_rss_mb": peak_rss_mb(),
        }
    )


if __name__ == "__main__":
    main()
