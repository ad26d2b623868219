"""Integration: every HTTP backend drives a chain against a real server process and a real model.

The embedded llama.cpp server (SmolLM2) speaks the OpenAI API, so the ``openai`` backend (strict
``response_format``, Bearer key, ``max_completion_tokens``) talks to it directly; ``ollama_api``
talks to a stand-in ``ollama`` process (tests/standins/ollama) that translates Ollama's /api/chat
to that same server; ``local`` is covered in test_engine_local_integration.py. ``vllm_api`` runs
against the stand-in ``vllm serve`` process (tests/core/test_staged.py, test_engine_servers.py):
llama.cpp ignores vLLM's ``structured_outputs`` field, so it cannot stand in for vLLM here.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest
from pydantic import BaseModel

from chainette import Chain, SamplingParams, Step, register_engine
from chainette.engine import process_manager as pm
from chainette.engine.registry import EngineConfig, unregister_engine
from chainette.io.stream_writer import read_records

pytestmark = pytest.mark.integration
STANDINS = Path(__file__).resolve().parents[1] / "standins"


class Word(BaseModel):
    text: str


class Colour(BaseModel):
    colour: str


@pytest.fixture(scope="module")
def llama(tmp_path_factory):
    cfg = EngineConfig(name="real-llama", backend="local", model="smollm2", startup_timeout=60)
    sp = pm.start_server(cfg, log_dir=tmp_path_factory.mktemp("run"))
    yield sp.endpoint
    pm.stop_server(sp, grace=5)


@pytest.fixture(scope="module")
def ollama(llama):
    port = pm.free_port()
    proc = subprocess.Popen(
        [sys.executable, str(STANDINS / "ollama"), "--upstream", llama, "--port", str(port)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        start_new_session=True,
    )
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline:
        try:
            urllib.request.urlopen(url + "/api/tags", timeout=1).read()
            break
        except OSError:
            time.sleep(0.1)
    yield url
    os.killpg(proc.pid, signal.SIGTERM)
    proc.wait(timeout=10)


def _run_chain(engine: str, tmp_path: Path) -> list[dict]:
    step = Step(
        "colour",
        input_model=Word,
        output_model=Colour,
        engine_name=engine,
        sampling=SamplingParams(temperature=0, max_tokens=30, seed=1),
        system_prompt="Name the usual colour of the thing.",
        user_prompt="Thing: {{ text }}",
    )
    things = ["grass", "snow", "the sky", "a banana", "coal"]
    result = Chain(f"real-{engine}", steps=[step]).run([Word(text=t) for t in things], tmp_path, cache=False)
    records = list(read_records(tmp_path / "colour"))
    assert len(records) >= 4, list(read_records(tmp_path / "errors"))  # a tiny model: allow one miss
    for r in records:
        Colour.model_validate({k: v for k, v in r.items() if k != "row_id"})
    assert result.step_stats["colour"].prompt_tokens > 0
    return records


def test_openai_backend_against_the_real_server(llama, tmp_path):
    name = "real-openai"
    register_engine(
        name=name,
        backend="openai",
        model="smollm2",
        endpoint=llama,
        api_key="sk-test-not-a-real-key",
        max_retries=1,
        timeout=120,
    )
    try:
        _run_chain(name, tmp_path)
    finally:
        unregister_engine(name)
    meta = (tmp_path / "metadata.json").read_text()
    assert "sk-test-not-a-real-key" not in meta


def test_ollama_backend_against_a_real_process(ollama, tmp_path):
    register_engine(name="real-ollama", backend="ollama_api", model="smollm2", endpoint=ollama, max_retries=1)
    try:
        _run_chain("real-ollama", tmp_path)
    finally:
        unregister_engine("real-ollama")
