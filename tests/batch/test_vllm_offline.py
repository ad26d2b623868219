"""A managed vLLM engine in batch mode: no server, every request file runs through
``vllm run-batch -i -o --model`` (the stand-in executable in tests/standins)."""

from __future__ import annotations

import json
import os
from pathlib import Path

from chainette.engine.registry import EngineConfig
from chainette.io.batch_journal import load_batches
from chainette.io.stream_writer import read_records

from .conftest import FAST, inputs, make_chain

STANDINS = Path(__file__).resolve().parents[1] / "standins"


def _offline(monkeypatch, tmp_path, **extra):
    monkeypatch.setenv("PATH", f"{STANDINS}{os.pathsep}{os.environ.get('PATH', '')}")
    log = tmp_path / "run-batch.log"
    monkeypatch.setenv("STANDIN_VLLM_BATCH_LOG", str(log))
    cfg = EngineConfig(
        name="gpt",
        backend="vllm_api",
        model="Qwen/Qwen3-0.6B",
        mode="batch",
        gpu_ids=[1],
        dtype="bfloat16",
        max_in_flight=1000,
        batch={**FAST, "poll_initial_s": 0.05},
        **extra,
    )
    return cfg, log


def test_managed_vllm_runs_each_file_through_run_batch(monkeypatch, tmp_path):
    cfg, log = _offline(monkeypatch, tmp_path)
    out = tmp_path / "run"
    result = make_chain().run(inputs(5), out, engines={"gpt": cfg}, cache=False)
    assert not result.interrupted, result.stop_reason
    flat = list(read_records(out / "flattened"))
    assert sorted(int(r["row_id"]) for r in flat) == list(range(5))
    calls = [json.loads(line) for line in log.read_text().splitlines()]
    assert len(calls) == 3  # topic, the two branches, summary: one run-batch each, one at a time
    journal = load_batches(out)
    for call, rec in zip(calls, journal.records(), strict=True):
        argv = call["argv"]
        assert argv[1] == "run-batch" and call["parsed"]["model"] == "Qwen/Qwen3-0.6B"
        assert call["parsed"]["input_file"] == str(journal.request_path(rec.key))
        assert call["parsed"]["output_file"] == str(journal.result_path(rec.key, "output"))
        assert "--dtype" in argv and call["cuda"] == "1"
    assert [(r.kind, r.state, r.collected) for r in journal.records()] == [("vllm-offline", "completed", True)] * 3
    line = json.loads(journal.request_path("gpt-0001").read_text().splitlines()[0])
    assert line["url"] == "/v1/chat/completions" and "structured_outputs" in line["body"]
    assert result.step_stats["topic"].prompt_tokens == 5 * 5  # usage of the output file


def test_a_failing_run_batch_is_run_again_once_then_rows_are_error_records(monkeypatch, tmp_path):
    cfg, log = _offline(monkeypatch, tmp_path)
    monkeypatch.setenv("STANDIN_VLLM_BATCH_CRASH", "1")
    out = tmp_path / "run"
    make_chain(single=True).run(inputs(3), out, engines={"gpt": cfg}, cache=False)
    errors = list(read_records(out / "errors"))
    assert len(errors) == 3 and all(e["error_type"] == "EngineTimeoutError" for e in errors)
    assert "vllm run-batch exited with 1" in errors[0]["message"] and "stand-in run-batch crash" in errors[0]["message"]
    assert len(log.read_text().splitlines()) == 2


def test_resume_waits_for_a_run_batch_left_running_by_a_killed_driver(tmp_path):
    """The driver is killed while `vllm run-batch` runs; the process goes on (its own session) and
    the resumed driver waits for it (its pid is journaled) instead of running the file again."""
    import signal
    import subprocess
    import sys
    import time

    (tmp_path / "chain.py").write_text(
        "from pydantic import BaseModel\nfrom chainette import Chain, Step\n"
        "class Q(BaseModel):\n    text: str\n"
        "class T(BaseModel):\n    topic: str\n"
        "chain = Chain(name='offline', steps=[Step('topic', input_model=Q, output_model=T, engine_name='v', "
        "user_prompt='{{ text }}')])\n"
    )
    (tmp_path / "engines.yml").write_text(
        "engines:\n  - name: v\n    backend: vllm_api\n    model: Qwen/Qwen3-0.6B\n    mode: batch\n"
        "    max_in_flight: 100\n    batch: {linger_s: 0.05, poll_initial_s: 0.05, poll_max_s: 0.1}\n"
    )
    (tmp_path / "in.jsonl").write_text("".join(json.dumps({"text": f"q{i}"}) + "\n" for i in range(4)))
    log = tmp_path / "run-batch.log"
    env = {
        **os.environ,
        "PATH": f"{STANDINS}{os.pathsep}{os.environ.get('PATH', '')}",
        "STANDIN_VLLM_BATCH_LOG": str(log),
        "STANDIN_VLLM_BATCH_DELAY": "2",
    }
    out = tmp_path / "run"
    cmd = [
        sys.executable,
        "-m",
        "chainette",
        "run",
        f"{tmp_path / 'chain.py'}:chain",
        "-i",
        str(tmp_path / "in.jsonl"),
        "-o",
        str(out),
        "--engines",
        str(tmp_path / "engines.yml"),
        "--quiet",
        "--no-cache",
    ]
    driver = subprocess.Popen(cmd, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, start_new_session=True)
    try:
        deadline = time.monotonic() + 30
        while not (log.exists() and log.read_text().strip()):
            assert time.monotonic() < deadline and driver.poll() is None, driver.stderr.read().decode()[-2000:]
            time.sleep(0.02)
        time.sleep(0.2)
    finally:
        os.killpg(driver.pid, signal.SIGKILL)
        driver.wait(10)
    pid = json.loads(log.read_text().splitlines()[0])["pid"]
    os.kill(pid, 0)  # still running: it is not in the driver's process group
    resumed = subprocess.run([*cmd, "--resume"], env=env, capture_output=True, timeout=60)
    assert resumed.returncode == 0, resumed.stderr.decode()[-2000:]
    assert len(log.read_text().splitlines()) == 1  # waited for it, did not run the file again
    assert sorted(int(r["row_id"]) for r in read_records(out / "flattened")) == [0, 1, 2, 3]
