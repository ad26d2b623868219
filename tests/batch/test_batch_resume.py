"""Kill the driver mid-batch, then ``--resume``: it re-attaches to the batches in progress,
never creates a batch twice (asserted at the mock), and every row ends exactly once.

The driver is ``chainette run`` in a subprocess (its own process group, killed with SIGKILL
while a batch is in progress at the mock); the mock runs in this process.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

from chainette.io.batch_journal import batches_path, load_batches
from chainette.io.stream_writer import read_records

from .mock_batch_api import KEY, MockBatchAPI

CHAIN = """
from pydantic import BaseModel
from chainette import Branch, Chain, SamplingParams, Step

class Question(BaseModel):
    text: str

class Topic(BaseModel):
    topic: str
    score: float

class Translation(BaseModel):
    text: str

class Summary(BaseModel):
    summary: str

sp = SamplingParams(temperature=0, max_tokens=50)
topic = Step("topic", input_model=Question, output_model=Topic, engine_name="gpt", sampling=sp,
             user_prompt="Topic of: {{ text }}")
fr = Step("to_fr", input_model=Topic, output_model=Translation, engine_name="gpt", sampling=sp,
          user_prompt="French for {{ chain_input.text }}")
es = Step("to_es", input_model=Topic, output_model=Translation, engine_name="gpt", sampling=sp,
          user_prompt="Spanish for {{ chain_input.text }}")
summary = Step("summary", output_model=Summary, engine_name="gpt", sampling=sp,
               user_prompt="{{ french.text }} / {{ spanish.text }}")
chain = Chain(name="batch-resume", steps=[topic, [Branch("fr", [fr]).join("french"),
                                                  Branch("es", [es]).join("spanish")], summary])
"""
ENGINES = """engines:
  - name: gpt
    backend: openai
    model: gpt-4o-mini
    endpoint: {url}
    api_key_env: BATCH_TEST_KEY
    mode: batch
    max_in_flight: 500
    batch: {{linger_s: 0.1, poll_initial_s: 0.05, poll_max_s: 0.2, max_requests: 8}}
"""
ROWS = 20


def _workspace(tmp: Path, url: str) -> dict[str, Path]:
    (tmp / "chain.py").write_text(CHAIN)
    (tmp / "engines.yml").write_text(ENGINES.format(url=url))
    (tmp / "inputs.jsonl").write_text("".join(json.dumps({"text": f"question {i}"}) + "\n" for i in range(ROWS)))
    return {
        "chain": tmp / "chain.py",
        "engines": tmp / "engines.yml",
        "inputs": tmp / "inputs.jsonl",
        "out": tmp / "run",
    }


def _cli(ws: dict[str, Path], *extra: str) -> subprocess.Popen:
    env = {**os.environ, "BATCH_TEST_KEY": KEY}
    cmd = [
        sys.executable,
        "-m",
        "chainette",
        "run",
        f"{ws['chain']}:chain",
        "-i",
        str(ws["inputs"]),
        "-o",
        str(ws["out"]),
        "--engines",
        str(ws["engines"]),
        "--quiet",
        "--no-cache",
        *extra,
    ]
    return subprocess.Popen(cmd, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, start_new_session=True)


def _wait(cond, timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while not cond():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(0.02)


def test_kill_mid_batch_then_resume_creates_no_batch_twice(tmp_path):
    with MockBatchAPI(progress_s=1.0) as api:
        ws = _workspace(tmp_path, api.url)
        driver = _cli(ws)
        try:
            # the topic files are in progress (20 rows, 8 per file: 3 batches)
            _wait(lambda: len(api.creations) >= 3, 30, "the first batches")
            _wait(
                lambda: any(b.obj["status"] == "in_progress" for b in api.batches.values()), 10, "a batch in progress"
            )
        finally:
            os.killpg(driver.pid, signal.SIGKILL)
            driver.wait(10)
        created_before = list(api.created_keys())
        journal = load_batches(ws["out"])
        assert journal is not None
        live = [r for r in journal.records() if not r.collected]
        assert live and all(r.batch_id for r in live)
        # the crash window between "batch created" and "journaled": forget the last batch's id, keep its upload
        data = json.loads(batches_path(ws["out"]).read_text())
        last = data["batches"][-1]
        assert last["batch_id"] and last["input_file_id"]
        last.update(batch_id=None, state="uploaded", request_counts={})
        batches_path(ws["out"]).write_text(json.dumps(data))

        resumed = _cli(ws, "--resume")
        stdout, stderr = resumed.communicate(timeout=90)
        assert resumed.returncode == 0, stderr.decode()[-3000:]

        keys = api.created_keys()
        assert keys[: len(created_before)] == created_before
        assert len(keys) == len(set(keys)), f"a batch was created twice: {keys}"
        flat = list(read_records(ws["out"] / "flattened"))
        assert sorted(int(r["row_id"]) for r in flat) == list(range(ROWS))
        assert not (ws["out"] / "errors").exists() or list(read_records(ws["out"] / "errors")) == []
        # no request was sent twice: every custom_id in exactly one batch (none expired here)
        ids = [cid for b in api.batch_custom_ids() for cid in b]
        assert len(ids) == len(set(ids)) == ROWS * 4
        # the re-attached batch was found by its metadata and polled, not created again
        found = next(b for b in api.batches.values() if b.obj["metadata"]["chainette_batch"] == last["key"])
        assert found.obj["id"] in {r.batch_id for r in load_batches(ws["out"]).records()}
        assert ("GET", "/v1/batches") in api.requests
        metadata = json.loads((ws["out"] / "metadata.json").read_text())
        assert metadata["status"] == "completed"
