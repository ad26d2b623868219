"""Item 3 of issue #13: custom nodes that process a batch of rows themselves (BatchNode),
with row identity kept and errors recorded per row; original-style execute() nodes."""

from __future__ import annotations

import json
import warnings

import anyio
import pytest
from pydantic import BaseModel

from chainette import ApplyNode, BatchNode, BatchRow, Branch, Chain, FakeEngine, Step, batch_apply
from chainette.errors import DefinitionError


class Item(BaseModel):
    text: str


class Label(BaseModel):
    label: str


class Receipt(BaseModel):
    row: str
    label: str


class Upload(BatchNode):
    """Uploads labels in batches; answers by row_id, in reverse order on purpose."""

    def __init__(self, **kw):
        super().__init__("upload", input_model=Label, output_model=Receipt, **kw)
        self.batches: list[list[str]] = []

    def process(self, rows: list[BatchRow]):
        self.batches.append([r.row_id for r in rows])
        out = {}
        for r in reversed(rows):
            n = int(r.row_id.split(".")[0])
            if n % 7 == 3:
                out[r.row_id] = RuntimeError(f"store refused row {r.row_id}")
            elif n % 7 == 5:
                out[r.row_id] = []  # dropped
            else:
                out[r.row_id] = Receipt(row=r.row_id, label=r.item.label)
        return out


def _engine(calls=None):
    def handler(req):
        if calls is not None:
            calls.append((req.step_id, req.row_id))
        return {"label": f"{req.step_id}-{req.row_id}"}

    return FakeEngine("fake", handler=handler)


def _chain(upload: BatchNode) -> Chain:
    label = Step("label", input_model=Item, output_model=Label, engine_name="fake", user_prompt="{{ text }}")
    audit = Branch(
        "audit", [Step("audit_label", output_model=Label, engine_name="fake", user_prompt="{{ label.label }}")]
    )
    stored = Branch("stored", [upload]).join("stored")
    final = Step(
        "final", output_model=Label, engine_name="fake", user_prompt="{% if stored %}{{ stored.row }}{% endif %}"
    )
    return Chain("batching", steps=[label, [stored, audit], final])


def test_batch_node_in_a_branching_chain_keeps_row_identity_and_per_row_errors():
    up = Upload(batch_size=8, max_wait=0.05)
    result = _chain(up).run([{"text": f"t{i}"} for i in range(30)], engines={"fake": _engine()}, cache=False)
    assert max(len(b) for b in up.batches) == 8 and sum(len(b) for b in up.batches) == 30
    receipts = {r.row_id: r.value for r in result.outputs["upload"]}
    expected = {str(i) for i in range(30) if i % 7 not in (3, 5)}
    assert set(receipts) == expected
    assert all(v.row == rid and v.label == f"label-{rid}" for rid, v in receipts.items())
    errs = {e["row_id"]: e for e in result.errors}
    assert set(errs) == {str(i) for i in range(30) if i % 7 == 3}
    assert errs["3"]["step_id"] == "upload" and errs["3"]["error_type"] == "RuntimeError"
    assert "store refused row 3" in errs["3"]["message"]
    # a dropped row joins as None; the failed rows stop before 'final', the others reach it
    finals = {r.row_id for r in result.outputs["final"]}
    assert finals == {str(i) for i in range(30) if i % 7 != 3}


def test_batch_node_resumes_after_a_crash_without_redoing_committed_rows(tmp_path):
    class Crash(Exception):
        pass

    def inputs(n, crash_at=None):
        for i in range(n):
            if i == crash_at:
                raise Crash("source died")
            yield {"text": f"t{i}"}

    out = tmp_path / "run"
    up = Upload(batch_size=16, max_wait=0.02)
    with pytest.raises(BaseException):
        _chain(up).run(
            inputs(300, crash_at=230), out, engines={"fake": _engine()}, batch_size=16, window=16, cache=False
        )
    done = json.loads((out / ".chainette" / "progress.json").read_text())["done"]["watermark"]
    assert 0 < done <= 230
    up2 = Upload(batch_size=16, max_wait=0.02)
    result = _chain(up2).run(inputs(300), out, engines={"fake": _engine()}, batch_size=16, resume=True, cache=False)
    assert not result.interrupted
    again = {int(r) for b in up2.batches for r in b}
    assert not again & set(range(done)), "committed rows were sent to the batch node again"
    recs = [json.loads(line) for p in sorted((out / "upload").glob("*.jsonl")) for line in p.read_text().splitlines()]
    ids = [r["row_id"] for r in recs]
    assert len(ids) == len(set(ids)) == len([i for i in range(300) if i % 7 not in (3, 5)])
    assert all(r["row"] == r["row_id"] for r in recs)


def test_process_errors_and_contract_violations_become_per_row_error_records():
    @batch_apply(id="boom", batch_size=4, max_wait=0.01)
    def boom(rows):
        raise ConnectionError("service down")

    @batch_apply(id="short", batch_size=4, max_wait=0.01)
    def short(rows):
        return [r.item for r in rows][:-1]

    for node, text in ((boom, "service down"), (short, "returned 3 entries for 4 rows")):
        chain = Chain(
            "c",
            steps=[
                Step("label", input_model=Item, output_model=Label, engine_name="fake", user_prompt="{{ text }}"),
                node,
            ],
        )
        result = chain.run([{"text": str(i)} for i in range(4)], engines={"fake": _engine()}, cache=False)
        assert len(result.errors) == 4 and all(text in e["message"] for e in result.errors), result.errors
        assert {e["row_id"] for e in result.errors} == {"0", "1", "2", "3"}


def test_async_process_fan_out_and_history_access():
    class Split(BatchNode):
        async def process(self, rows):
            await anyio.sleep(0)
            return [[Label(label=f"{r.history['chain_input'].text}-{k}") for k in range(2)] for r in rows]

    chain = Chain("c", steps=[Split("split", input_model=Item, batch_size=3, max_wait=0.01)])
    result = chain.run([{"text": "a"}, {"text": "b"}], cache=False)
    assert {(r.row_id, r.value.label) for r in result.outputs["split"]} == {
        ("0.0", "a-0"),
        ("0.1", "a-1"),
        ("1.0", "b-0"),
        ("1.1", "b-1"),
    }


def test_batch_node_needs_a_process():
    with pytest.raises(DefinitionError, match="process"):
        BatchNode("x")
    with pytest.raises(DefinitionError, match="batch_size"):
        BatchNode("x", fn=lambda rows: rows, batch_size=0)


class LegacyUpload(ApplyNode):
    """The original Chainette's custom-node shape: no super().__init__, execute() overridden."""

    def __init__(self, drop_one: bool = False):
        self.id = "upload"
        self.name = "Upload"
        self.input_model = Label
        self.output_model = Label
        self.drop_one = drop_one
        self.seen: list[int] = []

    def execute(self, inputs, item_histories, writer=None, debug=False, batch_size=0):
        self.seen.append(len(inputs))
        new = []
        for h in item_histories:
            h = h.copy()
            h[self.id] = {"uploaded": True}
            new.append(h)
        if self.drop_one:
            return inputs[1:], new[1:]
        return inputs, new


def test_an_original_style_execute_node_runs_with_a_deprecation_warning():
    legacy = LegacyUpload()
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        chain = Chain(
            "c",
            steps=[
                Step("label", input_model=Item, output_model=Label, engine_name="fake", user_prompt="{{ text }}"),
                legacy,
            ],
        )
    assert any("BatchNode" in str(w.message) and issubclass(w.category, DeprecationWarning) for w in caught)
    result = chain.run([{"text": str(i)} for i in range(5)], engines={"fake": _engine()}, cache=False)
    assert [r.row_id for r in result.outputs["upload"]] == ["0", "1", "2", "3", "4"]
    assert not result.errors and sum(legacy.seen) == 5


def test_an_execute_node_that_drops_rows_gets_errors_naming_the_new_way():
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)
        chain = Chain(
            "c",
            steps=[
                Step("label", input_model=Item, output_model=Label, engine_name="fake", user_prompt="{{ text }}"),
                LegacyUpload(drop_one=True),
            ],
        )
    result = chain.run([{"text": str(i)} for i in range(3)], engines={"fake": _engine()}, cache=False)
    assert result.errors and all("BatchNode" in e["message"] for e in result.errors)
