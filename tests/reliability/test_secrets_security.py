"""Security: API keys never reach logs, tracebacks, progress output or the run directory;
YAML is loaded safely; symbols resolve only from explicit references; managed servers bind
127.0.0.1 by default; no ``shell=True`` in the package."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from chainette.engine.registry import EngineConfig
from chainette.errors import ConfigError

from .conftest import REPO, SECRET, assert_accounted, run_bounded

SECRET_ENV = {"OPENAI_API_KEY": SECRET, "CHAINETTE_TEST_API_KEY": SECRET}


def _scan(texts: dict[str, str], *dirs: Path) -> None:
    leaks = [name for name, text in texts.items() if SECRET in text]
    for d in dirs:
        for p in d.rglob("*"):
            if p.name == "engines.yml":  # the user's own config file is where the key lives
                continue
            if p.is_file() and SECRET.encode() in p.read_bytes():
                leaks.append(str(p))
    assert not leaks, f"the API key leaked into: {leaks}"


@pytest.fixture
def secret_ws(workspace, tmp_path):
    def make(*flags: str, **fields):
        ws = workspace(*flags, rows=12, backend="openai", api_key=SECRET, **fields)
        ws.env = dict(SECRET_ENV)
        return ws

    return make


@pytest.mark.parametrize("ui", [("--json-logs",), (), ("--debug",)])
def test_key_never_in_output_or_run_dir_on_success(secret_ws, tmp_path, ui):
    ws = secret_ws()
    out = ws.dir / "out"
    res = ws.run(out, *ui)
    assert res.returncode == 0, res.stderr
    assert_accounted(out, 12)
    _scan({"stdout": res.stdout, "stderr": res.stderr}, out, tmp_path)


@pytest.mark.parametrize("ui", [("--json-logs", "--debug"), ("--debug",)])
def test_key_never_leaks_on_failing_runs(secret_ws, tmp_path, ui):
    # every request fails (HTTP 500 with the mock's error body), error rate above the limit: exit 3
    ws = secret_ws("--error-mode", "hash", "--error-rate", "1", "--error-kinds", "500", max_retries=1)
    out = ws.dir / "out"
    res = ws.run(out, "--max-error-rate", "0.1", *ui)
    assert res.returncode == 3, res.stderr
    texts = {"stdout": res.stdout, "stderr": res.stderr}
    # the server is gone: connection errors
    ws.server.stop()
    res2 = ws.run(ws.dir / "out2", *ui)
    texts.update(stdout2=res2.stdout, stderr2=res2.stderr)
    # a crash with --debug shows a traceback: an output dir under a regular file
    blocker = ws.dir / "blocker"
    blocker.write_text("x")
    res3 = ws.run(blocker / "out", *ui)
    assert res3.returncode != 0
    assert "Traceback" in res3.stderr  # --debug really shows it
    texts.update(stdout3=res3.stdout, stderr3=res3.stderr)
    _scan(texts, tmp_path)


def test_engines_command_never_prints_the_key(secret_ws, tmp_path):
    ws = secret_ws()
    for extra in ((), ("--json",)):
        res = run_bounded(
            [*ws.argv(ws.dir / "x")[:3], "engines", "--engines", str(ws.engines), *extra],
            cwd=ws.dir,
            timeout=60,
            env=ws.env,
        )
        assert res.returncode == 0, res.stderr
        _scan({"stdout": res.stdout, "stderr": res.stderr})


def test_public_dict_and_repr_hide_the_key():
    cfg = EngineConfig(name="x", backend="openai", model="m", api_key=SECRET)
    assert SECRET not in repr(cfg) and SECRET not in str(cfg.public_dict())


def test_no_shell_true_in_the_package():
    offenders = []
    for p in (REPO / "chainette").rglob("*.py"):
        for k, line in enumerate(p.read_text().splitlines(), 1):
            if re.search(r"shell\s*=\s*True", line) or re.search(r"\bos\.system\(|\bos\.popen\(", line):
                offenders.append(f"{p.relative_to(REPO)}:{k}")
    assert not offenders, offenders


def test_yaml_is_only_loaded_safely():
    offenders = []
    for p in (REPO / "chainette").rglob("*.py"):
        text = p.read_text()
        for m in re.finditer(r"yaml\.(load|unsafe_load|full_load|load_all)\(", text):
            offenders.append(f"{p.relative_to(REPO)}: {m.group(0)}")
        if "yaml.Loader" in text or "UnsafeLoader" in text or "FullLoader" in text:
            offenders.append(f"{p.relative_to(REPO)}: unsafe loader")
    assert not offenders, offenders


def test_symbols_resolve_only_from_explicit_references():
    from chainette.utils.symbols import resolve_symbol

    with pytest.raises(ConfigError, match="module:attr"):
        resolve_symbol("system", what="chain")  # a bare name with no --symbols: refused, not searched
    with pytest.raises(ConfigError):
        resolve_symbol("", what="chain")
    import os

    assert resolve_symbol("os:getcwd") is os.getcwd  # explicit module:attr only


def test_managed_servers_bind_localhost_by_default(monkeypatch):
    import os

    from chainette.engine.process_manager import build_command

    monkeypatch.setenv("PATH", f"{REPO / 'tests' / 'standins'}{os.pathsep}{os.environ.get('PATH', '')}")
    cfg = EngineConfig(name="v", backend="vllm_api", model="m")
    assert cfg.host == "127.0.0.1"
    argv = build_command(cfg, 8000)
    assert argv[argv.index("--host") + 1] == "127.0.0.1"
    wide = EngineConfig(name="v", backend="vllm_api", model="m", host="0.0.0.0")  # only when asked
    argv = build_command(wide, 8000)
    assert argv[argv.index("--host") + 1] == "0.0.0.0"
