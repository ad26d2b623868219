"""Peer libraries on the same workload: Bespoke Curator and LangChain ``abatch``.

Runs inside ``benchmarks/.venv-peers`` (created by :func:`ensure_venv`, gitignored), so the peers'
dependencies never touch the project's environment. One structured-output request per row
(``{"text": "q<i>"}`` -> ``A(answer: str, score: float)``), pointed at the mock server through
``base_url`` with a dummy key, 256 requests in flight, no retries, caching off.

    benchmarks/.venv-peers/bin/python benchmarks/peers.py --peer langchain --url URL --rows 2000

Notes on fairness:
* Curator counts tokens with tiktoken's ``cl100k_base``, which it downloads on first use; this
  machine has no internet, so the encoding is replaced by a 4-characters-per-token estimate
  (cheaper than tiktoken: it favours Curator). Its rate limits are set far above the mock's rate,
  and the mock sends huge ``x-ratelimit-*`` headers.
* LangChain: ``ChatOpenAI(...).with_structured_output(A).abatch(inputs,
  config={"max_concurrency": 256})`` -- the documented way to batch structured calls.
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
VENV = HERE / ".venv-peers"
VENV_PY = VENV / "bin" / "python"
PEER_PACKAGES = ["bespokelabs-curator", "langchain-openai"]
PEERS = ["curator", "langchain"]


def ensure_venv(log=print, timeout: float = 900.0) -> tuple[str | None, dict[str, str]]:
    """Create the peers venv if needed; return (python path or None, {peer: skip reason})."""
    probes = {"curator": "import bespokelabs.curator", "langchain": "import langchain_openai"}
    skipped: dict[str, str] = {}
    if not VENV_PY.exists():
        log(f"  creating {VENV} and installing {' '.join(PEER_PACKAGES)} (first run only)...")
        try:
            subprocess.run([sys.executable, "-m", "venv", str(VENV)], check=True,
                           capture_output=True, timeout=120)
        except (subprocess.SubprocessError, OSError) as exc:
            return None, {p: f"venv creation failed: {exc}" for p in PEERS}
    for peer, pkg in zip(PEERS, PEER_PACKAGES):
        ok = subprocess.run([str(VENV_PY), "-c", probes[peer]], capture_output=True).returncode == 0
        if ok:
            continue
        try:
            r = subprocess.run([str(VENV_PY), "-m", "pip", "install", "-q", pkg],
                               capture_output=True, text=True, timeout=timeout)
            if r.returncode != 0:
                skipped[peer] = f"pip install {pkg} failed: {r.stderr.strip()[-300:]}"
        except subprocess.TimeoutExpired:
            skipped[peer] = f"pip install {pkg} timed out after {timeout:.0f}s"
        if peer not in skipped and subprocess.run(
                [str(VENV_PY), "-c", probes[peer]], capture_output=True).returncode != 0:
            skipped[peer] = f"{probes[peer]} fails after install"
    return str(VENV_PY), skipped


# ------------------------------------------------------------------ inside the peers venv
def run_langchain(url: str, rows: int, in_flight: int) -> dict:
    from langchain_openai import ChatOpenAI
    from pydantic import BaseModel

    class A(BaseModel):
        answer: str
        score: float

    llm = ChatOpenAI(model="mock", base_url=url, api_key="sk-mock", max_retries=0,
                     max_tokens=64, timeout=120)
    structured = llm.with_structured_output(A)
    inputs = [[("system", "Reply with a JSON object matching the schema of A."),
               ("user", f"q{i}")] for i in range(rows)]

    import asyncio

    async def go():
        return await structured.abatch(inputs, config={"max_concurrency": in_flight},
                                       return_exceptions=True)

    out = asyncio.run(go())
    ok = sum(isinstance(o, A) for o in out)
    return {"ok": ok, "errors": rows - ok}


def run_curator(url: str, rows: int, in_flight: int) -> dict:
    os.environ.setdefault("CURATOR_DISABLE_CACHE", "1")
    os.environ.setdefault("CURATOR_DISABLE_RICH_DISPLAY", "1")
    os.environ.setdefault("TELEMETRY_ENABLED", "false")
    os.environ.setdefault("CURATOR_CACHE_DIR", tempfile.mkdtemp(prefix="curator-bench-"))
    from pydantic import BaseModel

    from bespokelabs import curator
    from bespokelabs.curator.request_processor.online import openai_online_request_processor as oorp

    class _Approx:
        """Stand-in for tiktoken's cl100k_base (not downloadable offline): 4 chars per token."""

        def encode(self, text, *args, **kwargs):
            return range(max(1, len(str(text)) // 4))

    oorp.OpenAIOnlineRequestProcessor.get_token_encoding = lambda self: _Approx()

    class A(BaseModel):
        answer: str
        score: float

    class Bench(curator.LLM):
        response_format = A

        def prompt(self, row):
            return [{"role": "system", "content": "Reply with a JSON object matching the schema of A."},
                    {"role": "user", "content": row["text"]}]

        def parse(self, row, response):
            return {"answer": response.answer, "score": response.score}

    llm = Bench(
        model_name="mock", backend="openai",
        generation_params={"max_tokens": 64},
        backend_params={
            "base_url": url, "api_key": "sk-mock", "max_retries": 0,
            "require_all_responses": False, "max_concurrent_requests": in_flight,
            "max_requests_per_minute": 100_000_000, "max_tokens_per_minute": 10_000_000_000,
            "request_timeout": 120,
        },
    )
    out = llm([{"text": f"q{i}"} for i in range(rows)])
    ds = getattr(out, "dataset", out)
    ok = len(ds)
    return {"ok": ok, "errors": rows - ok}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--peer", choices=PEERS, required=True)
    ap.add_argument("--url", required=True)
    ap.add_argument("--rows", type=int, default=2000)
    ap.add_argument("--in-flight", type=int, default=256)
    a = ap.parse_args()
    sys.path.insert(0, str(HERE))
    from common import cpu_seconds, emit, peak_rss_mb

    fn = run_curator if a.peer == "curator" else run_langchain
    cpu0, t0 = cpu_seconds(), time.perf_counter()
    res = fn(a.url, a.rows, a.in_flight)
    wall, cpu = time.perf_counter() - t0, cpu_seconds() - cpu0
    rows = res["ok"]
    emit({"client": a.peer, "rows": rows, "errors": res["errors"], "wall_s": wall, "cpu_s": cpu,
          "rows_per_s": rows / wall if wall else 0.0,
          "cpu_us_per_row": cpu / rows * 1e6 if rows else None, "peak_rss_mb": peak_rss_mb()})


if __name__ == "__main__":
    main()
