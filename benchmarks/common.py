"""Shared helpers for the benchmark scripts: the mock server process, measurements, output.

Every benchmark process reports one JSON object on the last line of stdout, prefixed with
``RESULT `` (see :func:`emit`), so the driver can run each one in its own subprocess and read
per-process CPU time and peak RSS.
"""

from __future__ import annotations

import json
import os
import resource
import signal
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

HERE = Path(__file__).resolve().parent
REPO = HERE.parent
MOCK_JS = HERE / "mock_server.js"
NODE = os.environ.get("NODE", "node")
RESULT_PREFIX = "RESULT "

# The body a Chainette step sends: a system message carrying the schema instructions, the
# rendered user prompt, strict json_schema response_format and max_tokens.
ANSWER_SCHEMA = {
    "properties": {
        "answer": {"title": "Answer", "type": "string"},
        "score": {"title": "Score", "type": "number"},
    },
    "required": ["answer", "score"],
    "title": "A",
    "type": "object",
    "additionalProperties": False,
}
# Chainette's own schema instruction (what its Step sends as the system message).
SYSTEM_PROMPT = "Reply with only a JSON object, no other text, with these fields:\n- answer: string\n- score: number"


def peak_rss_mb() -> float:
    """Peak resident set size of this process, in MiB (Linux reports KiB)."""
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0


def cpu_seconds() -> float:
    """User + system CPU time of this process (all threads)."""
    return time.process_time()


def emit(result: dict) -> None:
    """Print the machine-readable result line and flush."""
    sys.stdout.write(RESULT_PREFIX + json.dumps(result) + "\n")
    sys.stdout.flush()


def parse_result(stdout: str) -> dict | None:
    for line in reversed(stdout.splitlines()):
        if line.startswith(RESULT_PREFIX):
            return json.loads(line[len(RESULT_PREFIX) :])
    return None


@dataclass
class MockServer:
    proc: subprocess.Popen
    port: int

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.port}/v1"

    @property
    def chat_url(self) -> str:
        return f"{self.base_url}/chat/completions"

    def stats(self) -> dict:
        with urllib.request.urlopen(f"http://127.0.0.1:{self.port}/stats", timeout=5) as r:
            return json.loads(r.read())

    def cpu_seconds(self) -> float:
        """CPU time (user + system) the server process has used so far."""
        try:
            fields = Path(f"/proc/{self.proc.pid}/stat").read_text().rsplit(")", 1)[1].split()
            return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")
        except (OSError, IndexError, ValueError):
            return float("nan")

    def reset(self) -> None:
        req = urllib.request.Request(f"http://127.0.0.1:{self.port}/reset", method="POST", data=b"")
        urllib.request.urlopen(req, timeout=5).read()


@contextmanager
def mock_server(*flags: str, startup_timeout: float = 10.0) -> Iterator[MockServer]:
    """Start ``node mock_server.js --port 0 <flags>`` in its own process group; stop it by group."""
    proc = subprocess.Popen(
        [NODE, str(MOCK_JS), "--port", "0", *flags],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        start_new_session=True,
    )
    try:
        deadline = time.monotonic() + startup_timeout
        port = None
        while time.monotonic() < deadline:
            line = proc.stdout.readline()
            if not line:
                break
            if line.startswith("LISTENING "):
                port = int(line.split()[1])
                break
        if port is None:
            err = proc.stderr.read() if proc.poll() is not None else ""
            raise RuntimeError(f"mock server did not start: {err.strip()}")
        yield MockServer(proc, port)
    finally:
        stop_process_group(proc)


def stop_process_group(proc: subprocess.Popen, grace: float = 5.0) -> None:
    if proc.poll() is not None:
        return
    try:
        os.killpg(proc.pid, signal.SIGTERM)
    except ProcessLookupError:
        return
    try:
        proc.wait(timeout=grace)
    except subprocess.TimeoutExpired:
        try:
            os.killpg(proc.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
        proc.wait(timeout=grace)


def run_child(argv: list[str], timeout: float, env: dict | None = None) -> tuple[dict | None, str]:
    """Run one benchmark process in its own session; return (result, error text)."""
    full_env = dict(os.environ)
    full_env["PYTHONPATH"] = os.pathsep.join(p for p in (str(REPO), str(HERE), full_env.get("PYTHONPATH", "")) if p)
    if env:
        full_env.update(env)
    proc = subprocess.Popen(
        argv,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=full_env,
        start_new_session=True,
    )
    try:
        out, err = proc.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        stop_process_group(proc, grace=2.0)
        out, err = proc.communicate()
        return None, f"timed out after {timeout:.0f}s; stderr tail: {err[-800:]}"
    result = parse_result(out)
    if result is None:
        return None, f"exit {proc.returncode}; stderr tail: {err[-1500:]}"
    return result, ""
