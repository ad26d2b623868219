"""The Ray runner on a local 2-CPU cluster: same run directory as a local run, engine limits
across workers, a managed server once per node, resume after a worker or the driver dies, and
an engine of three endpoints with one killed and one stalled while the run goes on.

Every comparison is by row id; request counts come from the mock servers' own logs.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import textwrap
import threading
import time
from collections import Counter
from pathlib import Path
from typing import Any

import pytest
from pydantic import BaseModel

from chainette import Branch, Chain, SamplingParams, Step, apply, register_engine
from chainette.engine.registry import unregister_engine
from tests.mock_openai_server import messages_hash

SP = SamplingParams(temperature=0, max_tokens=32)


class Question(BaseModel):
    text: str


class Topic(BaseModel):
    topic: str
    score: float


class Translation(BaseModel):
    text: str


class Summary(BaseModel):
    summary: str


class Label(BaseModel):
    label: str


def twice(t: Topic) -> list[Topic]:
    """Fan-out: each topic becomes two rows (ids ``<row>.0`` and ``<row>.1``)."""
    return [t, Topic(topic=t.topic + " again", score=t.score)]


def branching_chain(engine: str) -> Chain:
    topic = Step(
        "topic",
        input_model=Question,
        output_model=Topic,
        engine_name=engine,
        sampling=SP,
        user_prompt="Topic of: {{ text }}",
    )
    fr = Step(
        "to_fr",
        input_model=Topic,
        output_model=Translation,
        engine_name=engine,
        sampling=SP,
        user_prompt="French for {{ chain_input.text }} ({{ topic }})",
    )
    es = Step(
        "to_es",
        input_model=Topic,
        output_model=Translation,
        engine_name=engine,
        sampling=SP,
        user_prompt="Spanish for {{ topic }}",
    )
    summary = Step(
        "summary",
        output_model=Summary,
        engine_name=engine,
        sampling=SP,
        user_prompt="{{ french.text }} / {{ spanish.text }}",
    )
    return Chain(
        "dist",
        steps=[topic, apply(twice), [Branch("fr", [fr]).join("french"), Branch("es", [es]).join("spanish")], summary],
    )


def label_chain(engine: str) -> Chain:
    return Chain(
        "labels",
        steps=[
            Step(
                "label",
                input_model=Question,
                output_model=Label,
                engine_name=engine,
                sampling=SP,
                user_prompt="{{ text }}",
            )
        ],
    )


def rows(n: int, bad: tuple[int, ...] = ()) -> list[dict[str, Any]]:
    return [{"nope": i} if i in bad else {"text": f"question number {i}"} for i in range(n)]


def records(out: Path, folder: str) -> list[dict[str, Any]]:
    path = out / folder
    if not path.exists():
        return []
    return [json.loads(line) for f in sorted(path.glob("*.jsonl")) for line in f.read_text().splitlines()]


def by_id(recs: list[dict[str, Any]]) -> dict[str, dict[str, Any]]:
    out = {r["row_id"]: r for r in recs}
    assert len(out) == len(recs), "a row id appears twice"
    return out


def error_keys(out: Path) -> set[tuple[str, str, str]]:
    return {(e["row_id"], e["step_id"], e["error_type"]) for e in records(out, "errors")}


def request_hashes(chain: Chain, data: list[dict[str, Any]]) -> list[str]:
    """The mock's hash of the request each input row makes (the chain's first step renders it)."""
    step = chain.items[0]
    out = []
    for i, d in enumerate(data):
        item = Question(**d)
        out.append(messages_hash(step.render_row(str(i), item, {"chain_input": item})))
    return out


def committed_rows(out: Path, block_rows: int) -> set[int]:
    """Global indices committed now: merged into the run, or committed inside a block's sub-run."""
    from chainette.io.block_merge import done_indices
    from chainette.io.journal import load_journal

    done: set[int] = set()
    journal = load_journal(out)
    if journal is not None:
        done |= set(done_indices(journal.done))
    blocks = out / ".chainette" / "blocks"
    for sub in blocks.iterdir() if blocks.exists() else ():
        try:
            j = load_journal(sub)
        except ValueError:
            continue
        if j is not None:
            done |= {int(sub.name) * block_rows + i for i in done_indices(j.done)}
    return done


@pytest.fixture
def engine(request):
    names: list[str] = []

    def make(**fields: Any) -> str:
        name = f"dist-{len(names)}-{request.node.name[:30]}"
        register_engine(name=name, **{"backend": "vllm_api", "model": "mock", **fields})
        names.append(name)
        return name

    yield make
    for name in names:
        unregister_engine(name)


def child_env(**extra: str) -> dict[str, str]:
    """A child process's environment: it imports the chainette of this checkout, as the tests do."""
    path = os.pathsep.join(p for p in (str(Path(__file__).resolve().parents[2]), os.environ.get("PYTHONPATH")) if p)
    return {**os.environ, "PYTHONPATH": path, **extra}


def run_in_thread(fn) -> tuple[threading.Thread, dict[str, Any]]:
    box: dict[str, Any] = {}

    def target() -> None:
        try:
            box["result"] = fn()
        except BaseException as exc:  # noqa: BLE001 - reported by the test
            box["error"] = exc

    t = threading.Thread(target=target, daemon=True)
    t.start()
    return t, box


def wait_for(cond, timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while not cond():
        if time.monotonic() > deadline:
            pytest.fail(f"timed out after {timeout}s waiting for {what}")
        time.sleep(0.05)


# -- the same run directory as a local run ------------------------------------------------------
def test_ray_run_equals_local_run_on_a_branching_chain(ray_cluster, mock, engine, tmp_path):
    srv = mock()
    name = engine(endpoint=srv.url, max_in_flight=16)
    chain = branching_chain(name)
    inputs = rows(230, bad=(7, 101))
    local = chain.run(inputs, tmp_path / "local", cache=False)
    distributed = chain.run(inputs, tmp_path / "ray", runner="ray", block_rows=50, cache=False)

    assert not distributed.interrupted and distributed.rows_in == local.rows_in == 230
    for folder in ("flattened", "topic", "twice", "to_fr", "to_es", "summary"):
        assert by_id(records(tmp_path / "ray", folder)) == by_id(records(tmp_path / "local", folder)), folder
    flat = by_id(records(tmp_path / "ray", "flattened"))
    assert len(flat) == 2 * 228 and "3.1" in flat  # fan-out ids derived from the input position
    assert (
        error_keys(tmp_path / "ray")
        == error_keys(tmp_path / "local")
        == {("7", "chain_input", "InputValidationError"), ("101", "chain_input", "InputValidationError")}
    )
    meta = json.loads((tmp_path / "ray" / "metadata.json").read_text())
    local_meta = json.loads((tmp_path / "local" / "metadata.json").read_text())
    assert meta["status"] == "completed" and meta["fingerprint"] == local_meta["fingerprint"]
    assert {k: (v["outputs"], v["errors"]) for k, v in meta["steps"].items()} == {
        k: (v["outputs"], v["errors"]) for k, v in local_meta["steps"].items()
    }
    assert meta["cost"]["total"]["tokens"] == local_meta["cost"]["total"]["tokens"] > 0  # summed over blocks
    runner = meta["runner"]
    assert runner["name"] == "ray" and runner["block_rows"] == 50
    assert sum(w["blocks"] for w in runner["workers"].values()) == 5
    assert all(w["peak_rss_mb"] > 0 and w["rows"] > 0 for w in runner["workers"].values())
    assert not any((tmp_path / "ray" / ".chainette" / "blocks").iterdir())  # every block merged
    assert "<html" in (tmp_path / "ray" / "report.html").read_text()[:500].lower()  # built once, from the run
    journal = json.loads((tmp_path / "ray" / ".chainette" / "progress.json").read_text())
    assert journal["done"]["watermark"] == 230 and journal["completed"]


def test_input_paths_are_read_by_ray_data_with_row_ids_by_position(ray_cluster, mock, engine, tmp_path):
    pa = pytest.importorskip("pyarrow")
    import pyarrow.parquet as pq

    srv = mock()
    name = engine(endpoint=srv.url)
    chain = label_chain(name)
    data = rows(120)
    jsonl = tmp_path / "in.jsonl"
    jsonl.write_text("".join(json.dumps(r) + "\n" for r in data))
    pq.write_table(pa.Table.from_pylist(data), tmp_path / "in.parquet")
    reference = by_id(records(_run(chain, data, tmp_path / "local"), "flattened"))
    sources = {
        "jsonl-path": str(jsonl),  # read by ray.data.read_json on the cluster
        "parquet-dataset": ray_cluster.data.read_parquet(str(tmp_path / "in.parquet"), num_cpus=0),
    }
    for label, source in sources.items():
        chain.run(source, tmp_path / label, runner="ray", block_rows=32, cache=False)
        assert by_id(records(tmp_path / label, "flattened")) == reference, label


def _run(chain: Chain, data: list, out: Path) -> Path:
    chain.run(data, out, cache=False)
    return out


# -- limits and servers shared across workers -----------------------------------------------------
def test_max_in_flight_holds_across_all_workers(ray_cluster, mock, engine, tmp_path):
    srv = mock("--latency-ms", "40")
    name = engine(endpoint=srv.url, max_in_flight=4)
    result = label_chain(name).run(rows(300), tmp_path / "run", runner="ray", block_rows=40, cache=False)
    assert not result.interrupted and result.failed_rows == 0
    stats = srv.stats()
    assert stats["max_in_flight"] <= 4, stats  # 2 workers x 2 blocks, one limit of 4 between them
    meta = json.loads((tmp_path / "run" / "metadata.json").read_text())
    slots = meta["runner"]["in_flight_slots"]
    assert [s["peak"] for s in slots.values()] == [4] and all(s["capacity"] == 4 for s in slots.values())
    workers = meta["runner"]["workers"].values()
    assert len(workers) == 2 and all(w["blocks"] >= 2 for w in workers)


def test_a_managed_server_starts_once_per_node(ray_cluster, engine, tmp_path):
    starts = ray_cluster.home / "vllm-starts.log"
    starts.unlink(missing_ok=True)
    name = engine(model="org/standin-model", startup_timeout=60, max_in_flight=8)  # no endpoint: managed
    result = label_chain(name).run(rows(200), tmp_path / "run", runner="ray", block_rows=25, cache=False)
    assert not result.interrupted and result.failed_rows == 0
    assert len(records(tmp_path / "run", "flattened")) == 200
    assert len(starts.read_text().split()) == 1  # one node, two workers, one server
    assert (tmp_path / "run" / "servers").exists()  # its log is kept in the run directory


# -- resume ----------------------------------------------------------------------------------------
def test_a_killed_worker_is_replaced_and_committed_rows_are_not_requested_again(ray_cluster, mock, engine, tmp_path):
    srv = mock("--latency-ms", "15")
    name = engine(endpoint=srv.url, max_in_flight=8)
    chain, data, out, block_rows = label_chain(name), rows(600), tmp_path / "run", 100
    run_id = f"kill-worker-{os.getpid()}-{time.time_ns()}"
    thread, box = run_in_thread(
        lambda: chain.run(data, out, runner="ray", block_rows=block_rows, cache=False, run_id=run_id, batch_size=16)
    )
    wait_for(lambda: len(committed_rows(out, block_rows)) >= 120 or "error" in box, 120, "rows to be committed")
    from ray.util import list_named_actors

    workers = sorted(
        a["name"] for a in list_named_actors(all_namespaces=True) if a["name"].startswith(f"chainette-worker-{run_id}-")
    )
    assert workers, "no named worker found"
    victim = ray_cluster.get_actor(workers[0], namespace="chainette")
    pid = ray_cluster.get(victim.report.remote(), timeout=30)["pid"]
    os.kill(pid, signal.SIGKILL)  # that worker's process, found through its own actor
    committed = committed_rows(out, block_rows)
    thread.join(150)
    assert not thread.is_alive() and "error" not in box, box.get("error")
    result = box["result"]
    assert not result.interrupted and result.failed_rows == 0
    assert Counter(r["row_id"] for r in records(out, "flattened")) == Counter(str(i) for i in range(600))
    asked = Counter(r["hash"] for r in srv.requests())
    hashes = request_hashes(chain, data)
    assert all(asked[h] >= 1 for h in hashes)  # the hash matches what was sent
    again = [i for i in sorted(committed) if asked[hashes[i]] != 1]
    assert again == [], f"committed rows requested again: {again[:20]}"
    meta = json.loads((out / "metadata.json").read_text())
    assert len(meta["runner"]["workers"]) >= 2  # the replacement worker reported too


DRIVER = """
import sys
sys.path.insert(0, {tests!r})
from chainette import register_engine
from distributed.test_ray_runner import label_chain, rows
register_engine(name="driver-mock", backend="vllm_api", model="mock", endpoint={url!r}, max_in_flight=4)
label_chain("driver-mock").run(rows({n}), {out!r}, runner="ray", ray_address={address!r}, block_rows={block},
                               cache=False, resume={resume})
print("DONE")
"""


def test_a_killed_driver_resumes_without_requesting_committed_rows(ray_cluster, mock, tmp_path):
    srv = mock("--latency-ms", "20")
    out, n, block = tmp_path / "run", 500, 50
    address = ray_cluster.get_runtime_context().gcs_address

    def script(resume: bool) -> list[str]:
        code = DRIVER.format(
            tests=str(Path(__file__).resolve().parents[1]),
            url=srv.url,
            n=n,
            out=str(out),
            address=address,
            block=block,
            resume=resume,
        )
        return [sys.executable, "-c", textwrap.dedent(code)]

    driver = subprocess.Popen(
        script(False),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        start_new_session=True,
        env=child_env(PYTHONUNBUFFERED="1"),
    )
    try:
        wait_for(
            lambda: len(committed_rows(out, block)) >= 150 or driver.poll() is not None,
            120,
            "the driver to commit rows",
        )
        assert driver.poll() is None, driver.communicate(timeout=5)
        os.killpg(driver.pid, signal.SIGKILL)  # the driver dies; its actors die with its job
        driver.wait(timeout=30)
    finally:
        if driver.poll() is None:
            os.killpg(driver.pid, signal.SIGKILL)
            driver.wait(timeout=30)
    committed = committed_rows(out, block)
    assert 150 <= len(committed) < n
    done = subprocess.run(script(True), capture_output=True, text=True, timeout=150, env=child_env())
    assert done.returncode == 0 and "DONE" in done.stdout, done.stderr[-3000:]
    assert Counter(r["row_id"] for r in records(out, "flattened")) == Counter(str(i) for i in range(n))
    asked = Counter(r["hash"] for r in srv.requests())
    hashes = request_hashes(label_chain("any"), rows(n))
    again = [i for i in sorted(committed) if asked[hashes[i]] != 1]
    assert again == [], f"committed rows requested again: {again[:20]}"
    assert json.loads((out / "metadata.json").read_text())["status"] == "completed"


# -- an engine of three endpoints under faults -----------------------------------------------------
def test_three_endpoints_one_killed_one_stalled_every_row_completes_once(ray_cluster, mock, engine, tmp_path):
    a, b, c = mock("--latency-ms", "10"), mock("--latency-ms", "10"), mock("--latency-ms", "10")
    name = engine(endpoints=[a.url, b.url, c.url], max_in_flight=6, timeout=1.5, max_retries=4)
    chain, out = label_chain(name), tmp_path / "run"
    thread, box = run_in_thread(lambda: chain.run(rows(1500), out, runner="ray", block_rows=150, cache=False))
    wait_for(lambda: len(c.requests()) >= 100 or "error" in box, 120, "traffic on the third endpoint")
    c.kill()  # connections refused from now on; its requests in flight are cut
    b.send(signal.SIGSTOP)  # stalled: accepts nothing, answers nothing
    time.sleep(3)
    b.send(signal.SIGCONT)
    thread.join(150)
    assert not thread.is_alive() and "error" not in box, box.get("error")
    result = box["result"]
    assert not result.interrupted and result.failed_rows == 0
    assert Counter(r["row_id"] for r in records(out, "flattened")) == Counter(str(i) for i in range(1500))
    assert records(out, "errors") == []
    served_after = len(b.requests())
    assert served_after > 0 and len(a.requests()) > 0


CHAIN_FILE = """
from pydantic import BaseModel
from chainette import Chain, Step


class Item(BaseModel):
    text: str


class Label(BaseModel):
    label: str


chain = Chain("cli-ray", steps=[Step("label", input_model=Item, output_model=Label, engine_name="mock",
                                     user_prompt="Classify: {{ text }}")])
"""


def test_cli_runner_ray_joins_a_cluster_and_writes_the_usual_run_directory(ray_cluster, mock, tmp_path):
    srv = mock()
    (tmp_path / "cli_chain.py").write_text(CHAIN_FILE)
    (tmp_path / "engines.yml").write_text(
        f"engines:\n  - name: mock\n    backend: vllm_api\n    model: mock\n    endpoint: {srv.url}\n"
    )
    (tmp_path / "in.jsonl").write_text(
        "".join(json.dumps({"text": f"item {i}"}) + "\n" for i in range(80)) + "not json\n"
    )
    address = ray_cluster.get_runtime_context().gcs_address
    argv = [
        sys.executable,
        "-m",
        "chainette",
        "run",
        "cli_chain.py:chain",
        "-i",
        "in.jsonl",
        "-o",
        "out",
        "--engines",
        "engines.yml",
        "--runner",
        "ray",
        "--ray-address",
        address,
        "--on-bad-input",
        "skip",
        "--json-logs",
        "--no-cache",
    ]
    done = subprocess.run(argv, cwd=tmp_path, capture_output=True, text=True, timeout=150, env=child_env(COLUMNS="120"))
    assert done.returncode == 0, done.stderr[-3000:]
    events = [json.loads(line) for line in done.stdout.splitlines() if line.startswith("{")]
    assert any(e.get("event") == "Summary" for e in events)
    flat = by_id(records(tmp_path / "out", "flattened"))
    assert set(flat) == {str(i) for i in range(80)}  # the skipped bad line (row 80) keeps its position
    meta = json.loads((tmp_path / "out" / "metadata.json").read_text())
    assert meta["status"] == "completed" and meta["runner"]["name"] == "ray"
    assert (tmp_path / "out" / "skipped_inputs.jsonl").read_text().count("\n") == 1


def test_cli_refuses_ray_address_without_the_ray_runner(tmp_path):
    from typer.testing import CliRunner

    from chainette.cli import app

    out = CliRunner().invoke(
        app, ["run", "x.py:chain", "-i", "in.jsonl", "-o", str(tmp_path / "o"), "--ray-address", "10.0.0.1:6379"]
    )
    assert out.exit_code == 2 and "--runner ray" in out.output


def test_resume_with_retry_errors_runs_only_the_failed_rows_again(ray_cluster, mock, engine, tmp_path):
    flaky = mock("--error-mode", "hash", "--error-rate", "0.2", "--error-kinds", "500")
    name = engine(endpoint=flaky.url, max_retries=0)
    chain, data, out = label_chain(name), rows(200), tmp_path / "run"
    first = chain.run(data, out, runner="ray", block_rows=50, cache=False)
    failed = {e["row_id"] for e in records(out, "errors")}
    assert first.failed_rows == len(failed) and 10 < len(failed) < 80
    healthy = mock()
    register_engine(name=name, backend="vllm_api", model="mock", endpoint=healthy.url)
    again = chain.run(data, out, runner="ray", block_rows=50, cache=False, resume=True, retry_errors=True)
    assert not again.interrupted and again.failed_rows == 0
    assert len(healthy.requests()) == len(failed)  # only the failed rows were sent again
    assert Counter(r["row_id"] for r in records(out, "flattened")) == Counter(str(i) for i in range(200))
    assert records(out, "errors") == []


def test_without_ray_installed_the_runner_names_the_extra(monkeypatch, tmp_path):
    from chainette.errors import ConfigError

    monkeypatch.setitem(sys.modules, "ray", None)
    with pytest.raises(ConfigError, match=r"pip install 'chainette\[ray\]'"):
        label_chain("nope").run(rows(3), tmp_path / "run", runner="ray")


def test_an_engine_fault_stops_every_worker_resumable(ray_cluster, mock, engine, tmp_path):
    gone = mock()
    name = engine(endpoint=gone.url, max_retries=3)
    chain, data, out = label_chain(name), rows(400), tmp_path / "run"
    gone.stop()  # nobody listens there any more: the engine is unreachable from every worker
    result = chain.run(data, out, runner="ray", block_rows=50, cache=False)
    assert result.interrupted and result.stopped_by == "engine", (result.stopped_by, result.stop_reason)
    assert json.loads((out / "metadata.json").read_text())["status"] == "interrupted"
    healthy = mock()
    register_engine(name=name, backend="vllm_api", model="mock", endpoint=healthy.url)
    failed_first = {e["row_id"] for e in records(out, "errors")}
    assert len(failed_first) <= 2 * 4  # the rows each worker's engine tried before it stopped
    again = chain.run(data, out, runner="ray", block_rows=50, cache=False, resume=True, retry_errors=True)
    assert not again.interrupted and again.failed_rows == 0
    assert Counter(r["row_id"] for r in records(out, "flattened")) == Counter(str(i) for i in range(400))
    assert records(out, "errors") == []


class Fussy:
    """An engine object that unpickles in the driver but not on a worker (as code missing there)."""

    name = "fussy"
    max_in_flight = 4

    def __reduce__(self):
        return (_make_fussy, ())


def _make_fussy() -> Fussy:
    if os.environ.get("CHAINETTE_TEST_FUSSY") != "1":
        raise RuntimeError("this engine cannot be built on this machine")
    return Fussy.__new__(Fussy)


def test_a_worker_that_cannot_start_is_a_config_error_not_a_lost_worker(ray_cluster, monkeypatch, tmp_path):
    from chainette.errors import ConfigError

    monkeypatch.setenv("CHAINETTE_TEST_FUSSY", "1")  # here only: the cluster's processes started without it
    with pytest.raises(ConfigError, match="a worker could not start.*cannot be built on this machine"):
        label_chain("fussy").run(rows(20), tmp_path / "run", runner="ray", engines={"fussy": Fussy()})
