"""Batch mode end to end against the mock Batch API, in process: a branching multi-step chain,
file limits, partial failures in the error file, expired and failed batches, invalid replies
(re-asked in a follow-up batch or online), a refused key, cancellation, cost."""

from __future__ import annotations

import json
import threading
import time

import pytest

from chainette.io.batch_journal import load_batches
from chainette.io.stream_writer import read_records

from .conftest import engine_cfg, inputs, make_chain


def _records(path):
    return list(read_records(path)) if path.exists() else []


def _run(mock_api, tmp_path, n=12, *, chain=None, **batch):
    out = tmp_path / "run"
    result = (chain or make_chain()).run(
        inputs(n), out, engines={"gpt": engine_cfg(mock_api.url, **batch)}, cache=False
    )
    return result, out


def _cids_by_step(mock_api):
    out: dict[str, list[str]] = {}
    for batch in mock_api.batch_custom_ids():
        for cid in batch:
            out.setdefault(cid.split(":")[1], []).append(cid)
    return out


def test_branching_chain_runs_batch_by_batch(mock_api, tmp_path):
    result, out = _run(mock_api, tmp_path, discount=0.5)
    assert not result.interrupted
    flat = _records(out / "flattened")
    assert sorted((r["row_id"] for r in flat), key=int) == [str(i) for i in range(12)]
    assert all(
        r["summary.summary"] == "text" and r["french.text"] == "text" and r["spanish.text"] == "text" for r in flat
    )
    assert _records(out / "errors") == []
    # topic, then both branches (one file: one engine), then summary: one batch each, each created once
    assert mock_api.created_keys() == ["gpt-0001", "gpt-0002", "gpt-0003"]
    steps = [sorted({cid.split(":")[1] for cid in b}) for b in mock_api.batch_custom_ids()]
    assert steps == [["topic"], ["to_es", "to_fr"], ["summary"]]
    journal = load_batches(out)
    assert journal is not None and [(r.state, r.collected) for r in journal.records()] == [("completed", True)] * 3
    ids = [cid for b in mock_api.batch_custom_ids() for cid in b]
    assert len(ids) == 48 and len(set(ids)) == 48
    run_key, step, row, digest = ids[0].split(":")
    assert run_key == journal.run_key and row.isdigit() and len(digest) == 12
    # the documented request line, and the body an online request would carry
    line = json.loads(mock_api.files["file-00001"]["content"].splitlines()[0])
    assert set(line) == {"custom_id", "method", "url", "body"}
    assert line["method"] == "POST" and line["url"] == "/v1/chat/completions"
    body = line["body"]
    assert body["model"] == "gpt-4o-mini" and body["response_format"]["json_schema"]["strict"] is True
    # cost: the batch price (half the engine's price) on the tokens the output file reported
    engine = result.cost["engines"]["gpt"]
    assert engine["price"] == {"input": 0.5, "output": 1.0}
    assert engine["requests"] == 48 and engine["completion_tokens"] == 48 * 10
    assert engine["cost"] == pytest.approx((engine["prompt_tokens"] * 0.5 + engine["completion_tokens"] * 1.0) / 1e6)


def test_files_are_split_within_the_limits(mock_api, tmp_path):
    mock_api.max_requests = 5
    result, out = _run(mock_api, tmp_path, n=12, max_requests=5)
    assert not result.interrupted and len(_records(out / "flattened")) == 12
    sizes = [c["requests"] for c in mock_api.creations]
    assert max(sizes) <= 5 and sum(sizes) == 48
    assert all(b.obj["status"] == "completed" for b in mock_api.batches.values())
    # by bytes: a file never holds more than max_bytes
    mock_api.creations.clear()
    before = set(mock_api.files)
    result, out = _run(mock_api, tmp_path / "bytes", n=6, max_bytes=2500)
    assert not result.interrupted and len(_records(out / "flattened")) == 6
    uploads = [f for k, f in mock_api.files.items() if k not in before and f["purpose"] == "batch"]
    assert len(uploads) > 4 and all(f["bytes"] <= 2500 for f in uploads)


def test_partial_failures_in_the_error_file(mock_api, tmp_path):
    seen: dict[str, int] = {}

    def line_error(cid, body):
        step, row = cid.split(":")[1:3]
        if step != "topic":
            return None
        seen[row] = seen.get(row, 0) + 1
        if row == "3":
            return 400  # a bad request: an error record, not sent again
        if row == "5" and seen[row] == 1:
            return 500  # transient: sent again once, then fine
        if row == "7":
            return 503  # transient every time: sent once more, then an error record
        return None

    mock_api.line_error = line_error
    result, out = _run(mock_api, tmp_path, n=10)
    errors = {e["row_id"]: e for e in _records(out / "errors")}
    assert set(errors) == {"3", "7"}
    assert errors["3"]["error_type"] == "EngineHTTPError" and "HTTP 400" in errors["3"]["message"]
    assert errors["3"]["attempts"] == 1 and errors["3"]["step_id"] == "topic"
    assert errors["7"]["attempts"] == 2 and "HTTP 503" in errors["7"]["message"]
    assert seen == {**{str(i): 1 for i in range(10)}, "5": 2, "7": 2}
    flat = _records(out / "flattened")
    assert sorted((r["row_id"] for r in flat), key=int) == ["0", "1", "2", "4", "5", "6", "8", "9"]


def test_expired_batch_requeues_its_unfinished_rows_once(mock_api, tmp_path):
    mock_api.expire = {1}
    result, out = _run(mock_api, tmp_path, n=10)
    assert not result.interrupted and len(_records(out / "flattened")) == 10 and _records(out / "errors") == []
    first = mock_api.creations[0]["batch_id"]
    assert mock_api.batches[first].obj["status"] == "expired"
    topic = [c for c in _cids_by_step(mock_api)["topic"]]
    assert len(topic) == 15  # 10, then the 5 that expired sent once more
    journal = load_batches(out)
    assert [r.state for r in journal.records()][:2] == ["expired", "completed"]


def test_a_request_expired_twice_becomes_an_error_record(mock_api, tmp_path):
    mock_api.expire = {1, 2}
    result, out = _run(mock_api, tmp_path, n=4, chain=make_chain(single=True))
    errors = _records(out / "errors")
    assert len(errors) == 1 and errors[0]["error_type"] == "EngineTimeoutError"  # 4 -> 2 expire -> 1 expires again
    assert "batch_expired" in errors[0]["message"] and errors[0]["attempts"] == 2
    assert len(_records(out / "flattened")) == 3 and len(mock_api.creations) == 2


def test_failed_batch_is_sent_again_once(mock_api, tmp_path):
    mock_api.fail = {1}
    result, out = _run(mock_api, tmp_path, n=5)
    assert len(_records(out / "flattened")) == 5 and _records(out / "errors") == []
    assert load_batches(out).records()[0].errors.startswith("token_limit_exceeded")


def _invalid_first(cid, body):
    """The first answer to a topic request does not fit the schema; a re-ask gets a valid one."""
    if "topic" in json.dumps(body["response_format"]) and not any(m["role"] == "assistant" for m in body["messages"]):
        return json.dumps({"topic": "x", "score": "not a number"})
    return None


def test_invalid_replies_are_reasked_in_a_follow_up_batch(mock_api, tmp_path):
    mock_api.reply = _invalid_first
    result, out = _run(mock_api, tmp_path, n=6)
    assert len(_records(out / "flattened")) == 6 and _records(out / "errors") == []
    topic = _cids_by_step(mock_api)["topic"]
    assert len(topic) == 12 and len({c.split(":")[2] for c in topic}) == 6  # one re-ask per row, another body
    assert mock_api.chat_requests == []
    second = [f for f in mock_api.files.values() if f["purpose"] == "batch"][1]
    reask = [json.loads(line) for line in second["content"].splitlines()]
    assert all(ln["body"]["messages"][-2]["role"] == "assistant" for ln in reask)


def test_invalid_replies_reasked_online_when_configured(mock_api, tmp_path):
    mock_api.reply = _invalid_first
    result, out = _run(mock_api, tmp_path, n=6, reask="online")
    assert len(_records(out / "flattened")) == 6
    assert len(mock_api.chat_requests) == 6 and len(_cids_by_step(mock_api)["topic"]) == 6


def test_invalid_replies_without_retries_are_error_records(mock_api, tmp_path):
    mock_api.reply = _invalid_first
    result, out = _run(mock_api, tmp_path, n=4, chain=make_chain(retries=0))
    errors = _records(out / "errors")
    assert [e["error_type"] for e in errors] == ["OutputValidationError"] * 4
    assert not (out / "flattened").exists() or _records(out / "flattened") == []


def test_a_refused_key_stops_the_run_resumable(mock_api, tmp_path):
    mock_api.key = "another key"
    result, out = _run(mock_api, tmp_path, n=5)
    assert result.interrupted and result.stopped_by == "engine"
    assert "401" in result.stop_reason and mock_api.creations == []
    assert _records(out / "errors") == []  # nothing committed: a resume runs every row
    mock_api.key = "sk-batch-mock-KEY"
    chain = make_chain()
    done = chain.run(inputs(5), out, engines={"gpt": engine_cfg(mock_api.url)}, cache=False, resume=True)
    assert not done.interrupted and len(_records(out / "flattened")) == 5


def test_cancel_from_the_cli_stops_the_run_and_resume_finishes(mock_api, tmp_path, monkeypatch):
    from typer.testing import CliRunner

    from chainette.cli import app

    monkeypatch.setenv("BATCH_TEST_KEY", mock_api.key)
    cfg = engine_cfg(mock_api.url).model_copy(update={"api_key": None, "api_key_env": "BATCH_TEST_KEY"})
    mock_api.progress_s = 2.0  # long enough to cancel in progress
    out = tmp_path / "run"
    box = {}

    def run():
        box["result"] = make_chain().run(inputs(6), out, engines={"gpt": cfg}, cache=False)

    t = threading.Thread(target=run)
    t.start()
    deadline = time.monotonic() + 10
    while not mock_api.creations and time.monotonic() < deadline:
        time.sleep(0.02)
    time.sleep(0.3)
    # the engine's config comes from the run's metadata.json (no key in it: $BATCH_TEST_KEY)
    res = CliRunner().invoke(app, ["batches", str(out), "--cancel"])
    assert res.exit_code == 0, res.output
    assert "cancelled 1 batch(es)" in res.output
    t.join(20)
    result = box["result"]
    assert result.interrupted and result.stopped_by == "engine" and "cancelled" in result.stop_reason
    assert mock_api.cancels == [mock_api.creations[0]["batch_id"]]
    assert len(mock_api.creations) == 1  # its unfinished rows were not sent again
    listed = CliRunner().invoke(app, ["batches", str(out), "--json"])
    assert json.loads(listed.output)["batches"][0]["state"] == "cancelled"
    mock_api.progress_s = 0.15
    done = make_chain().run(inputs(6), out, engines={"gpt": cfg}, cache=False, resume=True)
    assert not done.interrupted and len(_records(out / "flattened")) == 6
    keys = mock_api.created_keys()
    assert len(keys) == len(set(keys))


def test_resume_reads_results_of_finished_batches_instead_of_asking_again(mock_api, tmp_path):
    """The driver died after its batches finished but before their rows were committed: a resume
    takes every reply from the downloaded result files; the mock sees no new batch."""
    import shutil

    from chainette.io.journal import journal_path

    result, out = _run(mock_api, tmp_path, n=8)
    assert not result.interrupted and len(mock_api.creations) == 3
    progress = json.loads(journal_path(out).read_text())
    progress.update(done={"watermark": 0, "above": [], "redo": []}, files={}, counts={}, completed=False, rows_seen=0)
    journal_path(out).write_text(json.dumps(progress))
    for name in ("flattened", "errors", "topic", "to_fr", "to_es", "summary"):
        shutil.rmtree(out / name, ignore_errors=True)
    requests_before = len(mock_api.requests)
    done = make_chain().run(inputs(8), out, engines={"gpt": engine_cfg(mock_api.url)}, cache=False, resume=True)
    assert not done.interrupted and len(_records(out / "flattened")) == 8
    assert len(mock_api.creations) == 3
    assert [r for r in mock_api.requests[requests_before:] if r[1] != "/v1/models"] in ([], [("GET", "/api/tags")])


def test_another_engines_stop_releases_rows_waiting_on_a_batch_and_resume_finishes(mock_api, tmp_path):
    """Rows waiting on a submitted batch used to keep a stopped run alive until the batch ended
    (hours at a real provider); they now stop waiting, uncommitted, and a resume collects them."""
    import anyio

    from chainette import Chain, FakeEngine, Step
    from chainette.engine.protocol import SamplingParams
    from chainette.errors import EngineStoppedError

    from .conftest import Question

    passed: set[str] = set()

    async def gate(request):  # five rows pass; the others meet an engine fault a second later
        if len(passed) < 5 or request.row_id in passed:
            passed.add(request.row_id)
            return {"text": f"checked {request.row_id}"}
        await anyio.sleep(1.0)
        raise EngineStoppedError("engine 'gate' stopped: key refused", kind="auth", engine="gate")

    def chain() -> Chain:
        check = Step(
            "check",
            input_model=Question,
            output_model=Question,
            engine_name="gate",
            sampling=SamplingParams(temperature=0, max_tokens=20),
            user_prompt="Check: {{ text }}",
        )
        return Chain(name="gated", steps=[check, *make_chain(single=True).steps])

    mock_api.progress_s = 30.0  # a batch that takes far longer than the test may wait
    out = tmp_path / "run"
    engines = {"gpt": engine_cfg(mock_api.url), "gate": FakeEngine("gate", handler=gate)}
    t0 = time.monotonic()
    result = chain().run(inputs(40), out, engines=engines, cache=False)
    waited = time.monotonic() - t0
    assert result.interrupted and result.stopped_by == "engine" and "key refused" in result.stop_reason
    assert waited < 10, f"the run waited {waited:.1f} s for a batch after another engine stopped it"
    assert _records(out / "errors") == [] and _records(out / "flattened") == []  # nothing committed
    assert mock_api.creations, "the five rows' batch was submitted before the stop"
    mock_api.progress_s = 0.05
    engines["gate"] = FakeEngine("gate", handler=lambda request: {"text": f"checked {request.row_id}"})
    done = chain().run(inputs(40), out, engines=engines, cache=False, resume=True)
    assert not done.interrupted and len(_records(out / "flattened")) == 40
    submitted = [cid for batch in mock_api.batch_custom_ids() for cid in batch]
    assert len(submitted) == len(set(submitted)) == 40, "a row was submitted twice (or not at all)"
