"""Mock OpenAI-compatible servers for the tests that need a real process (reliability,
distributed): ``benchmarks/mock_server.js`` processes (deterministic replies keyed on the
messages, a request log, /stats), each in its own process group, stopped by that group, every
wait bounded."""

from __future__ import annotations

import hashlib
import json
import os
import selectors
import signal
import subprocess
import time
import urllib.request
from dataclasses import dataclass
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
MOCK_JS = REPO / "benchmarks" / "mock_server.js"
NODE = os.environ.get("NODE", "node")


def messages_hash(messages: list[dict[str, Any]]) -> str:
    """The mock's request-log hash of a request: sha1(JSON.stringify(messages))[:16]."""
    return hashlib.sha1(json.dumps(messages, separators=(",", ":"), ensure_ascii=False).encode()).hexdigest()[:16]


@dataclass
class MockServer:
    log: Path
    flags: tuple[str, ...] = ()
    port: int = 0
    proc: subprocess.Popen | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}/v1"

    def start(self, timeout: float = 10.0) -> MockServer:
        argv = [
            NODE,
            str(MOCK_JS),
            "--port",
            str(self.port),
            "--host",
            "127.0.0.1",
            "--request-log",
            str(self.log),
            *self.flags,
        ]
        self.proc = subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=subprocess.PIPE, start_new_session=True)
        sel = selectors.DefaultSelector()
        sel.register(self.proc.stdout, selectors.EVENT_READ)
        deadline = time.monotonic() + timeout
        buf = b""
        while time.monotonic() < deadline and b"\n" not in buf:
            if sel.select(timeout=max(0.0, deadline - time.monotonic())):
                chunk = os.read(self.proc.stdout.fileno(), 4096)
                if not chunk:
                    break
                buf += chunk
        sel.close()
        line = buf.decode(errors="replace").strip()
        if not line.startswith("LISTENING "):
            self.stop()
            raise RuntimeError(f"mock server did not start: {line!r}")
        self.port = int(line.split()[1])
        return self

    def send(self, sig: int) -> None:
        """Signal the server's process group (e.g. SIGSTOP to freeze it, SIGCONT to resume)."""
        if self.proc is not None and self.proc.poll() is None:
            os.killpg(self.proc.pid, sig)

    def stop(self, sig: int = signal.SIGTERM) -> None:
        proc, self.proc = self.proc, None
        if proc is None or proc.poll() is not None:
            return
        try:
            os.killpg(proc.pid, signal.SIGCONT)  # a frozen (SIGSTOP) server must run to exit
            os.killpg(proc.pid, sig)
        except ProcessLookupError:
            return
        try:
            proc.wait(timeout=5)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait(timeout=5)

    def kill(self) -> None:
        self.stop(signal.SIGKILL)

    def stats(self) -> dict[str, Any]:
        with urllib.request.urlopen(f"http://127.0.0.1:{self.port}/stats", timeout=5) as r:
            return json.loads(r.read())

    def requests(self) -> list[dict[str, Any]]:
        """Chat requests in the request log (complete lines only)."""
        if not self.log.exists():
            return []
        out = []
        for line in self.log.read_text().splitlines():
            try:
                rec = json.loads(line)
            except ValueError:
                continue
            if rec.get("n"):
                out.append(rec)
        return out
