"""The pieces of batch mode on their own: the documented line formats, the journal, prices,
the chain check, settings, the live display's batch line."""

from __future__ import annotations

import json

import pytest
from pydantic import BaseModel, ValidationError

from chainette import Chain, Step
from chainette.cli_support.batches import BatchBoard
from chainette.engine.batch.record import BatchRecord
from chainette.engine.batch.settings import BatchSettings
from chainette.engine.batch.wire import custom_id, describe_batch_errors, line_custom_id, read_result, request_line
from chainette.engine.pricing import resolve_price
from chainette.engine.registry import EngineConfig
from chainette.errors import EngineHTTPError
from chainette.events import BatchFinished, BatchProgress
from chainette.io.batch_journal import BatchJournal, batches_path, load_batches
from chainette.run.batch_mode import batch_problems, in_batch_mode

CHAT = {
    "id": "chatcmpl-1",
    "object": "chat.completion",
    "model": "gpt-4o-mini",
    "choices": [{"index": 0, "message": {"role": "assistant", "content": "{}"}, "finish_reason": "stop"}],
    "usage": {"prompt_tokens": 3, "completion_tokens": 2, "total_tokens": 5},
}


def test_request_line_is_the_documented_shape_and_keeps_the_body_bytes():
    body = b'{"model":"m","messages":[{"role":"user","content":"h\\u00e9 \\"q\\""}]}'
    cid = custom_id("rab12", "step_1", "4.0", body)
    assert cid.startswith("rab12:step_1:4.0:") and len(cid.split(":")[3]) == 12
    assert custom_id("rab12", "step_1", "4.0", body) == cid != custom_id("rab12", "step_1", "4.0", body + b" ")
    line = request_line(cid, body)
    assert line.endswith(b"\n") and line.count(b"\n") == 1
    obj = json.loads(line)
    assert obj == {"custom_id": cid, "method": "POST", "url": "/v1/chat/completions", "body": json.loads(body)}
    assert line_custom_id(line) == cid
    assert line_custom_id(b'{"id": "x", "custom_id": "a:b"}') == "a:b"


def test_result_lines_openai_and_vllm():
    ok = {
        "id": "batch_req_1",
        "custom_id": "c1",
        "response": {"status_code": 200, "request_id": "r", "body": CHAT},
        "error": None,
    }
    cid, out = read_result(ok, "gpt")
    assert (cid, out.kind, out.body) == ("c1", "ok", CHAT)
    expired = {
        "id": "batch_req_2",
        "custom_id": "c2",
        "response": None,
        "error": {
            "code": "batch_expired",
            "message": "This request could not be executed before the completion window expired.",
        },
    }
    assert read_result(expired, "gpt")[1].kind == "unfinished"
    failed = {
        "id": "batch_req_3",
        "custom_id": "c3",
        "response": {
            "status_code": 429,
            "request_id": "r",
            "body": {"error": {"message": "Rate limit", "type": "requests", "code": "rate_limit_exceeded"}},
        },
        "error": None,
    }
    out = read_result(failed, "gpt")[1]
    assert out.kind == "error" and isinstance(out.error, EngineHTTPError)
    assert out.error.status == 429 and out.error.retryable and "Rate limit" in str(out.error)
    vllm = {
        "id": "vllm-1",
        "custom_id": "c4",
        "response": {"status_code": 400, "request_id": "vllm-batch-1"},
        "error": "The model `x` does not exist.",
    }
    out = read_result(vllm, "local")[1]
    assert out.kind == "error" and out.error.status == 400 and not out.error.retryable
    assert "does not exist" in str(out.error)
    assert (
        describe_batch_errors(
            {"errors": {"object": "list", "data": [{"code": "invalid_json_line", "message": "bad", "line": 3}]}}
        )
        == "invalid_json_line: bad (line 3)"
    )


def test_journal_is_atomic_and_reloads(tmp_path):
    j = BatchJournal(tmp_path)
    assert load_batches(tmp_path) is None  # nothing written before the first batch
    k1, k2 = j.new_key("gpt"), j.new_key("gpt")
    assert (k1, k2) == ("gpt-0001", "gpt-0002")
    rec = BatchRecord(key=k1, engine="gpt", kind="openai", requests=3)
    j.save(rec)
    rec.state, rec.batch_id = "in_progress", "batch_1"
    j.save(rec)
    again = load_batches(tmp_path)
    assert again.run_key == j.run_key and [(r.key, r.state, r.batch_id) for r in again.records()] == [
        ("gpt-0001", "in_progress", "batch_1")
    ]
    assert again.new_key("gpt") == "gpt-0002"  # a key never saved never reached a provider: reusable
    assert not list(batches_path(tmp_path).parent.glob("*.tmp"))
    assert j.request_path(k1).parent == tmp_path / ".chainette" / "batches"
    j.request_cancel(["batch_1"])
    assert again.cancel_requested() == {"batch_1"}


def test_batch_prices():
    online = EngineConfig(name="g", backend="openai", model="gpt-4o-mini")
    batch = EngineConfig(name="g", backend="openai", model="gpt-4o-mini", mode="batch")
    p_online, _ = resolve_price(online)
    p_batch, source = resolve_price(batch)
    assert p_batch.input == pytest.approx(p_online.input / 2) and p_batch.output == pytest.approx(p_online.output / 2)
    assert "batch x0.5" in source
    gateway = EngineConfig(
        name="g",
        backend="openai",
        model="m",
        endpoint="http://gw.example/v1",
        mode="batch",
        price={"input": 1, "output": 4},
    )
    assert resolve_price(gateway)[0].input == 1 and "set batch.discount" in resolve_price(gateway)[1]
    own = gateway.model_copy(update={"batch": BatchSettings(discount=0.25)})
    assert resolve_price(own)[0].output == 1.0


def test_settings_and_defaults():
    cfg = EngineConfig(name="g", backend="openai", model="m", mode="batch")
    assert cfg.max_in_flight == 10_000 and cfg.batch.max_requests == 50_000 and cfg.batch.max_bytes < 200_000_000
    assert cfg.batch.completion_window == "24h"
    assert EngineConfig(name="g", backend="openai", model="m", mode="batch", max_in_flight=10).max_in_flight == 10
    with pytest.raises(ValidationError):
        EngineConfig(name="g", backend="openai", model="m", mode="batch", batch={"completion_window": "1h"})
    with pytest.raises(ValidationError):
        EngineConfig(name="g", backend="openai", model="m", batch={"lingr_s": 1})
    online = EngineConfig(name="g", backend="openai", model="m")
    assert in_batch_mode(online).mode == "batch" and in_batch_mode(online).max_in_flight == 10_000
    ollama = EngineConfig(name="o", backend="ollama_api", model="m")
    assert in_batch_mode(ollama) is ollama


class _In(BaseModel):
    text: str


def test_chain_check_refuses_batch_mode_without_a_batch_api():
    chain = Chain(name="c", steps=[Step("s", input_model=_In, output_model=_In, engine_name="e")])
    for cfg, words in (
        (EngineConfig(name="e", backend="ollama_api", model="m", mode="batch"), "has none"),
        (
            EngineConfig(name="e", backend="vllm_api", model="m", endpoint="http://h:8000/v1", mode="batch"),
            "no Batch API",
        ),
    ):
        problems = batch_problems(chain, {"e": cfg})
        assert len(problems) == 1 and words in problems[0].message
    assert batch_problems(chain, {"e": EngineConfig(name="e", backend="vllm_api", model="m", mode="batch")}) == []
    assert batch_problems(chain, {"e": EngineConfig(name="e", backend="openai", model="m", mode="batch")}) == []
    assert any(
        "batch API" in str(p)
        for p in chain.problems(engines={"e": EngineConfig(name="e", backend="ollama_api", model="m", mode="batch")})
    )


def test_board_counts_batches_and_validated_rows():
    board = BatchBoard()
    assert not board
    board.update(BatchProgress("gpt", "gpt-0001", None, "prepared", 10))
    board.update(BatchProgress("gpt", "gpt-0002", "batch_2", "in_progress", 5, completed=2))
    board.update(BatchProgress("gpt", "gpt-0003", "batch_3", "completed", 4, completed=3, failed=1, collected=True))
    board.update(BatchFinished("topic", 4, errors=1, engine="gpt"))
    assert board.lines() == [
        "batches gpt: 3 submitted (1 queued, 1 in progress, 1 completed) · provider: 5/19 "
        "requests done, 1 failed · rows validated 3"
    ]


def test_live_display_shows_the_batch_line():
    from rich.console import Console

    from chainette.cli_support.live import RunProgress

    progress = RunProgress(total_inputs=4)
    progress(BatchFinished("topic", 1, engine="gpt"))  # before any batch: no batch line yet
    assert progress.batches is None
    progress(BatchProgress("gpt", "gpt-0001", "batch_1", "in_progress", 4, completed=1))
    progress(BatchFinished("topic", 2, engine="gpt"))
    console = Console(record=True, width=200)
    console.print(progress)
    text = console.export_text()
    assert "batches gpt: 1 submitted (0 queued, 1 in progress, 0 completed)" in text
    assert "provider: 1/4 requests done" in text and "rows validated 2" in text
