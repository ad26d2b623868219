"""Running ``chainette run`` in process (typer's CliRunner, FakeEngine) on hand-made input files,
and reading back where every input row went: an output, an error record or a skip record."""

from __future__ import annotations

import json
import sys
import textwrap
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from typer.testing import CliRunner

if sys.version_info < (3, 11):  # anyio installs the backport there
    from exceptiongroup import BaseExceptionGroup

CHAIN = """
from pydantic import BaseModel, ConfigDict
from chainette import Chain, Step


class Item(BaseModel):
    model_config = ConfigDict(extra="allow")  # odd extra values travel to the writers too
    text: str


class Label(BaseModel):
    label: str


chain = Chain(name="inputs", steps=[
    Step("label", input_model=Item, output_model=Label, engine_name="fk", user_prompt="Label: {{ text }}"),
])
"""

ENGINES = "engines:\n  - {name: fk, backend: fake, model: fake-model}\n"

_runner = CliRunner()


@dataclass
class Outcome:
    exit_code: int
    output: str
    exception: BaseException | None
    out: Path

    @property
    def message(self) -> str:
        """The error line, unwrapped (rich may wrap long lines)."""
        return " ".join(self.output.split())


@dataclass
class InputProject:
    dir: Path
    home: Path

    def write(self, name: str, data: bytes | str) -> Path:
        path = self.dir / name
        path.write_bytes(data.encode() if isinstance(data, str) else data)
        return path

    def run(self, input_name: str | Path, out: str = "out", *extra: str) -> Outcome:
        args = [
            "run",
            "inchain.py:chain",
            "-i",
            str(input_name),
            "-o",
            out,
            "--engines",
            "engines.yml",
            "--no-cache",
            "--quiet",
            *extra,
        ]
        result = _runner.invoke(_app(), args, catch_exceptions=True)
        return Outcome(result.exit_code, result.output, result.exception, self.dir / out)

    def raised(self, input_name: str | Path, out: str = "out-debug") -> BaseException | None:
        """The exception behind a failed run (``--debug`` re-raises it instead of printing one line)."""
        exc = self.run(input_name, out, "--debug").exception
        while isinstance(exc, BaseExceptionGroup) and exc.exceptions:  # raised inside the executor's task group
            exc = exc.exceptions[0]
        return exc


def _app() -> Any:
    from chainette.cli import app

    return app


@pytest.fixture
def input_project(tmp_path, monkeypatch) -> InputProject:
    """A chain file and an engines.yml (FakeEngine) in ``tmp_path/project``; every place the
    CLI could write outside the run directory points into ``tmp_path/home``, checked empty."""
    from chainette.engine import registry

    project = tmp_path / "project"
    home = tmp_path / "home"
    project.mkdir()
    home.mkdir()
    (project / "inchain.py").write_text(textwrap.dedent(CHAIN))
    (project / "engines.yml").write_text(ENGINES)
    for var, sub in (
        ("HOME", ""),
        ("XDG_CACHE_HOME", "cache"),
        ("CHAINETTE_CACHE_DIR", "chainette-cache"),
        ("CHAINETTE_STATE_DIR", "state"),
        ("CHAINETTE_MODELS_DIR", "models"),
    ):
        monkeypatch.setenv(var, str(home / sub) if sub else str(home))
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setenv("COLUMNS", "200")
    monkeypatch.chdir(project)
    saved = dict(registry._REGISTRY)
    path = list(sys.path)
    modules = set(sys.modules)
    yield InputProject(project, home)
    registry._REGISTRY.clear()
    registry._REGISTRY.update(saved)
    sys.path[:] = path
    for name in set(sys.modules) - modules:
        if name == "inchain" or name.startswith("_chainette_user_"):
            sys.modules.pop(name, None)


# -- reading a run back ------------------------------------------------------------------------
def _jsonl(path: Path) -> list[dict[str, Any]]:
    data = path.read_bytes()
    assert not data or data.endswith(b"\n"), f"{path}: last line is half-written"
    return [json.loads(line) for line in data.splitlines()]


def _records(folder: Path) -> list[dict[str, Any]]:
    return [r for f in sorted(folder.glob("[0-9]*.jsonl")) for r in _jsonl(f)] if folder.is_dir() else []


@dataclass
class Accounting:
    outputs: dict[str, dict[str, Any]]  # row_id -> flattened record
    errors: dict[str, dict[str, Any]]  # row_id -> error record
    skipped: dict[str, dict[str, Any]]  # row_id -> skip record
    file_problems: list[dict[str, Any]]  # skip records that take no row id (an unreadable file, ...)

    @property
    def rows(self) -> int:
        return len(self.outputs) + len(self.errors) + len(self.skipped)


def account(out: Path) -> Accounting:
    """Where every row of a finished run went; each row id is in exactly one place and ids are
    0..N-1 without a gap."""
    outputs = {r["row_id"]: r for r in _records(out / "flattened")}
    errors: dict[str, dict[str, Any]] = {}
    for rec in _records(out / "errors"):
        assert rec["row_id"] not in errors, f"two error records for row {rec['row_id']}"
        errors[rec["row_id"]] = rec
    skipped: dict[str, dict[str, Any]] = {}
    problems = []
    skip_file = out / "skipped_inputs.jsonl"
    for rec in _jsonl(skip_file) if skip_file.exists() else []:
        if rec["row_id"] is None:
            problems.append(rec)
        else:
            assert rec["row_id"] not in skipped, f"two skip records for row {rec['row_id']}"
            skipped[rec["row_id"]] = rec
    assert len(_records(out / "flattened")) == len(outputs), "a row was written twice"
    places = [set(outputs), set(errors), set(skipped)]
    assert not (places[0] & places[1]) and not (places[0] & places[2]) and not (places[1] & places[2]), (
        "a row is in two places"
    )
    acc = Accounting(outputs, errors, skipped, problems)
    assert set().union(*places) == {str(i) for i in range(acc.rows)}, "row ids have a gap"
    return acc


def tree(root: Path, *, skip: Path | None = None) -> dict[str, bytes]:
    """Every file under ``root`` (except under ``skip``) with its content."""
    return {
        str(p.relative_to(root)): p.read_bytes()
        for p in sorted(root.rglob("*"))
        if p.is_file() and (skip is None or skip not in p.parents)
    }


def assert_clean_failure(outcome: Outcome) -> str:
    """Exit 1 with one ``Error:`` line naming a Chainette error, never a traceback."""
    assert outcome.exit_code == 1, (outcome.exit_code, outcome.output[-2000:])
    assert outcome.exception is None or isinstance(outcome.exception, SystemExit), repr(outcome.exception)
    msg = outcome.message
    assert "Traceback" not in outcome.output and msg.startswith("Error:"), outcome.output[-2000:]
    assert "run again with --debug" not in msg, msg  # the catch-all for an unexpected exception type
    return msg
