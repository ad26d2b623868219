"""Fixtures for the distributed tests: one local Ray cluster (2 CPUs) for the whole session,
started by the tests and shut down after them, and mock servers stopped by their own PIDs.

The tests skip, saying why, when the optional ``ray`` package is not installed
(``pip install 'chainette[ray]'``; the ``test`` extra brings it)."""

from __future__ import annotations

import os
import stat
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.mock_openai_server import MockServer

REPO = Path(__file__).resolve().parents[2]
STANDINS = REPO / "tests" / "standins"


@pytest.fixture(scope="session")
def ray_cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Any]:
    """``ray`` with a local 2-CPU cluster; ``.home`` holds the workers' cache/state dirs and the
    log of managed-server starts."""
    ray = pytest.importorskip("ray", reason="the Ray runner needs the optional 'ray' extra")
    home = tmp_path_factory.mktemp("ray-home")
    bin_dir = home / "bin"
    bin_dir.mkdir()
    wrapper = bin_dir / "vllm"  # counts each server start, then runs the stand-in vllm
    wrapper.write_text(
        f'#!/bin/sh\necho "$$" >> "{home}/vllm-starts.log"\nexec "{sys.executable}" "{STANDINS / "vllm"}" "$@"\n'
    )
    wrapper.chmod(wrapper.stat().st_mode | stat.S_IEXEC)
    env = {
        "CHAINETTE_CACHE_DIR": str(home / "cache"),
        "CHAINETTE_STATE_DIR": str(home / "state"),
        "PATH": f"{bin_dir}{os.pathsep}{os.environ.get('PATH', '')}",
        # the workers import the chainette of this checkout, as the tests do (not another editable install)
        "PYTHONPATH": os.pathsep.join(p for p in (str(REPO), os.environ.get("PYTHONPATH", "")) if p),
    }
    if ray.is_initialized():  # pragma: no cover - another suite left one running
        ray.shutdown()
    saved = {k: os.environ.get(k) for k in env}
    os.environ.update(env)  # the cluster's processes inherit it (a runtime_env would slow every worker start)
    try:
        ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False, object_store_memory=300 * 1024 * 1024)
    finally:
        for k, v in saved.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v
    ray.home = home  # type: ignore[attr-defined]
    try:
        yield ray
    finally:
        ray.shutdown()


@pytest.fixture
def mock(tmp_path: Path) -> Iterator[Any]:
    """Factory: ``mock("--latency-ms", "20")`` starts one mock server; all are stopped after the test."""
    servers: list[MockServer] = []

    def start(*flags: str) -> MockServer:
        srv = MockServer(tmp_path / f"requests-{len(servers)}.log", tuple(flags)).start()
        servers.append(srv)
        return srv

    yield start
    for srv in servers:
        srv.stop()
