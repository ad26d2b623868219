"""Peer libraries on the same workload: Bespoke Curator, LangChain ``abatch``, NeMo Data
Designer and distilabel.

Each peer runs inside its own virtualenv under ``benchmarks/`` (created by :func:`ensure_venv`,
gitignored; Curator and LangChain share ``.venv-peers``, Data Designer and distilabel get one
each because their dependency pins conflict), so the peers' dependencies never touch the
project's environment. One structured-output request per row (``{"text": "q<i>"}`` ->
``A(answer: str, score: float)``), pointed at the mock server through ``base_url`` with a dummy
key, no retries, caching off. ``--setting default`` runs the peer with its own concurrency
default; ``--setting raised`` raises its concurrency knob to ``--in-flight`` (256).

    benchmarks/.venv-peers/bin/python benchmarks/peers.py --peer langchain --url URL --rows 2000

Memory: ``peak_rss_mb`` is this process's peak; ``peak_tree_rss_mb`` / ``peak_tree_pss_mb`` are
the peaks of the summed RSS / PSS of this process and all its descendants, sampled every 50 ms
(distilabel runs its steps in worker processes; PSS splits the pages they share, RSS counts them
in each).

Notes on fairness:
* Curator counts tokens with tiktoken's ``cl100k_base``, which it downloads on first use; this
  machine has no internet, so the encoding is replaced by a 4-characters-per-token estimate
  (cheaper than tiktoken: it favours Curator). Its rate limits are set far above the mock's rate,
  and the mock sends huge ``x-ratelimit-*`` headers. Concurrency knob: ``max_concurrent_requests``.
* LangChain: ``ChatOpenAI(...).with_structured_output(A).abatch(inputs,
  config={"max_concurrency": 256})`` -- the documented way to batch structured calls
  (default: no ``max_concurrency``).
* Data Designer: a seed DataFrame column ``text`` and an ``LLMStructuredColumnConfig`` with
  ``output_format=A`` on a custom OpenAI-compatible ``ModelProvider`` (its documented structured
  column). That column asks for JSON in the prompt; a real model follows the prompt, the mock
  needs the schema in the body, so the model's ``extra_body`` (a documented inference parameter)
  adds the same ``response_format`` json_schema Chainette sends. Concurrency knob:
  ``max_parallel_requests`` (default 4). Its dataset profiling also wants tiktoken's
  ``cl100k_base`` (not downloadable here): replaced by the same 4-characters estimate.
* distilabel: ``Pipeline`` of ``LoadDataFromDicts`` >> ``TextGeneration(llm=OpenAILLM(...,
  structured_output={"schema": A, "mode": JSON_SCHEMA}))``, ``use_cache=False``. Its default
  structured mode (instructor tool calls) needs a server that returns tool calls; JSON-schema
  mode sends ``response_format`` json_schema like Chainette. Concurrency knob: the task's
  ``input_batch_size`` (rows sent concurrently per batch; default 50), raised with the loader's
  ``batch_size``.
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

from pydantic import BaseModel

HERE = Path(__file__).resolve().parent
VENV = HERE / ".venv-peers"
VENV_PY = VENV / "bin" / "python"
PEERS = ["curator", "langchain", "data-designer", "distilabel"]
SETTINGS = ["default", "raised"]
# peer -> (virtualenv, pip requirement, import probe)
PEER_ENVS = {
    "curator": (VENV, "bespokelabs-curator", "import bespokelabs.curator"),
    "langchain": (VENV, "langchain-openai", "import langchain_openai"),
    "data-designer": (HERE / ".venv-peers-dd", "data-designer", "import data_designer.interface"),
    "distilabel": (
        HERE / ".venv-peers-distilabel",
        "distilabel[openai,instructor]",
        "import distilabel.pipeline, instructor, openai",
    ),
}
PEER_PACKAGES = [PEER_ENVS[p][1] for p in PEERS]


def peer_python(peer: str) -> Path:
    return PEER_ENVS[peer][0] / "bin" / "python"


def ensure_venv(
    log=print, timeout: float = 900.0, peers: list[str] | None = None, install: bool = True
) -> tuple[dict[str, str], dict[str, str]]:
    """Create the peers' virtualenvs if needed; return ({peer: python path}, {peer: skip reason}).

    ``install=False`` only reports what is already installed (smoke mode)."""
    skipped: dict[str, str] = {}
    pythons: dict[str, str] = {}
    for peer in peers or PEERS:
        venv, pkg, probe = PEER_ENVS[peer]
        py = venv / "bin" / "python"
        if not py.exists():
            if not install:
                skipped[peer] = "not installed (the full suite installs it)"
                continue
            log(f"  creating {venv} for {peer} (first run only)...")
            try:
                subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True, capture_output=True, timeout=120)
            except (subprocess.SubprocessError, OSError) as exc:
                skipped[peer] = f"venv creation failed: {exc}"
                continue
        ok = subprocess.run([str(py), "-c", probe], capture_output=True).returncode == 0
        if not ok and not install:
            skipped[peer] = "not installed (the full suite installs it)"
            continue
        if not ok:
            log(f"  installing {pkg} into {venv.name}...")
            try:
                r = subprocess.run(
                    [str(py), "-m", "pip", "install", "-q", pkg], capture_output=True, text=True, timeout=timeout
                )
                if r.returncode != 0:
                    skipped[peer] = f"pip install {pkg} failed: {r.stderr.strip()[-300:]}"
            except subprocess.TimeoutExpired:
                skipped[peer] = f"pip install {pkg} timed out after {timeout:.0f}s"
            if peer not in skipped and subprocess.run([str(py), "-c", probe], capture_output=True).returncode != 0:
                skipped[peer] = f"{probe} fails after install"
        if peer not in skipped:
            pythons[peer] = str(py)
    return pythons, skipped


def version_of(peer: str) -> str | None:
    """The installed version of a peer's package (in its virtualenv)."""
    dist = {
        "curator": "bespokelabs-curator",
        "langchain": "langchain-openai",
        "data-designer": "data-designer",
        "distilabel": "distilabel",
    }[peer]
    py = peer_python(peer)
    if not py.exists():
        return None
    r = subprocess.run(
        [str(py), "-c", f"import importlib.metadata as m; print(m.version({dist!r}))"], capture_output=True, text=True
    )
    return r.stdout.strip() or None


class TreeRSS:
    """Peak summed RSS of this process and all its descendants, sampled every ``every`` seconds."""

    def __init__(self, every: float = 0.05) -> None:
        self.every = every
        self.peak_kb = 0  # summed RSS (pages shared between the processes counted in each)
        self.peak_pss_kb = 0  # summed PSS (shared pages split between the processes sharing them)
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._loop, daemon=True)

    def __enter__(self) -> TreeRSS:
        self._thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self._stop.set()
        self._thread.join(timeout=2)
        self._sample()

    @staticmethod
    def _children(pid: int) -> list[int]:
        kids: list[int] = []
        try:
            for tid in os.listdir(f"/proc/{pid}/task"):
                with open(f"/proc/{pid}/task/{tid}/children") as f:
                    kids.extend(int(x) for x in f.read().split())
        except OSError:
            pass
        return kids

    @staticmethod
    def _rss_pss_kb(pid: int) -> tuple[int, int]:
        rss = pss = 0
        try:
            with open(f"/proc/{pid}/smaps_rollup") as f:
                for line in f:
                    if line.startswith("Rss:"):
                        rss = int(line.split()[1])
                    elif line.startswith("Pss:"):
                        pss = int(line.split()[1])
        except OSError:
            pass
        return rss, pss

    def _sample(self) -> None:
        rss = pss = 0
        todo, seen = [os.getpid()], set()
        while todo:
            pid = todo.pop()
            if pid in seen:
                continue
            seen.add(pid)
            r, p = self._rss_pss_kb(pid)
            rss, pss = rss + r, pss + p
            todo.extend(self._children(pid))
        self.peak_kb = max(self.peak_kb, rss)
        self.peak_pss_kb = max(self.peak_pss_kb, pss)

    def _loop(self) -> None:
        while not self._stop.wait(self.every):
            self._sample()


class _Approx:
    """Stand-in for tiktoken's cl100k_base (not downloadable offline): 4 chars per token."""

    name = "cl100k_base-approx"

    def encode(self, text, *args, **kwargs):
        return list(range(max(1, len(str(text)) // 4)))


# ------------------------------------------------------------------ inside the peers venv
def run_langchain(url: str, rows: int, in_flight: int | None) -> dict:
    from langchain_openai import ChatOpenAI
    from pydantic import BaseModel

    class A(BaseModel):
        answer: str
        score: float

    llm = ChatOpenAI(model="mock", base_url=url, api_key="sk-mock", max_retries=0, max_tokens=64, timeout=120)
    structured = llm.with_structured_output(A)
    inputs = [
        [("system", "Reply with a JSON object matching the schema of A."), ("user", f"q{i}")] for i in range(rows)
    ]

    import asyncio

    async def go():
        config = {"max_concurrency": in_flight} if in_flight else None
        return await structured.abatch(inputs, config=config, return_exceptions=True)

    out = asyncio.run(go())
    ok = sum(isinstance(o, A) for o in out)
    return {"ok": ok, "errors": rows - ok}


def run_curator(url: str, rows: int, in_flight: int | None) -> dict:
    os.environ.setdefault("CURATOR_DISABLE_CACHE", "1")
    os.environ.setdefault("CURATOR_DISABLE_RICH_DISPLAY", "1")
    os.environ.setdefault("TELEMETRY_ENABLED", "false")
    os.environ.setdefault("CURATOR_CACHE_DIR", tempfile.mkdtemp(prefix="curator-bench-"))
    from bespokelabs import curator
    from bespokelabs.curator.request_processor.online import openai_online_request_processor as oorp
    from pydantic import BaseModel

    oorp.OpenAIOnlineRequestProcessor.get_token_encoding = lambda self: _Approx()

    class A(BaseModel):
        answer: str
        score: float

    class Bench(curator.LLM):
        response_format = A

        def prompt(self, row):
            return [
                {"role": "system", "content": "Reply with a JSON object matching the schema of A."},
                {"role": "user", "content": row["text"]},
            ]

        def parse(self, row, response):
            return {"answer": response.answer, "score": response.score}

    llm = Bench(
        model_name="mock",
        backend="openai",
        generation_params={"max_tokens": 64},
        backend_params={
            "base_url": url,
            "api_key": "sk-mock",
            "max_retries": 0,
            "require_all_responses": False,
            "max_requests_per_minute": 100_000_000,
            "max_tokens_per_minute": 10_000_000_000,
            "request_timeout": 120,
            **({"max_concurrent_requests": in_flight} if in_flight else {}),
        },
    )
    out = llm([{"text": f"q{i}"} for i in range(rows)])
    ds = getattr(out, "dataset", out)
    ok = len(ds)
    return {"ok": ok, "errors": rows - ok}


def _schema_body(model) -> dict:
    """The ``response_format`` Chainette sends for ``model`` (strict json_schema)."""
    schema = dict(model.model_json_schema(), additionalProperties=False)
    return {"type": "json_schema", "json_schema": {"name": model.__name__, "schema": schema, "strict": True}}


def run_data_designer(url: str, rows: int, in_flight: int | None) -> dict:
    os.environ.setdefault("DATA_DESIGNER_TELEMETRY", "0")
    import tiktoken

    tiktoken.get_encoding = lambda name: _Approx()  # its profiling's tokenizer (not downloadable here)
    import data_designer.config as dd
    import pandas as pd
    from data_designer.interface import DataDesigner
    from pydantic import BaseModel

    class A(BaseModel):
        answer: str
        score: float

    provider = dd.ModelProvider(name="mock", endpoint=url, provider_type="openai", api_key="sk-mock")
    params = {"max_tokens": 64, "extra_body": {"response_format": _schema_body(A)}}
    if in_flight:
        params["max_parallel_requests"] = in_flight
    model = dd.ModelConfig(
        alias="mock",
        model="mock",
        provider="mock",
        skip_health_check=True,
        inference_parameters=dd.ChatCompletionInferenceParams(**params),
    )
    designer = DataDesigner(artifact_path=tempfile.mkdtemp(prefix="dd-bench-"), model_providers=[provider])
    builder = dd.DataDesignerConfigBuilder(model_configs=[model])
    builder.with_seed_dataset(dd.DataFrameSeedSource(df=pd.DataFrame({"text": [f"q{i}" for i in range(rows)]})))
    builder.add_column(
        dd.LLMStructuredColumnConfig(name="out", model_alias="mock", prompt="{{ text }}", output_format=A)
    )
    result = designer.create(builder, num_records=rows)
    df = result.load_dataset()
    ok = int(df["out"].notna().sum()) if "out" in df else 0
    return {"ok": ok, "errors": rows - ok}


class A(BaseModel):
    """The output model at module level, for distilabel (it pickles the schema into its workers)."""

    answer: str
    score: float


def run_distilabel(url: str, rows: int, in_flight: int | None) -> dict:
    os.environ.setdefault("DISTILABEL_CACHE_DIR", tempfile.mkdtemp(prefix="distilabel-bench-"))
    import instructor
    from distilabel.models.llms import OpenAILLM
    from distilabel.pipeline import Pipeline
    from distilabel.steps import LoadDataFromDicts
    from distilabel.steps.tasks import TextGeneration
    from distilabel.steps.tasks.structured_outputs import instructor as dl_instructor

    # distilabel ships the step to a worker process as its serialised form, which turns the
    # instructor.Mode into a plain str, and prepare_instructor then calls mode.value: give it
    # the Mode back (workers are forked, so they inherit this shim)
    prepare = dl_instructor.prepare_instructor
    dl_instructor.prepare_instructor = lambda client, mode=None, framework="openai": prepare(
        client, mode=instructor.Mode(mode) if isinstance(mode, str) else mode, framework=framework
    )
    batch = {"input_batch_size": in_flight} if in_flight else {}
    with Pipeline(name="chainette-bench") as pipeline:
        load = LoadDataFromDicts(
            data=[{"instruction": f"q{i}"} for i in range(rows)], **({"batch_size": in_flight} if in_flight else {})
        )
        gen = TextGeneration(
            llm=OpenAILLM(
                model="mock",
                base_url=url,
                api_key="sk-mock",
                max_retries=0,
                timeout=120,
                generation_kwargs={"max_new_tokens": 64},
                structured_output={"schema": A, "mode": instructor.Mode.JSON_SCHEMA},
            ),
            system_prompt="Reply with a JSON object matching the schema of A.",
            **batch,
        )
        load >> gen
    distiset = pipeline.run(use_cache=False)
    ds = distiset["default"]["train"]
    ok = sum(1 for g in ds["generation"] if g)
    return {"ok": ok, "errors": rows - ok}


PEER_IMPORTS = {
    "curator": ["bespokelabs.curator", "bespokelabs.curator.request_processor.online.openai_online_request_processor"],
    "langchain": ["langchain_openai"],
    "data-designer": ["pandas", "tiktoken", "data_designer.config", "data_designer.interface"],
    "distilabel": [
        "instructor",
        "distilabel.models.llms",
        "distilabel.pipeline",
        "distilabel.steps",
        "distilabel.steps.tasks",
        "distilabel.steps.tasks.structured_outputs.instructor",
    ],
}
"""Imported before the clock starts."""

RUNNERS = {
    "curator": run_curator,
    "langchain": run_langchain,
    "data-designer": run_data_designer,
    "distilabel": run_distilabel,
}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--peer", choices=PEERS, required=True)
    ap.add_argument("--url", required=True)
    ap.add_argument("--rows", type=int, default=2000)
    ap.add_argument("--in-flight", type=int, default=256)
    ap.add_argument(
        "--setting",
        choices=SETTINGS,
        default="raised",
        help="default: the peer's own concurrency; raised: its concurrency knob = --in-flight",
    )
    a = ap.parse_args()
    sys.path.insert(0, str(HERE))
    from common import cpu_seconds, emit, peak_rss_mb

    fn = RUNNERS[a.peer]
    in_flight = a.in_flight if a.setting == "raised" else None
    import importlib

    for module in PEER_IMPORTS[a.peer]:  # imports are not part of the measurement, as for Chainette
        importlib.import_module(module)
    with TreeRSS() as tree:
        cpu0, t0 = cpu_seconds(), time.perf_counter()
        res = fn(a.url, a.rows, in_flight)
        wall, cpu = time.perf_counter() - t0, cpu_seconds() - cpu0
    rows = res["ok"]
    emit(
        {
            "client": a.peer,
            "setting": a.setting,
            "rows": rows,
            "errors": res["errors"],
            "wall_s": wall,
            "cpu_s": cpu,
            "rows_per_s": rows / wall if wall else 0.0,
            "cpu_us_per_row": cpu / rows * 1e6 if rows else None,
            "peak_rss_mb": peak_rss_mb(),
            "peak_tree_rss_mb": tree.peak_kb / 1024.0,
            "peak_tree_pss_mb": tree.peak_pss_kb / 1024.0,
        }
    )


if __name__ == "__main__":
    main()
