"""An API key set to a recognisable value never shows in reprs, errors, tracebacks, logs or events."""

from __future__ import annotations

import asyncio
import json
import logging
import traceback

import pytest

from chainette.engine.factory import create_engine
from chainette.engine.protocol import CompletionRequest
from chainette.engine.registry import EngineConfig, load_engines_file
from chainette.errors import EngineError
from chainette.utils.events import bus

from ._support import fake_api

CANARY = "sk-CHAINETTE-CANARY-0042"


def test_key_absent_from_config_views(tmp_path, monkeypatch):
    cfg = EngineConfig(name="gpt", backend="openai", model="m", api_key=CANARY)
    views = [repr(cfg), str(cfg), cfg.model_dump_json(), json.dumps(cfg.public_dict()), repr(create_engine(cfg))]
    for text in views:
        assert CANARY not in text
    monkeypatch.setenv("MY_KEY", CANARY)
    env_cfg = EngineConfig(name="gpt2", backend="openai", model="m", api_key_env="MY_KEY")
    assert env_cfg.resolved_api_key() == CANARY and CANARY not in repr(env_cfg) + json.dumps(env_cfg.public_dict())
    f = tmp_path / "engines.yml"
    f.write_text(f"engines:\n  - name: g\n    backend: openai\n    model: m\n    api_key: {CANARY}\n")
    (loaded,) = load_engines_file(f, register=False)
    assert CANARY not in repr(loaded)


def test_key_absent_from_errors_tracebacks_logs_and_events(caplog):
    def echo_key(seen):  # a server that (wrongly) echoes the key back in its error
        return 401, {"error": {"message": f"Incorrect API key provided: {seen.headers.get('Authorization')}"}}, {}

    events = []
    unsub = bus.subscribe(lambda e: events.append(json.dumps(e.to_dict(), default=str)))
    caplog.set_level(logging.DEBUG)

    async def go():
        async with fake_api(echo_key) as api:
            eng = create_engine(EngineConfig(name="gpt", backend="openai", model="m", api_key=CANARY), api.url + "/v1")
            try:
                await eng.complete(CompletionRequest(messages=[{"role": "user", "content": "x"}]))
            finally:
                await eng.aclose()

    try:
        with pytest.raises(EngineError) as info:
            asyncio.run(go())
    finally:
        unsub()
    assert "401" in str(info.value) and "Incorrect API key" in str(info.value)
    tb = "".join(traceback.format_exception(info.value))
    for text in (str(info.value), repr(info.value), tb, caplog.text, *events):
        assert CANARY not in text


def test_key_absent_from_connection_error_traceback():
    async def go():
        eng = create_engine(
            EngineConfig(name="gpt", backend="openai", model="m", api_key=CANARY, max_retries=0),
            "http://127.0.0.1:9/v1",
        )
        try:
            await eng.complete(CompletionRequest(messages=[]))
        finally:
            await eng.aclose()

    with pytest.raises(EngineError) as info:
        asyncio.run(go())
    assert CANARY not in "".join(traceback.format_exception(info.value))
