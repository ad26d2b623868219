"""A local server started for a run stops by itself when the run is killed with SIGKILL."""

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from chainette.engine.process_manager import group_alive

REPO = Path(__file__).resolve().parents[2]

SCRIPT = """
import json, sys, time
from chainette.engine.registry import EngineConfig
from chainette.engine.process_manager import start_server
sp = start_server(EngineConfig(name="orphan", backend="local", startup_timeout=60), log_dir=sys.argv[1])
print(json.dumps({"pgid": sp.pgid, "endpoint": sp.endpoint}), flush=True)
time.sleep(120)
"""


@pytest.mark.integration
def test_local_server_exits_when_its_run_is_killed(tmp_path):
    proc = subprocess.Popen([sys.executable, "-c", SCRIPT, str(tmp_path)], cwd=REPO, stdout=subprocess.PIPE, text=True)
    pgid = None
    try:
        line = proc.stdout.readline()
        assert line, "the child did not start a server"
        pgid = json.loads(line)["pgid"]
        assert group_alive(pgid)
        proc.send_signal(signal.SIGKILL)
        proc.wait(timeout=10)
        deadline = time.monotonic() + 15
        while group_alive(pgid) and time.monotonic() < deadline:
            time.sleep(0.2)
        assert not group_alive(pgid), "the local server outlived the killed run"
    finally:
        if proc.poll() is None:
            proc.kill()
        if pgid is not None and group_alive(pgid):
            os.killpg(pgid, signal.SIGKILL)
