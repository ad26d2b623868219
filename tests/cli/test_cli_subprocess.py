"""The real ``chainette`` process: run (FakeEngine), warmup and kill (stand-in vllm), local engine."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time

import pytest

from .conftest import STANDINS, subprocess_env


def cli(*args, cwd, env=None, timeout=120):
    return subprocess.run(
        [sys.executable, "-m", "chainette.cli", *map(str, args)],
        cwd=cwd,
        env=env or subprocess_env(),
        capture_output=True,
        text=True,
        timeout=timeout,
    )


def test_python_m_chainette_and_script_entry(project):
    r = subprocess.run(
        [sys.executable, "-m", "chainette", "--help"],
        cwd=project.root,
        env=subprocess_env(),
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert r.returncode == 0 and "run-yaml" in r.stdout


def test_help_is_fast(project):
    env = subprocess_env()
    best = min(_timed([sys.executable, "-m", "chainette.cli", "--help"], project.root, env) for _ in range(3))
    assert best < 0.6, f"chainette --help took {best:.2f}s of CPU"
    r = subprocess.run(
        [sys.executable, "-X", "importtime", "-m", "chainette.cli", "--help"],
        cwd=project.root,
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    for heavy in ("datasets", "pyarrow", "aiohttp", "chainette.core.executor", "pydantic"):
        assert f" {heavy}\n" not in r.stderr, f"{heavy} imported by --help"


def _timed(argv, cwd, env):
    """CPU seconds (user + sys) of the child: robust to a machine busy with other work."""
    import resource

    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    subprocess.run(argv, cwd=cwd, env=env, capture_output=True, timeout=60, check=True)
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    return (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)


def test_run_subprocess_fake_engine(project):
    r = cli(
        "run", "chain_def.py:chain", "-i", "inputs.jsonl", "-o", "out", "--engines", "engines.yml", cwd=project.root
    )
    assert r.returncode == 0, r.stderr
    assert "rows in: 5" in r.stdout and "agg" in r.stdout
    flat = (project.root / "out" / "flattened" / "000.jsonl").read_text().splitlines()
    assert len(flat) == 5
    r = cli(
        "run",
        "chain_def:chain",
        "-i",
        "inputs.jsonl",
        "--output_dir",
        "out2",
        "-f",
        "engines.yml",
        "--json-logs",
        cwd=project.root,
    )
    assert r.returncode == 0, r.stderr
    events = [json.loads(line) for line in r.stdout.splitlines()]
    assert events[-1]["event"] == "Summary" and events[-1]["rows_in"] == 5


def test_run_subprocess_user_error_has_no_traceback(project):
    r = cli("run", "chain_def.py:chain", "-i", "missing.jsonl", "-o", "out", "-f", "engines.yml", cwd=project.root)
    assert r.returncode == 1
    assert "Traceback" not in r.stderr + r.stdout and "file not found" in r.stderr
    r = cli(
        "run",
        "chain_def.py:chain",
        "-i",
        "missing.jsonl",
        "-o",
        "out",
        "-f",
        "engines.yml",
        "--debug",
        cwd=project.root,
    )
    assert r.returncode == 1 and "Traceback" in r.stderr


def test_run_yaml_subprocess(project):
    r = cli(
        "run-yaml", "chain.yml", "-i", "inputs.jsonl", "-o", "out", "--symbols", "models", "--quiet", cwd=project.root
    )
    assert r.returncode == 0, r.stderr
    assert "rows in: 5" in r.stdout


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
        return True
    except ProcessLookupError:
        return False


@pytest.fixture
def vllm_env(tmp_path):
    env = subprocess_env(
        {
            "PATH": f"{STANDINS}{os.pathsep}{os.environ.get('PATH', '')}",
            "CHAINETTE_STATE_DIR": str(tmp_path / "state"),
        }
    )
    yield env
    subprocess.run([sys.executable, "-m", "chainette.cli", "kill", "--all"], env=env, capture_output=True, timeout=60)


def test_warmup_engines_kill_subprocess(project, vllm_env):
    project.write(
        "servers.yml",
        """
        engines:
          - {name: vl, backend: vllm_api, model: test-model, lazy: false, startup_timeout: 60}
          - {name: vl2, backend: vllm_api, model: other-model, lazy: true, startup_timeout: 60}
          - {name: fk, backend: fake}
    """,
    )
    r = cli("warmup", "-f", "servers.yml", cwd=project.root, env=vllm_env)
    assert r.returncode == 0, r.stdout + r.stderr
    assert "vl ready at http://" in r.stdout and "vl2" not in r.stdout

    r = cli("engines", "-f", "servers.yml", "--json", cwd=project.root, env=vllm_env)
    running = json.loads(r.stdout)["running"]
    assert [s["name"] for s in running] == ["vl"]
    pid = running[0]["pid"]
    assert _alive(pid)

    r = cli("warmup", "-f", "servers.yml", "-e", "vl", "-e", "vl2", cwd=project.root, env=vllm_env)
    assert r.returncode == 0, r.stdout + r.stderr
    assert "already running" in r.stdout and "vl2 ready" in r.stdout
    r = cli("engines", "-f", "servers.yml", cwd=project.root, env=vllm_env)
    assert "Running servers" in r.stdout and "other-model" in r.stdout

    r = cli("kill", "vl", cwd=project.root, env=vllm_env)
    assert r.returncode == 0 and "stopped vl" in r.stdout
    for _ in range(50):
        if not _alive(pid):
            break
        time.sleep(0.1)
    assert not _alive(pid)
    r = cli("kill", "vl", cwd=project.root, env=vllm_env)
    assert r.returncode == 1 and "no running server recorded for vl" in r.stderr
    r = cli("kill", "--all", cwd=project.root, env=vllm_env)
    assert r.returncode == 0 and "Stopped 1 server(s): vl2" in r.stdout


def test_warmup_failure_is_reported(project, vllm_env):
    project.write(
        "servers.yml", "engines:\n  - {name: vl, backend: vllm_api, model: m, lazy: false, startup_timeout: 30}\n"
    )
    env = dict(vllm_env, STANDIN_VLLM_CRASH="1")
    r = cli("warmup", "-f", "servers.yml", cwd=project.root, env=env)
    assert r.returncode == 1 and "vl" in r.stderr and "Traceback" not in r.stderr


@pytest.mark.integration
def test_run_with_default_local_engine(project):
    project.write(
        "local_chain.py",
        """
from pydantic import BaseModel
from chainette import Chain, Step, SamplingParams

class In(BaseModel):
    text: str

class Out(BaseModel):
    answer: str

chain = Chain(name="Local", steps=[Step("answer", input_model=In, output_model=Out,
                                        sampling=SamplingParams(temperature=0, max_tokens=200),
                                        user_prompt="Answer in at most five words: {{text}}")])
""",
    )
    project.inputs(3, "three.jsonl")
    r = cli(
        "run", "local_chain.py:chain", "-i", "three.jsonl", "-o", "out", "--json-logs", cwd=project.root, timeout=600
    )
    assert r.returncode == 0, r.stdout + r.stderr
    events = [json.loads(line) for line in r.stdout.splitlines()]
    kinds = {e["event"] for e in events}
    assert {"RunStarted", "ServerStarting", "ServerReady", "RunFinished", "Summary"} <= kinds
    summary = events[-1]
    assert summary["rows_in"] == 3
    step = summary["steps"]["answer"]
    assert step["done"] + step["errors"] == 3 and step["completion_tokens"] > 0
    # a 135M model may break the schema on some rows; every row is accounted for either way
    out = project.root / "out"
    written = sum(
        len(p.read_text().splitlines())
        for d in ("answer", "errors")
        if (out / d).is_dir()
        for p in (out / d).glob("*.jsonl")
    )
    assert written == 3
