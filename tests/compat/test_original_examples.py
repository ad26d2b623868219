"""Item 6 of issue #13: the original Chainette's 17 example chains run here, changed only in
their engine registration (ported copies in original_examples/, see its README). 03 and 04 use
join aliases equal to the step id inside their branch (accepted since issue #11 item 8)."""

from __future__ import annotations

import json
import sys
import warnings
from pathlib import Path

import pytest
from typer.testing import CliRunner

ROOT = Path(__file__).parent / "original_examples"
EX = ROOT / "examples"

PY_EXAMPLES = [
    ("01_sentiment/chain.py", "sentiment_chain"),
    ("01_sentiment/ollama/chain.py", "sentiment_chain"),
    ("01_sentiment/openai/chain.py", "sentiment_chain"),
    ("01_sentiment/vllm/chain.py", "sentiment_chain"),
    ("02_fin_metrics/chain.py", "fin_metrics_chain"),
    ("03_translate_summary/chain.py", "translate_chain"),
    ("04_branch_math/chain.py", "branching_chain"),
    ("05_pure_python/chain.py", "py_chain"),
    ("06_stream_big/chain.py", "stream_chain"),
    ("07_multistep_rag/chain.py", "rag_chain"),
    ("09_clinical_qa/chain.py", "clinical_chain"),
    ("10_eval_loop/chain.py", "eval_chain"),
    ("11_tool_use/chain.py", "tool_use_chain"),
    ("12_flagship/chain.py", "flagship_chain"),
    ("12_flagship/ollama/chain.py", "flagship_chain_ollama"),
    ("13_pancreas_note_fr/chain.py", "pancreas_chain"),
]

# module names the examples import from their own folders (plain `import models`): cleared
# around each run so that one example (or another test's tmp project) never shadows another's
LOCAL_MODULES = ("models", "steps", "nodes", "config", "retriever", "chain")


@pytest.fixture
def in_examples(monkeypatch, tmp_path):
    monkeypatch.chdir(ROOT)
    monkeypatch.syspath_prepend(str(ROOT))
    for name in LOCAL_MODULES:
        monkeypatch.delitem(sys.modules, name, raising=False)
    uploads: list = []
    import datasets

    def fake_push(self, repo_id, *args, **kwargs):  # the upload node's network call, recorded instead
        uploads.append((repo_id, self.to_list()))

    monkeypatch.setattr(datasets.Dataset, "push_to_hub", fake_push)
    yield tmp_path, uploads
    for name in LOCAL_MODULES:
        sys.modules.pop(name, None)


def _run(args):
    from chainette.cli import app

    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)
        return CliRunner().invoke(app, args)


def _flattened(out: Path) -> list[dict]:
    return [
        json.loads(line) for p in sorted((out / "flattened").glob("*.jsonl")) for line in p.read_text().splitlines()
    ]


@pytest.mark.parametrize("path,attr", PY_EXAMPLES, ids=[p for p, _ in PY_EXAMPLES])
def test_original_example_runs_with_the_original_cli_form(path, attr, in_examples):
    tmp_path, uploads = in_examples
    folder = (EX / path).parent
    out = tmp_path / "out"
    # the original's command line: chainette run FILE CHAIN INPUT OUTPUT
    r = _run(["run", str(EX / path), attr, str(folder / "inputs.jsonl"), str(out), "--quiet", "--no-cache"])
    assert r.exit_code == 0, r.output
    n_inputs = len((folder / "inputs.jsonl").read_text().splitlines())
    meta = json.loads((out / "metadata.json").read_text())
    assert meta["status"] == "completed" and meta["rows_in"] == n_inputs
    assert not (out / "errors").exists() or not any((out / "errors").glob("*.jsonl")), r.output
    if path.startswith("13_"):
        assert len(_flattened(out)) <= n_inputs
    else:
        assert len(_flattened(out)) == n_inputs


def test_the_original_yaml_chatbot_runs(in_examples, monkeypatch):
    tmp_path, _ = in_examples
    # pytest puts tests/ on sys.path, where tests/examples/ (a package) would shadow this 'examples'
    tests_dir = str(Path(__file__).resolve().parents[1])
    monkeypatch.setattr(sys, "path", [p for p in sys.path if str(Path(p or ".").resolve()) != tests_dir])
    for name in [m for m in sys.modules if m == "examples" or m.startswith("examples.")]:
        monkeypatch.delitem(sys.modules, name)
    folder = EX / "08_chatbot_yaml"
    out = tmp_path / "out"
    # the YAML names its step as module:attr from the examples package: allowed explicitly
    r = _run(
        [
            "run-yaml",
            str(folder / "chain.yml"),
            "--allow-import",
            "examples.08_chatbot_yaml",
            "-i",
            str(folder / "inputs.jsonl"),
            "-o",
            str(out),
            "--quiet",
            "--no-cache",
        ]
    )
    assert r.exit_code == 0, r.output
    assert [f["answer.answer"] != "" for f in _flattened(out)] == [True, True]


def test_the_pancreas_upload_node_runs_as_a_batch_node(in_examples):
    """13: the custom UploadNode (an ApplyNode overriding the original's execute()) runs on the
    rows that passed the filter, in one batch, with their histories."""
    from chainette import FakeEngine
    from chainette.cli_support.loading import load_chain

    _, uploads = in_examples
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)
        chain = load_chain(f"{EX / '13_pancreas_note_fr' / 'chain.py'}:pancreas_chain")
    assert chain.problems() == []
    warned = {w.where for w in chain.warnings()}
    assert warned == {"spans"}  # input_model ClinicalNote after 'extract': taken from 'note' at run time

    def handler(req):
        if req.step_id == "classify":
            return {"category": "other" if "cheville" in req.messages[-1]["content"] else "pancreas"}
        return None  # everything else: filled from the schema

    from chainette.engine.fake import fill_schema
    from chainette.utils.canonical import canonical_hash

    def reply(req):
        return handler(req) or fill_schema(req.json_schema, canonical_hash(req.messages))

    inputs = [json.loads(line) for line in (EX / "13_pancreas_note_fr" / "inputs.jsonl").read_text().splitlines()]
    engines = {name: FakeEngine(name, handler=reply) for name in ("openai_mini", "o4-mini", "gpt-4.1")}
    result = chain.run(inputs, engines=engines, cache=False)
    assert not result.errors
    assert [r.row_id for r in result.outputs["upload"]] == ["0", "1"]  # row 2 ('other') was filtered out
    ((repo, rows),) = uploads
    assert repo == "rntc/clinical-reformulate" and len(rows) == 2
    assert all(row["clinical_note"] for row in rows)
