"""Item 2 of issue #13: the writer contract (init, write_step, finalize) for custom writers,
implemented by the built-in writers; a custom writer runs a branching chain with resume."""

from __future__ import annotations

import json
import sys

import pytest
from pydantic import BaseModel
from typer.testing import CliRunner

from chainette import Branch, Chain, FakeEngine, Step
from chainette.errors import EngineError
from chainette.io.record_writer import RecordWriter
from chainette.io.stream_writer import StreamWriter
from chainette.io.writer import RunWriter

from .sqlite_writer import SQLiteWriter, rows


class Item(BaseModel):
    text: str


class Label(BaseModel):
    label: str


class Text(BaseModel):
    text: str


def _chain() -> Chain:
    label = Step("label", input_model=Item, output_model=Label, engine_name="fake", user_prompt="{{ text }}")
    fr = Branch("fr", [Step("fr_text", output_model=Text, engine_name="fake", user_prompt="{{ label.label }}")]).join(
        "fr"
    )
    audit = Branch(
        "audit", [Step("audit_text", output_model=Text, engine_name="fake", user_prompt="{{ label.label }}")]
    )
    final = Step("final", output_model=Text, engine_name="fake", user_prompt="{{ fr.text }}")
    return Chain("branching", steps=[label, [fr, audit], final])


def _handler(calls, fail_rows=()):
    def handler(req):
        calls.append((req.step_id, req.row_id))
        if req.step_id == "audit_text" and req.row_id in fail_rows:
            raise EngineError("audit down")
        key = "label" if req.step_id == "label" else "text"
        return {key: f"{req.step_id}-{req.row_id}"}

    return handler


class Crash(Exception):
    pass


def _inputs(n, crash_at=None):
    for i in range(n):
        if i == crash_at:
            raise Crash("input source died")
        yield {"text": f"t{i}"}


def test_custom_writer_runs_a_branching_chain_and_resumes_after_a_crash(tmp_path):
    calls: list = []
    engine = FakeEngine("fake", handler=_handler(calls), latency=0.001)
    out = tmp_path / "run"
    writer = SQLiteWriter(out)
    with pytest.raises(BaseException):
        _chain().run(
            _inputs(300, crash_at=220),
            out,
            writer=writer,
            engines={"fake": engine},
            batch_size=8,
            window=8,
            cache=False,
        )
    assert writer.calls == ["init", "finalize"]
    progress = json.loads((out / ".chainette" / "progress.json").read_text())
    committed = progress["done"]["watermark"]
    assert 0 < committed <= 220
    before = {(s, r) for s, r, _ in rows(out / "results.sqlite")}
    assert {r for s, r in before if s == "final"} == {str(i) for i in range(committed)}

    calls.clear()
    writer2 = SQLiteWriter(out)
    result = _chain().run(
        _inputs(300), out, writer=writer2, engines={"fake": engine}, batch_size=8, resume=True, cache=False
    )
    assert not result.interrupted and writer2.calls == ["init:resumed", "finalize"]
    assert not {r for _, r in calls} & {str(i) for i in range(committed)}, "committed rows requested again"
    got = rows(out / "results.sqlite")
    by_step: dict = {}
    for s, r, d in got:
        by_step.setdefault(s, {})[r] = d
    for step in ("label", "fr_text", "audit_text", "final"):
        assert set(by_step[step]) == {str(i) for i in range(300)}, step
    assert by_step["final"]["7"] == {"row_id": "7", "text": "final-7"}
    # the run directory keeps the journal, graph and metadata, and no step files of its own
    assert (out / "graph.json").exists() and json.loads((out / "metadata.json").read_text())["status"] == "completed"
    assert not (out / "label").exists()
    assert json.loads((out / "metadata.json").read_text())["steps"]["final"]["outputs"] == 300


def test_errors_reach_the_writer_and_retry_errors_forgets_them_first(tmp_path):
    calls: list = []
    out = tmp_path / "run"
    engine = FakeEngine("fake", handler=_handler(calls, fail_rows={"3", "5"}))
    w = SQLiteWriter(out)
    _chain().run([{"text": f"t{i}"} for i in range(10)], out, writer=w, engines={"fake": engine}, cache=False)
    errs = rows(out / "results.sqlite", "errors")
    assert {(s, r) for s, r, _ in errs} == {("audit_text", "3"), ("audit_text", "5")}
    assert (out / "errors" / "000.jsonl").exists()  # the run directory keeps them too (for --retry-errors)

    engine2 = FakeEngine("fake", handler=_handler(calls))
    w2 = SQLiteWriter(out)
    _chain().run(
        [{"text": f"t{i}"} for i in range(10)],
        out,
        writer=w2,
        engines={"fake": engine2},
        resume=True,
        retry_errors=True,
        cache=False,
    )
    assert "forget:2" in w2.calls
    assert rows(out / "results.sqlite", "errors") == []
    assert len([1 for s, _, _ in rows(out / "results.sqlite") if s == "audit_text"]) == 10


def test_duck_typed_writer_without_output_dir_and_a_writer_class():
    class Collect:  # no base class: a write_step method is the contract
        instances: list = []

        def __init__(self):
            self.records: dict = {}
            Collect.instances.append(self)

        def write_step(self, step_id, records):
            self.records.setdefault(step_id, []).extend(records)

    calls: list = []
    engine = FakeEngine("fake", handler=_handler(calls, fail_rows={"1"}))
    result = _chain().run([{"text": "a"}, {"text": "b"}], writer=Collect, engines={"fake": engine}, cache=False)
    (w,) = Collect.instances
    assert [r["row_id"] for r in w.records["final"]] == ["0", "1"]  # audit is a plain branch
    assert [r["row_id"] for r in w.records["audit_text"]] == ["0"]
    assert result.errors and result.errors[0]["row_id"] == "1"  # kept in memory without a run directory
    with pytest.raises(Exception, match="needs an output directory"):
        _chain().run([{"text": "a"}], writer=Collect(), engines={"fake": engine}, resume=True)


def test_a_writer_without_write_step_is_refused():
    from chainette.errors import ConfigError

    with pytest.raises(ConfigError, match="write_step"):
        _chain().run([{"text": "a"}], writer=object(), engines={"fake": FakeEngine()})


def test_builtin_writers_implement_the_contract(tmp_path):
    class Dummy(BaseModel):
        value: int

    assert isinstance(StreamWriter(tmp_path / "x"), RecordWriter)
    for fmt, suffix in (("jsonl", ".jsonl"), ("parquet", ".parquet"), ("csv", ".csv")):
        w = StreamWriter(tmp_path / fmt, max_lines_per_file=5, fmt=fmt)
        w.init({"nodes": []})
        for i in range(12):
            w.write_step("dummy", [Dummy(value=i)])
        w.finalize()
        files = sorted((tmp_path / fmt / "dummy").iterdir())
        assert [p.suffix for p in files] == [suffix] * 3
    d = RunWriter(tmp_path / "ds")
    d.write_step("dummy", [{"row_id": str(i), "value": i} for i in range(3)])
    ds = d.finalize()
    assert ds["dummy"]["value"] == [0, 1, 2]


def test_cli_writer_option_takes_a_module_class(tmp_path, monkeypatch):
    from chainette.cli import app

    monkeypatch.syspath_prepend(str(tmp_path))
    (tmp_path / "wchain.py").write_text(
        "from pydantic import BaseModel\n"
        "from chainette import Branch, Chain, Step, register_engine\n"
        "register_engine('fake', backend='fake')\n"
        "class Item(BaseModel):\n    text: str\n"
        "class Label(BaseModel):\n    label: str\n"
        "chain = Chain('c', steps=[Step('label', input_model=Item, output_model=Label, engine_name='fake',"
        " user_prompt='{{ text }}'), [Branch('x', [Step('b1', output_model=Label, engine_name='fake', user_prompt='x')]),"
        " Branch('y', [Step('b2', output_model=Label, engine_name='fake', user_prompt='y')])]])\n"
    )
    inp = tmp_path / "in.jsonl"
    inp.write_text("".join(json.dumps({"text": f"t{i}"}) + "\n" for i in range(5)))
    out = tmp_path / "out"
    r = CliRunner().invoke(
        app,
        [
            "run",
            f"{tmp_path / 'wchain.py'}:chain",
            "-i",
            str(inp),
            "-o",
            str(out),
            "--writer",
            "tests.compat.sqlite_writer:SQLiteWriter",
            "--quiet",
            "--no-cache",
        ],
    )
    assert r.exit_code == 0, r.output
    got = rows(out / "results.sqlite")
    assert {s for s, _, _ in got} == {"label", "b1", "b2"} and len(got) == 15
    bad = CliRunner().invoke(
        app,
        [
            "run",
            f"{tmp_path / 'wchain.py'}:chain",
            "-i",
            str(inp),
            "-o",
            str(tmp_path / "o2"),
            "--writer",
            "nosuchmod:W",
            "--quiet",
        ],
    )
    assert bad.exit_code == 1 and "nosuchmod" in bad.output
    assert "sys" in sys.modules
