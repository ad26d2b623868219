"""DSL builders, DAG renderer snapshots, YAML loader, symbols and readers."""

from __future__ import annotations

import json
import textwrap

import pytest
from pydantic import BaseModel

from chainette import Branch, Chain, Step, apply, register_engine
from chainette.errors import ConfigError, InputError


class Q(BaseModel):
    text: str


class T(BaseModel):
    translated: str


class S(BaseModel):
    summary: str


def keep(x) -> list[T]:
    return [x]


def snapshot_chain() -> Chain:
    register_engine(name="snap", backend="fake", model="m")
    extract = Step("extract", input_model=Q, output_model=T, engine_name="snap")
    fr = Step("translate_fr", output_model=T, engine_name="snap")
    es = Step("translate_es", output_model=T, engine_name="snap")
    de = Step("translate_de", output_model=T, engine_name="ghost")
    agg = Step("agg", output_model=S, engine_name="snap")
    return Chain(
        name="Snapshot",
        steps=[
            extract,
            apply(keep, id="keep"),
            [Branch("fr", [fr]).join("fr"), Branch("es", [es]).join("es"), Branch("de", [de])],
            agg,
        ],
    )


ASCII_SNAPSHOT = """\
[chain] Snapshot
+-- [step] extract [snap | fake]
+-- [apply] keep (python)
+-- [parallel] 3 branches
|   +-- [join] fr -> join as 'fr'
|   |   `-- [step] translate_fr [snap | fake]
|   +-- [join] es -> join as 'es'
|   |   `-- [step] translate_es [snap | fake]
|   `-- [branch] de
|       `-- [step] translate_de [ghost | unregistered]
`-- [step] agg [snap | fake]
"""

UNICODE_SNAPSHOT = """\
🔗 Snapshot
├── 🤖 extract [snap · fake]
├── 📄 keep (python)
├── 🔀 parallel 3 branches
│   ├── 🪢 fr ⇢ join as 'fr'
│   │   └── 🤖 translate_fr [snap · fake]
│   ├── 🪢 es ⇢ join as 'es'
│   │   └── 🤖 translate_es [snap · fake]
│   └── 🪢 de
│       └── 🤖 translate_de [ghost · unregistered]
└── 🤖 agg [snap · fake]
"""

COLLAPSED_SNAPSHOT = """\
[chain] Snapshot
+-- [step] extract [snap | fake]
+-- [apply] keep (python)
+-- [parallel] 3 branches
|   +-- [join] fr -> join as 'fr'
|   |   `-- [step] translate_fr [snap | fake]
|   +-- [join] es -> join as 'es'
|   |   `-- [step] translate_es [snap | fake]
|   `-- ... 1 more branch
`-- [step] agg [snap | fake]
"""


def test_dag_ascii_snapshot():
    from chainette.utils.dag import to_ascii

    text = to_ascii(snapshot_chain())
    assert text == ASCII_SNAPSHOT
    assert text.isascii()


def test_dag_unicode_snapshot():
    from chainette.utils.dag import to_text

    assert to_text(snapshot_chain()) == UNICODE_SNAPSHOT


def test_dag_collapsed_snapshot():
    from chainette.utils.dag import to_ascii

    assert to_ascii(snapshot_chain(), max_branches=2) == COLLAPSED_SNAPSHOT


def test_rich_tree_styles_and_mermaid():
    from chainette.utils.dag import to_mermaid, to_rich_tree

    tree = to_rich_tree(snapshot_chain())
    styles = {span.style for child in tree.children for span in child.label.spans}
    assert {"cyan", "yellow", "bold blue"} <= styles
    branch_label = tree.children[2].children[0].label
    assert any(span.style == "magenta" for span in branch_label.spans)
    mm = to_mermaid(snapshot_chain())
    assert mm.startswith("flowchart TD\n")
    assert 'subgraph sg_fr["fr (join as fr)"]' in mm
    assert "keep --> translate_fr" in mm and "translate_fr -. fr .-> agg" in mm
    assert "translate_de -. " not in mm  # a plain branch is not merged back


# -- DSL ---------------------------------------------------------------------------------------
def test_dsl_builders_compose_a_chain():
    from chainette.dsl import Text, branch, chain, join, parallel, step

    pipeline = (
        step("extract", T).engine("snap").prompt("{{text}}", system="Extract.")
        >> (
            branch("fr", step("translate_fr").prompt("{{extract.translated}}")).join("fr")
            | branch("es", [step("translate_es").with_sampling(temperature=0.1)]).join("es")
        )
        >> step("summarize", S).input(T).named("Summarize")
    )
    c = chain("DSL", pipeline)
    kinds = [getattr(i, "kind", None) for i in c.items]
    assert kinds == ["step", "parallel", "step"]
    assert c.items[1].branches[0].alias == "fr"
    assert c.items[1].branches[1].steps[0].sampling.temperature == 0.1
    assert c.items[1].branches[0].steps[0].output_model is Text
    assert c.items[0].user_system_prompt == "Extract." and c.items[2].name == "Summarize"
    p = parallel(branch("a", step("a1")), step("b1"))
    assert [b.id for b in p.branches] == ["a", "b1"]
    assert join(branch("x", step("x1")), "xx").alias == "xx"
    with pytest.raises(TypeError):
        step("bad").output(int)  # type: ignore[arg-type]


# -- YAML ----------------------------------------------------------------------------------------
def write(tmp_path, name, text):
    p = tmp_path / name
    p.write_text(textwrap.dedent(text))
    return p


MODELS = """
from pydantic import BaseModel
class A(BaseModel):
    a: str
class B(BaseModel):
    b: str
def ident(x) -> list[B]:
    return [x]
"""


def test_yaml_loader_builds_all_node_types(tmp_path, monkeypatch):
    from chainette.yaml_loader import load_chain

    write(tmp_path, "ymodels.py", MODELS)
    path = write(
        tmp_path,
        "c.yml",
        """
        name: All
        emoji: "x"
        batch_size: 8
        input_model: ymodels.py:A
        engines: [{name: yk, backend: fake}]
        steps:
          - {type: step, id: s1, engine: yk, output_model: ymodels.py:B, sampling: {temperature: 0.5, max_tokens: 9}}
          - {type: apply, id: ap, function: ymodels.py:ident, blocking: true}
          - type: parallel
            branches:
              - {type: join, name: j, alias: jj, steps: [{type: step, id: s2, engine: yk, output_model: B}]}
              - {type: branch, name: br, join: bj, steps: [{type: step, id: s3, engine: yk, output_model: B}]}
          - {type: branch, name: tail, steps: [{type: step, id: s4, engine: yk, output_model: B}]}
    """,
    )
    c = load_chain(path, symbols=[str(tmp_path / "ymodels.py")], check_engines=True)
    assert c.name == "All" and c.batch_size == 8
    assert c.items[0].input_model.__name__ == "A" and c.items[0].sampling.max_tokens == 9
    assert c.items[1].blocking is True
    assert [b.alias for b in c.items[2].branches] == ["jj", "bj"]
    assert c.items[3].kind == "parallel" and c.items[3].branches[0].kind == "branch"  # a lone branch
    assert c.yaml_paths["s2"] == "steps[2].branches[0].steps[0]"


@pytest.mark.parametrize(
    "body, needle",
    [
        ("name: x\nsteps: []\n", "steps: must not be empty"),
        ("steps: [{type: step, id: a, output_model: m:A}]\n", "(top level): missing required field 'name'"),
        ("name: x\nsteps: [{type: apply}]\n", "steps[0]: missing required field 'function'"),
        (
            "name: x\nsteps: [{type: step, id: a, output_model: m:A, sampling: {temp: 1}}]\n",
            "steps[0].sampling: unknown field 'temp'",
        ),
        (
            "name: x\nsteps: [{type: join, name: j, steps: [{type: apply, function: m:f}]}]\n",
            "steps[0]: missing required field 'alias'",
        ),
        ("name: x\nsteps: [{type: step, id: a, output_model: NoSuch}]\n", "steps[0].output_model"),
        ("name: x\nsteps: [{type: step, id: a, output_model: 'ymodels.py:ident'}]\n", "expected a pydantic BaseModel"),
        ("name: x\nsteps: [{type: apply, function: 'ymodels.py:A2'}]\n", "steps[0].function"),
        ("", "the file is empty"),
        (
            "name: x\nsteps: [{type: step, id: a, output_model: ymodels.py:B, engine: nope}]\n",
            "steps[0].engine: unknown engine 'nope'",
        ),
    ],
)
def test_yaml_errors(tmp_path, body, needle):
    from chainette.yaml_loader import load_chain

    write(tmp_path, "ymodels.py", MODELS)
    path = write(tmp_path, "bad.yml", body)
    with pytest.raises(ConfigError) as err:
        load_chain(path, check_engines=True)
    assert needle in str(err.value)


def test_yaml_uses_safe_load(tmp_path):
    from chainette.yaml_loader import load_chain

    path = write(tmp_path, "evil.yml", "name: !!python/object/apply:os.system ['echo hi']\nsteps: []\n")
    with pytest.raises(ConfigError, match="invalid YAML"):
        load_chain(path)


def test_schema_is_valid_json_schema():
    from jsonschema import Draft202012Validator

    from chainette.yaml_loader import schema

    Draft202012Validator.check_schema(schema())


# -- symbols -------------------------------------------------------------------------------------
def test_symbols(tmp_path):
    from chainette.utils.symbols import resolve_symbol, split_reference

    write(tmp_path, "symmod.py", "X = 1\nclass K:\n    y = 2\n")
    assert resolve_symbol(f"{tmp_path}/symmod.py:X") == 1
    assert resolve_symbol(f"{tmp_path}/symmod.py:K.y") == 2
    assert resolve_symbol("json:dumps") is json.dumps
    assert resolve_symbol("dumps", symbols=["json"]) is json.dumps
    assert split_reference("a/b.py:c") == ("a/b.py", "c")
    for bad in ("nocolon", ":x", "json:"):
        with pytest.raises(ConfigError):
            resolve_symbol(bad)
    with pytest.raises(ConfigError, match="not found in the --symbols"):
        resolve_symbol("nothing_here", symbols=["json"])


# -- readers -------------------------------------------------------------------------------------
def test_readers_formats_and_counts(tmp_path):
    from chainette.io.readers import count_lines, open_input

    (tmp_path / "a.jsonl").write_text('{"text": "a"}\n\n{"text": "b"}')
    src = open_input(tmp_path / "a.jsonl")
    assert [r.data for r in src] == [{"text": "a"}, {"text": "b"}]
    assert count_lines(tmp_path / "a.jsonl") == 3  # an upper bound (blank lines count)
    (tmp_path / "lines.json").write_text('{"text": "a"}\n{"text": "b"}\n')
    assert [r.line for r in open_input(tmp_path / "lines.json")] == [1, 2]
    (tmp_path / "wrapped.json").write_text('{"data": [{"text": "a"}]}')
    assert open_input(tmp_path / "wrapped.json").count() == 1
    (tmp_path / "c.tsv").write_text("text\tn\nx\t1\ny\n")
    rows = list(open_input(tmp_path / "c.tsv"))
    assert rows[0].data == {"text": "x", "n": "1"} and rows[1].error and rows[1].line == 3
    import gzip

    with gzip.open(tmp_path / "z.jsonl.gz", "wt") as fh:
        fh.write('{"text": "gz"}\n')
    assert [r.data for r in open_input(tmp_path / "z.jsonl.gz")] == [{"text": "gz"}]


def test_jsonl_is_read_lazily(tmp_path):
    from chainette.io.readers import open_input

    p = tmp_path / "big.jsonl"
    p.write_text('{"text": "a"}\n' * 10 + "{broken\n")
    it = iter(open_input(p))
    assert next(it).data == {"text": "a"}  # the broken last line has not been read yet


def test_validate_rows_fail_and_skip(tmp_path):
    from chainette.io.readers import SkipLog, open_input, validate_rows

    p = tmp_path / "in.jsonl"
    p.write_text('{"text": "a"}\n{"text": 5}\n{"nope": 1}\n')
    with pytest.raises(InputError) as err:
        list(validate_rows(open_input(p), Q))
    assert err.value.line == 2 and err.value.field == "text" and str(p) in str(err.value)
    log = SkipLog(tmp_path / "run" / "skipped_inputs.jsonl")
    rows = list(validate_rows(open_input(p), Q, on_bad="skip", skip_log=log))
    from chainette.core.row import SKIPPED

    assert rows[0].text == "a" and rows[1:] == [SKIPPED, SKIPPED]  # skipped rows keep their position
    assert not log.path.exists()  # buffered until the run directory is ready
    log.start()
    log.close()
    assert [json.loads(x)["line"] for x in log.path.read_text().splitlines()] == [2, 3]


def test_parquet_rows_are_numbered(tmp_path):
    import pyarrow as pa
    import pyarrow.parquet as pq

    from chainette.io.readers import open_input, validate_rows

    pq.write_table(pa.table({"text": ["a", None]}), tmp_path / "p.parquet")
    src = open_input(tmp_path / "p.parquet")
    assert src.count() == 2
    with pytest.raises(InputError, match="row 2"):
        list(validate_rows(src, Q))


def test_lone_branch_renders_without_a_parallel_wrapper():
    from chainette import Branch, Chain, apply
    from chainette.utils.dag import to_ascii

    def same(x: Q) -> list[Q]:
        return [x]

    text = to_ascii(Chain("lone", steps=[apply(same, id="first"), Branch("solo", [apply(same, id="inner")]).join("s")]))
    assert "parallel" not in text and "solo" in text and "inner" in text
