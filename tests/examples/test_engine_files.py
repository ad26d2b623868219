"""Switching an example to OpenAI, `vllm serve` or Ollama is one `--engines` flag.

No real service is reachable in CI, so the three files in ``examples/engines/`` are pointed
at stand-ins speaking each wire format: the repository's stand-in ``vllm serve`` (an
OpenAI-compatible server that fills ``response_format``/``structured_outputs`` schemas) for
the vLLM and OpenAI files (``OPENAI_BASE_URL``), and a small in-process Ollama ``/api/chat``
stand-in that fills ``format``. The check is what an example needs from the engine: every
step answered, metadata naming the backend, and the API key nowhere on disk.
"""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from importlib.machinery import SourceFileLoader
from importlib.util import module_from_spec, spec_from_loader
from pathlib import Path

import pytest
import yaml

pytestmark = pytest.mark.integration

ROOT = Path(__file__).resolve().parents[2]
STANDIN = ROOT / "tests" / "standins" / "vllm"
ENGINES = ROOT / "examples" / "engines"
DUMMY_KEY = "sk-examples-test-not-a-real-key"


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _standin_fill():
    loader = SourceFileLoader("_standin_vllm", str(STANDIN))
    module = module_from_spec(spec_from_loader("_standin_vllm", loader))
    loader.exec_module(module)
    return module.fill


@pytest.fixture(scope="module")
def vllm_standin():
    port = _free_port()
    proc = subprocess.Popen(
        [
            sys.executable,
            str(STANDIN),
            "serve",
            "Qwen/Qwen2.5-1.5B-Instruct",
            "--host",
            "127.0.0.1",
            "--port",
            str(port),
        ],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        try:
            socket.create_connection(("127.0.0.1", port), timeout=0.5).close()
            break
        except OSError:
            time.sleep(0.1)
    yield f"http://127.0.0.1:{port}"
    proc.terminate()
    proc.wait(timeout=10)


@pytest.fixture(scope="module")
def ollama_standin():
    fill = _standin_fill()

    class Handler(BaseHTTPRequestHandler):
        def log_message(self, *args):  # quiet
            pass

        def do_POST(self):
            body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
            assert self.path == "/api/chat" and body["stream"] is False
            schema = body.get("format") or {}
            content = json.dumps(fill(schema, schema.get("$defs", {})))
            reply = json.dumps(
                {
                    "model": body["model"],
                    "message": {"role": "assistant", "content": content},
                    "done": True,
                    "done_reason": "stop",
                    "prompt_eval_count": 10,
                    "eval_count": 5,
                }
            ).encode()
            self.send_response(200)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(reply)))
            self.end_headers()
            self.wfile.write(reply)

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield f"http://127.0.0.1:{server.server_address[1]}"
    server.shutdown()


def _engines_file(tmp_path: Path, name: str, **overrides) -> Path:
    data = yaml.safe_load((ENGINES / name).read_text())
    data["engines"][0].update(overrides)
    path = tmp_path / name
    path.write_text(yaml.safe_dump(data))
    return path


@pytest.mark.parametrize("backend", ["openai", "vllm", "ollama"])
@pytest.mark.parametrize("example", ["flagship", "chatbot"])
def test_example_runs_on_each_engines_file(backend, example, tmp_path, vllm_standin, ollama_standin):
    env = {
        **os.environ,
        "CHAINETTE_CACHE_DIR": str(tmp_path / "cache"),
        "CHAINETTE_STATE_DIR": str(tmp_path / "state"),
        "OPENAI_API_KEY": DUMMY_KEY,
    }
    if backend == "openai":
        engines = ENGINES / "engines.openai.yml"  # unchanged: the endpoint comes from OPENAI_BASE_URL
        env["OPENAI_BASE_URL"] = f"{vllm_standin}/v1"
    elif backend == "vllm":
        engines = _engines_file(tmp_path, "engines.vllm.yml", endpoint=f"{vllm_standin}/v1")
    else:
        engines = _engines_file(tmp_path, "engines.ollama.yml", endpoint=ollama_standin)
    folder = ROOT / "examples" / example
    target = str(folder / "chain.yml") if example == "chatbot" else f"{folder / 'chain.py'}:chain"
    command = "run-yaml" if example == "chatbot" else "run"
    out = tmp_path / "run"
    proc = subprocess.run(
        [
            sys.executable,
            "-m",
            "chainette",
            command,
            target,
            "-i",
            str(folder / "inputs.jsonl"),
            "-o",
            str(out),
            "--engines",
            str(engines),
            "--quiet",
        ],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert proc.returncode == 0, proc.stdout[-2000:] + proc.stderr[-2000:]
    meta = json.loads((out / "metadata.json").read_text())
    assert meta["status"] == "completed" and meta["errors"] == 0
    expected = {"openai": "openai", "vllm": "vllm_api", "ollama": "ollama_api"}[backend]
    assert [e["backend"] for e in meta["engines"]] == [expected]
    assert all(s["errors"] == 0 for s in meta["steps"].values())
    assert (out / "flattened").is_dir() and not (out / "servers").exists()  # nothing started locally
    for path in out.rglob("*"):
        if path.is_file():
            assert DUMMY_KEY not in path.read_text(errors="ignore"), f"API key leaked into {path}"
    assert DUMMY_KEY not in proc.stdout + proc.stderr
