"""The original Chainette's unit tests for the names issue #13 brings back (dsl.pipe,
.to_chain(), validate_chain_io, the writer's write_step, load_chain(symbols=...)), ported:
the same calls and assertions, with a deprecation warning where the name is a shim."""

from __future__ import annotations

import textwrap

import pytest
from pydantic import BaseModel

from chainette import Branch, Chain, SamplingParams, Step
from chainette.core.join_branch import JoinBranch
from chainette.dsl import pipe
from chainette.errors import ConfigError
from chainette.io.stream_writer import StreamWriter
from chainette.utils.validate import validate_chain_io
from chainette.yaml_loader import load_chain

pytestmark = pytest.mark.filterwarnings("ignore::DeprecationWarning")


class A(BaseModel):
    foo: str


class B(BaseModel):
    bar: str


s1 = Step(id="s1", name="s1", input_model=A, output_model=B, engine_name="e", sampling=SamplingParams())
s2 = Step(id="s2", name="s2", input_model=B, output_model=B, engine_name="e", sampling=SamplingParams())
branch = Branch(name="b", steps=[s2])


def test_dsl_to_chain():
    ch: Chain = (pipe(s1) >> pipe(branch)).to_chain("dsl")
    assert len(ch.steps) == 2
    assert isinstance(ch.steps[1], Branch)


def test_operator_syntax():
    assert isinstance((s1 >> branch).to_chain("op"), Chain)


def test_shims_warn():
    with pytest.warns(DeprecationWarning, match="pipe"):
        pipe(s1)
    with pytest.warns(DeprecationWarning, match="to_chain"):
        (s1 >> branch).to_chain("op")


def test_join_branch_type_and_pipe_join():
    jb = Branch(
        name="br",
        steps=[Step(id="s3", name="s3", input_model=B, output_model=B, engine_name="e", sampling=SamplingParams())],
    ).join("alias")
    assert isinstance(jb, JoinBranch)
    assert len((pipe(s1) >> pipe(jb)).to_chain("join").steps) == 2


def test_validate_ok_and_mismatch():
    assert validate_chain_io(Chain(name="ok", steps=[s1])) == []
    bad = Step(id="bad", name="bad", input_model=A, output_model=A, engine_name="e", sampling=SamplingParams())
    mism = validate_chain_io(Chain(name="bad", steps=[s1, bad]))
    assert len(mism) == 1
    node_id, expected, actual = mism[0]
    assert node_id == "bad" and expected == B and actual == A


class Dummy(BaseModel):
    value: int


@pytest.mark.parametrize("fmt,suffix", [("jsonl", ".jsonl"), ("parquet", ".parquet")])
def test_stream_writer_write_step_rolls_files(tmp_path, fmt, suffix):
    writer = StreamWriter(tmp_path, max_lines_per_file=5, fmt=fmt)
    for i in range(12):
        writer.write_step("dummy", [Dummy(value=i)])
    writer.close()
    files = sorted((tmp_path / "dummy").glob(f"*{suffix}"))
    assert len(files) == 3
    from chainette.io.stream_writer import read_records

    assert [r["value"] for r in read_records(tmp_path / "dummy")] == list(range(12))


qa = Step(id="qa", name="qa", input_model=A, output_model=B, engine_name="e", sampling=SamplingParams())
br = Branch(name="br", steps=[Step(id="inner", output_model=B, engine_name="e", sampling=SamplingParams())])


def test_yaml_loader(tmp_path):
    file = tmp_path / "chain.yml"
    file.write_text(
        textwrap.dedent("""
        name: YAML Test
        batch_size: 1
        steps:
          - qa
          - - br
        """)
    )
    ch: Chain = load_chain(file, symbols=globals())
    assert ch.name == "YAML Test"
    assert len(ch.steps) == 2


def test_yaml_invalid(tmp_path):
    f = tmp_path / "bad.yml"
    f.write_text("name: bad\nsteps:\n  - - 123   # not a string\n")
    with pytest.raises(ConfigError, match=r"steps\[0\]\[0\]"):  # the original raised jsonschema's ValidationError
        load_chain(f, symbols=globals())
