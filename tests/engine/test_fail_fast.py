"""Systemic faults stop a run early, resumable and non-zero; truncation is not retried.

Each test runs a 400-row chain against a mock with the providers' documented behaviour and
asserts the number of requests the mock received, not only the outcome.
"""

from __future__ import annotations

import asyncio
import json
import socket
import time

import pytest
from pydantic import BaseModel

from chainette import Chain, SamplingParams, Step, register_engine
from chainette.engine.registry import unregister_engine
from chainette.errors import ChainValidationError

from ._support import fake_api, ok, threaded_api

ROWS = [{"text": f"row {i}"} for i in range(400)]


def chats(api) -> int:
    """Chat requests the mock received (a run also asks the server once what it serves)."""
    return sum(1 for s in api.seen if s.path.endswith("/chat/completions"))


class In(BaseModel):
    text: str


class Out(BaseModel):
    label: str


def chain(engine: str, max_tokens: int = 16) -> Chain:
    step = Step(
        "label",
        input_model=In,
        output_model=Out,
        engine_name=engine,
        sampling=SamplingParams(temperature=0, max_tokens=max_tokens),
        user_prompt="{{ text }}",
    )
    return Chain("fail-fast", steps=[step])


def reply(content: str, finish: str = "stop") -> dict:
    return {
        "id": "x",
        "object": "chat.completion",
        "model": "m",
        "choices": [{"index": 0, "message": {"role": "assistant", "content": content}, "finish_reason": finish}],
        "usage": {"prompt_tokens": 5, "completion_tokens": 3, "total_tokens": 8},
    }


def openai_error(status: int, message: str, type_: str, code: str | None = None, param: str | None = None):
    return status, {"error": {"message": message, "type": type_, "param": param, "code": code}}, {}


@pytest.fixture
def engine_name(request):
    name = f"ff-{request.node.name[:40]}"
    yield name
    unregister_engine(name)


def run(handler, engine_name, tmp_path, *, register=None, **options):
    """Run the 400-row chain against ``handler``; return (result or exception, requests seen)."""

    async def go():
        async with fake_api(handler) as api:
            register_engine(
                name=engine_name,
                backend="openai",
                model="m",
                endpoint=api.url + "/v1",
                api_key="sk-test",
                max_retries=2,
                **(register or {}),
            )
            try:
                out = await chain(engine_name).run_async(ROWS, tmp_path / "run", **options)
            except Exception as exc:  # noqa: BLE001 - returned for the test to inspect
                out = exc
            return out, chats(api)

    return asyncio.run(go())


def test_missing_api_key_env_sends_nothing(engine_name, tmp_path, monkeypatch):
    monkeypatch.delenv("FF_MISSING_KEY", raising=False)

    async def go():
        async with fake_api(lambda s: ok(reply('{"label": "x"}'))) as api:
            register_engine(
                name=engine_name, backend="openai", model="m", endpoint=api.url + "/v1", api_key_env="FF_MISSING_KEY"
            )
            with pytest.raises(ChainValidationError) as info:
                await chain(engine_name).run_async(ROWS, tmp_path / "run")
            return str(info.value), chats(api)

    message, requests = asyncio.run(go())
    assert requests == 0
    assert f"engine '{engine_name}'" in message and "FF_MISSING_KEY" in message


def test_missing_openai_key_is_a_validation_problem(engine_name, monkeypatch):
    monkeypatch.delenv("OPENAI_API_KEY", raising=False)
    register_engine(name=engine_name, backend="openai", model="gpt-4o-mini")
    problems = [str(p) for p in chain(engine_name).problems()]
    assert any("OPENAI_API_KEY" in p and engine_name in p for p in problems), problems
    monkeypatch.setenv("OPENAI_API_KEY", "sk-test-value-123")
    assert chain(engine_name).problems() == []


def test_401_on_every_request_stops_after_one(engine_name, tmp_path):
    result, requests = run(
        lambda s: openai_error(401, "Incorrect API key provided", "invalid_request_error", "invalid_api_key"),
        engine_name,
        tmp_path,
    )
    assert requests <= 2, requests
    assert result.interrupted and result.stopped_by == "engine"
    assert "401" in result.stop_reason and engine_name in result.stop_reason
    # resumable: nothing was committed as an error, a fixed engine finishes every row
    metadata = json.loads((tmp_path / "run" / "metadata.json").read_text())
    assert metadata.get("status") != "completed"
    fixed, requests = run(lambda s: ok(reply('{"label": "x"}')), engine_name, tmp_path, resume=True)
    assert fixed.rows_in == 400 and fixed.failed_rows == 0 and requests == 400


def test_insufficient_quota_stops_after_one(engine_name, tmp_path):
    result, requests = run(
        lambda s: openai_error(429, "You exceeded your current quota", "insufficient_quota", "insufficient_quota"),
        engine_name,
        tmp_path,
    )
    assert requests <= 2 and result.stopped_by == "engine" and "quota" in result.stop_reason


def test_schema_rejected_stops_after_one(engine_name, tmp_path):
    result, requests = run(
        lambda s: openai_error(
            400,
            "Invalid schema for response_format 'Out': In context=(), 'additionalProperties' is required",
            "invalid_request_error",
            param="response_format",
        ),
        engine_name,
        tmp_path,
    )
    assert requests <= 2 and result.stopped_by == "engine" and "schema" in result.stop_reason


def test_unreachable_endpoint_stops_within_a_minute(engine_name, tmp_path):
    with socket.socket() as s:  # a port nobody listens on
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    register_engine(
        name=engine_name,
        backend="openai",
        model="m",
        endpoint=f"http://127.0.0.1:{port}/v1",
        api_key="sk-test",
        max_retries=3,
    )
    t0 = time.monotonic()
    result = chain(engine_name).run(ROWS, tmp_path / "run")
    elapsed = time.monotonic() - t0
    assert elapsed < 60, elapsed
    assert result.stopped_by == "engine" and "connection" in result.stop_reason
    assert result.failed_rows < 10  # rows not yet sent were not attempted


def test_truncated_reply_is_one_error_naming_max_tokens(engine_name, tmp_path):
    def handler(seen):
        return ok(reply('{"label": "abc', finish="length"))

    async def go():
        async with fake_api(handler) as api:
            register_engine(
                name=engine_name,
                backend="openai",
                model="m",
                endpoint=api.url + "/v1",
                api_key="sk-test",
                max_retries=3,
            )
            result = await chain(engine_name).run_async(ROWS[:20], error_guard=None)
            return result, chats(api)

    result, requests = asyncio.run(go())
    assert requests == 20  # no retry, no re-ask of a truncated reply
    assert len(result.errors) == 20
    err = result.errors[0]
    assert err["error_type"] == "TruncatedCompletionError" and err["attempts"] == 1
    assert "max_tokens" in err["message"] and "label" in err["message"] and engine_name in err["message"]


def test_error_guard_stops_an_overwhelmingly_failing_run(engine_name, tmp_path):
    # every reply is not JSON: each row is asked, re-asked twice, then recorded as failed
    small = {"max_in_flight": 8}
    result, requests = run(
        lambda s: ok(reply("this is not json")), engine_name, tmp_path, register=small, batch_size=16
    )
    assert result.stopped_by == "error_guard", result.stop_reason
    assert "50" in result.stop_reason and "--resume" in result.stop_reason
    # the guard trips at 50 failed rows; rows in flight then send nothing more (window 16 rows)
    assert requests <= 3 * (50 + 16), requests
    off, requests_off = run(
        lambda s: ok(reply("this is not json")),
        engine_name,
        tmp_path / "off",
        register=small,
        batch_size=16,
        error_guard=None,
    )
    assert off.stopped_by is None and off.failed_rows == 400 and requests_off == 1200


# -- the CLI: exit codes and messages ------------------------------------------------------------
CHAIN_PY = """
from pydantic import BaseModel
from chainette import Chain, SamplingParams, Step

class In(BaseModel):
    text: str

class Out(BaseModel):
    label: str

chain = Chain("cli-fail-fast", steps=[Step("label", input_model=In, output_model=Out, engine_name="api",
                                           sampling=SamplingParams(max_tokens=16), user_prompt="{{ text }}")])
"""


def cli_project(tmp_path, url, key_line="    api_key_env: FF_CLI_KEY\n"):
    (tmp_path / "chain.py").write_text(CHAIN_PY)
    (tmp_path / "in.jsonl").write_text("".join(json.dumps(r) + "\n" for r in ROWS))
    (tmp_path / "engines.yml").write_text(
        f"engines:\n  - name: api\n    backend: openai\n    model: m\n    endpoint: {url}/v1\n    max_retries: 2\n"
        + key_line
    )


def invoke(tmp_path, *extra):
    from typer.testing import CliRunner

    from chainette.cli import app

    args = [
        "run",
        str(tmp_path / "chain.py") + ":chain",
        "-i",
        str(tmp_path / "in.jsonl"),
        "-o",
        str(tmp_path / "out"),
        "-f",
        str(tmp_path / "engines.yml"),
        "--quiet",
        *extra,
    ]
    return CliRunner().invoke(app, args)


def test_cli_missing_key_exits_1_naming_the_variable(tmp_path, monkeypatch):
    monkeypatch.delenv("FF_CLI_KEY", raising=False)
    with threaded_api(lambda s: ok(reply('{"label": "x"}'))) as api:
        cli_project(tmp_path, api.url)
        r = invoke(tmp_path)
        assert r.exit_code == 1 and "FF_CLI_KEY" in r.output and "engine 'api'" in r.output
        assert chats(api) == 0


def test_cli_401_exits_5_resumable(tmp_path, monkeypatch):
    monkeypatch.setenv("FF_CLI_KEY", "sk-wrong-key-123")
    with threaded_api(
        lambda s: openai_error(401, "Incorrect API key provided", "invalid_request_error", "invalid_api_key")
    ) as api:
        cli_project(tmp_path, api.url)
        r = invoke(tmp_path)
        assert r.exit_code == 5, r.output
        assert "401" in r.output and "--resume" in r.output and "FF_CLI_KEY" in r.output
        assert "sk-wrong-key-123" not in r.output
        assert chats(api) <= 2


def test_cli_every_row_failed_never_exits_0(tmp_path, monkeypatch):
    monkeypatch.setenv("FF_CLI_KEY", "sk-test-key-123")
    with threaded_api(lambda s: ok(reply("not json at all"))) as api:
        cli_project(tmp_path, api.url)
        r = invoke(tmp_path, "--error-guard", "off")
        assert r.exit_code == 3, r.output
        assert "every one of the 400 input rows failed" in r.output
        assert chats(api) == 1200  # guard off: every row asked and re-asked twice


def test_error_guard_is_not_fooled_by_failures_that_finish_first():
    # 40% of rows fail at once, the good ones take a while: the first rows to *finish* are
    # nearly all failures, yet the run's first rows fail at 40%, well under the guard's 90%
    from chainette import FakeEngine

    async def handler(request):
        n = int(request.messages[-1]["content"].split()[-1])
        if n % 5 < 2:
            return "not json"
        await asyncio.sleep(0.05)
        return {"label": "ok"}

    rows = [{"text": f"row {i}"} for i in range(200)]
    result = chain("fk").run(rows, engines={"fk": FakeEngine(handler=handler)}, batch_size=64)
    assert result.stopped_by is None, result.stop_reason
    assert result.failed_rows == 80 and result.rows_in == 200
