"""--resume --retry-errors: rows that ended in an error record are processed again, exactly once."""

import json
import os

import pytest

from chainette import Chain, FakeEngine, Step, apply
from chainette.errors import ConfigError, EngineHTTPError
from chainette.io.journal import DoneSet, load_journal, save_journal
from chainette.io.retry_errors import RETRY_SUFFIX, finish_pending_rewrite
from chainette.io.stream_writer import read_records
from tests.core.models import Answer, Question, Summary


def _chain():
    def twice(a: Answer) -> list[Answer]:  # fan-out: failed rows have child records too
        return [a, a]

    qa = Step("qa", input_model=Question, output_model=Answer, engine_name="fake", user_prompt="{{text}}")
    summ = Step(
        "summ", input_model=Answer, output_model=Summary, engine_name="fake", user_prompt="{{answer}} {{row_id}}"
    )
    return Chain("retry", steps=[qa, apply(twice), summ])


def _engine(fail: set[str], calls: list[str]):
    def handler(req):
        calls.append(req.step_id)
        if req.step_id == "summ" and req.row_id in fail:
            raise EngineHTTPError("down", status=503)
        return {"answer": req.row_id, "confidence": 1.0} if req.step_id == "qa" else {"summary": req.row_id}

    return FakeEngine(handler=handler)


def test_retry_errors_processes_failed_rows_again_exactly_once(tmp_path):
    inputs = [Question(text=f"q{i}") for i in range(8)]
    first_calls: list[str] = []
    first = _chain().run(inputs, tmp_path, engines={"fake": _engine({"2.1", "5.0"}, first_calls)}, cache=False)
    assert first.failed_rows == 2 and len(list(read_records(tmp_path / "errors"))) == 2

    calls: list[str] = []
    second = _chain().run(
        inputs, tmp_path, engines={"fake": _engine(set(), calls)}, cache=False, resume=True, retry_errors=True
    )
    assert sorted(calls) == ["qa", "qa", "summ", "summ", "summ", "summ"]  # only inputs 2 and 5 again
    assert second.error_count == 0
    assert list(read_records(tmp_path / "errors")) == []
    for folder, per_input in (("qa", 1), ("twice", 2), ("summ", 2), ("flattened", 2)):
        ids = [r["row_id"] for r in read_records(tmp_path / folder)]
        assert len(ids) == len(set(ids)) == 8 * per_input, folder
    meta = json.loads((tmp_path / "metadata.json").read_text())
    assert meta["steps"]["summ"]["outputs"] == 16 and meta["errors"] == 0
    assert load_journal(tmp_path).done.redo == set()


def test_retry_errors_needs_resume(tmp_path):
    with pytest.raises(ConfigError, match="--retry-errors works with --resume"):
        _chain().run([Question(text="a")], tmp_path, engines={"fake": FakeEngine()}, cache=False, retry_errors=True)


def test_done_set_redo_round_trips():
    done = DoneSet()
    for i in range(10):
        done.add(i)
    done.discard(3)
    assert 3 not in done and 4 in done and len(done) == 9
    again = DoneSet.from_dict(json.loads(json.dumps(done.to_dict())))
    assert 3 not in again
    again.add(3)
    assert 3 in again and again.redo == set()


def test_an_interrupted_rewrite_is_finished_on_the_next_open(tmp_path):
    _chain().run([Question(text="q0")], tmp_path, engines={"fake": FakeEngine()}, cache=False)
    journal = load_journal(tmp_path)
    target = tmp_path / "qa" / "000.jsonl"
    (tmp_path / ("qa/000.jsonl" + RETRY_SUFFIX)).write_text("")  # phase one done, crash before the swap
    journal.rewrite = ["qa/000.jsonl"]
    save_journal(tmp_path, journal)
    finish_pending_rewrite(tmp_path, journal, durable=False)
    assert target.read_text() == "" and load_journal(tmp_path).rewrite == []
    assert not os.path.exists(str(target) + RETRY_SUFFIX)
