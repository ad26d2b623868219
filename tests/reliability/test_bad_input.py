"""Bad input and a hostile environment: each gives one clear error naming the place and the
fix, and nothing already on disk is corrupted."""

from __future__ import annotations

import errno
import hashlib
import json
import sys
from pathlib import Path

import anyio
import pytest

from chainette import Chain, SamplingParams, Step
from chainette.engine.fake import FakeEngine
from chainette.io.rolling import RollingJsonl

from .conftest import assert_accounted, journal, read_jsonl_strict, run_records

if sys.version_info < (3, 11):  # anyio installs the backport there
    from exceptiongroup import BaseExceptionGroup


def _snapshot(out: Path) -> dict[str, str]:
    return {
        str(p.relative_to(out)): hashlib.sha256(p.read_bytes()).hexdigest()
        for p in sorted(out.rglob("*"))
        if p.is_file()
    }


@pytest.fixture
def ws(workspace):
    return workspace(rows=30)


def _err(res) -> str:
    assert res.returncode == 1, (res.returncode, res.stdout[-2000:], res.stderr[-2000:])
    assert "Traceback" not in res.stderr
    return " ".join(res.stderr.split())  # rich may wrap long lines


def test_malformed_jsonl_line_names_file_line_and_fix(ws):
    lines = ws.inputs.read_text().splitlines()
    lines[4] = '{"text": "unterminated'
    ws.inputs.write_text("\n".join(lines) + "\n")
    msg = _err(ws.run(ws.dir / "out", "--quiet"))
    assert "inputs.jsonl" in msg and "5" in msg and "--on-bad-input skip" in msg
    skipped = ws.run(ws.dir / "out2", "--quiet", "--on-bad-input", "skip")
    assert skipped.returncode == 0, skipped.stderr
    bad = read_jsonl_strict(ws.dir / "out2" / "skipped_inputs.jsonl")
    assert len(bad) == 1
    assert len(run_records(ws.dir / "out2")["flattened"]) == 29


def test_wrong_type_for_the_input_model_names_the_field(ws):
    lines = ws.inputs.read_text().splitlines()
    lines[2] = json.dumps({"text": {"nested": 1}})
    ws.inputs.write_text("\n".join(lines) + "\n")
    msg = _err(ws.run(ws.dir / "out", "--quiet"))
    assert "inputs.jsonl" in msg and "3" in msg and "text" in msg and "Item" in msg


def test_missing_template_variable_is_caught_before_any_request(ws):
    src = ws.chain.read_text().replace("'Classify: {{ text }}'", "'Classify: {{ txet }}'")
    ws.chain.write_text(src)
    msg = _err(ws.run(ws.dir / "out", "--quiet"))
    assert "label" in msg and "txet" in msg
    assert ws.server.requests() == []
    assert not (ws.dir / "out").exists()


def test_unknown_engine_names_the_step_and_the_fix(ws):
    ws.chain.write_text(ws.chain.read_text().replace('engine_name="mock"', 'engine_name="nope"', 1))
    msg = _err(ws.run(ws.dir / "out", "--quiet"))
    assert "nope" in msg and "label" in msg
    assert ws.server.requests() == []


def test_invalid_yaml_engines_file_names_file_and_line(ws):
    ws.engines.write_text("engines:\n  - name: mock\n    backend: [vllm_api\n")
    msg = _err(ws.run(ws.dir / "out", "--quiet"))
    assert "engines.yml:" in msg and "invalid YAML" in msg


def test_invalid_yaml_chain_file_names_file_and_line(ws):
    bad = ws.dir / "chain.yml"
    bad.write_text("name: x\nsteps:\n  - id: a\n    user_prompt: {unclosed\n")
    argv = [a if not a.endswith(":x") else str(bad) for a in ws.argv(ws.dir / "out", "--quiet", target="x")]
    from .conftest import run_bounded

    msg = _err(run_bounded(argv, cwd=ws.dir, timeout=60))
    assert "chain.yml" in msg and "YAML" in msg


def test_yaml_tags_are_not_executed(ws, tmp_path):
    marker = tmp_path / "pwned"
    ws.engines.write_text(f"!!python/object/apply:os.system ['touch {marker}']\n")
    _err(ws.run(ws.dir / "out", "--quiet"))
    assert not marker.exists()


def test_unwritable_output_dir_is_a_clear_error(ws):
    blocker = ws.dir / "a-file"
    blocker.write_text("x")
    msg = _err(ws.run(blocker / "out", "--quiet"))
    assert "a-file" in msg
    assert blocker.read_text() == "x"


def test_existing_run_is_not_overwritten_without_force(ws):
    out = ws.dir / "out"
    assert ws.run(out, "--quiet").returncode == 0
    before = _snapshot(out)
    msg = _err(ws.run(out, "--quiet"))
    assert "--resume" in msg and "--force" in msg
    assert _snapshot(out) == before


def test_resume_with_changed_chain_or_input_is_refused_unless_forced(ws):
    out = ws.dir / "out"
    assert ws.run(out, "--quiet").returncode == 0
    before = _snapshot(out)
    ws.chain.write_text(ws.chain.read_text().replace("'Classify: {{ text }}'", "'Classify now: {{ text }}'"))
    msg = _err(ws.run(out, "--quiet", "--resume"))
    assert "chain changed" in msg and "--force" in msg
    assert _snapshot(out) == before
    ws.chain.write_text(ws.chain.read_text().replace("'Classify now: {{ text }}'", "'Classify: {{ text }}'"))
    ws.inputs.write_text(ws.inputs.read_text().replace('item number 3"', 'item number three"'))
    msg = _err(ws.run(out, "--quiet", "--resume"))
    assert "inputs changed" in msg
    assert _snapshot(out) == before
    forced = ws.run(out, "--quiet", "--resume", "--force")
    assert forced.returncode == 0, forced.stderr
    assert_accounted(out, 30)


def test_resume_without_a_run_says_so(ws):
    msg = _err(ws.run(ws.dir / "never-ran", "--quiet", "--resume"))
    assert "nothing to resume" in msg and "without --resume" in msg


# -- a full disk, simulated at the writer ----------------------------------------------------------
def _fake_chain():
    from pydantic import BaseModel

    class Item(BaseModel):
        text: str

    class Label(BaseModel):
        label: str

    class Summary(BaseModel):
        summary: str

    a = Step(
        "label",
        input_model=Item,
        output_model=Label,
        engine_name="fake",
        user_prompt="L {{ text }}",
        sampling=SamplingParams(temperature=0),
    )
    b = Step(
        "summary",
        input_model=Label,
        output_model=Summary,
        engine_name="fake",
        user_prompt="S {{ label.label }} {{ chain_input.text }}",
        sampling=SamplingParams(temperature=0),
    )
    return Chain(name="disk", steps=[a, b]), Item


def _run(chain, inputs, out, **kw):
    async def go():
        with anyio.fail_after(30):
            return await chain.run_async(
                inputs,
                out,
                engines={"fake": FakeEngine("fake", latency=0.002)},
                cache=False,
                batch_size=10,
                window=10,
                **kw,
            )

    return anyio.run(go)


def test_full_disk_keeps_committed_rows_intact_and_resumes(tmp_path, monkeypatch):
    chain, Item = _fake_chain()
    rows = [Item(text=f"t{i}") for i in range(200)]
    out = tmp_path / "out"
    real_write = RollingJsonl.write
    calls = {"n": 0}

    def full_disk(self, lines):
        calls["n"] += 1
        if calls["n"] > 12 and self.folder.name == "summary":  # mid-commit: label/ already written
            raise OSError(errno.ENOSPC, "No space left on device")
        return real_write(self, lines)

    monkeypatch.setattr(RollingJsonl, "write", full_disk)
    with pytest.raises(BaseException) as info:
        _run(chain, rows, out)
    leaf = info.value
    while isinstance(leaf, BaseExceptionGroup):
        leaf = leaf.exceptions[0]
    assert isinstance(leaf, OSError) and leaf.errno == errno.ENOSPC
    from chainette.cli_support.errors import _message

    assert "no space left on device" in _message(leaf) and "--output-dir" in _message(leaf)
    monkeypatch.setattr(RollingJsonl, "write", real_write)
    j = journal(out)
    assert j is not None and not j["completed"]
    committed = j["done"]["watermark"]
    assert 0 < committed < 200
    result = _run(chain, rows, out, resume=True)
    assert not result.interrupted
    recs = assert_accounted(out, 200)
    assert len(recs["label"]) == len(recs["summary"]) == 200
