"""A run's set-up and close-down steps overlap (issue #17: the fixed cost of a short run).

The run directory and the item cache open while the engines' clients are made (a vLLM
server's version probe); the engines, the cache and the run's files close side by side.
Errors still come out as they are, and a set-up that fails does not wait on a slow server.
"""

from __future__ import annotations

import asyncio
import time

import anyio
import pytest
from pydantic import BaseModel

from chainette import Chain, Step, register_engine
from chainette.engine.registry import unregister_engine
from chainette.errors import ResumeError
from chainette.run.overlap import alongside
from tests.engine._support import chat_reply, fake_api, ok


# -- alongside ------------------------------------------------------------------------------
def test_alongside_returns_the_work_value_after_every_background_job():
    finished: list[str] = []

    async def job(name: str, delay: float) -> None:
        await anyio.sleep(delay)
        finished.append(name)

    async def work() -> int:
        await anyio.sleep(0.01)
        finished.append("work")
        return 7

    async def go():
        return await alongside(work, lambda: job("slow", 0.1), lambda: job("fast", 0.0))

    assert anyio.run(go) == 7
    assert sorted(finished) == ["fast", "slow", "work"]


def test_alongside_raises_the_works_error_as_it_is_and_lets_close_down_jobs_finish():
    finished: list[str] = []

    async def close_down() -> None:
        await anyio.sleep(0.05)
        finished.append("closed")

    async def work() -> None:
        raise KeyError("the work failed")

    async def go():
        await alongside(work, close_down)

    with pytest.raises(KeyError, match="the work failed"):  # not an exception group
        anyio.run(go)
    assert finished == ["closed"], "a close-down job must not be cut short by another one's error"


def test_alongside_raises_a_background_error_and_can_cancel_the_others():
    async def failing() -> None:
        raise ValueError("background failed")

    async def work() -> str:
        return "done"

    async def go():
        return await alongside(work, failing)

    with pytest.raises(ValueError, match="background failed"):
        anyio.run(go)

    async def hangs() -> None:
        await anyio.sleep(60)

    async def bad_work() -> None:
        raise RuntimeError("set-up failed")

    async def go_cancel():
        await alongside(bad_work, hangs, cancel_on_error=True)

    t0 = time.monotonic()
    with pytest.raises(RuntimeError, match="set-up failed"):
        anyio.run(go_cancel)
    assert time.monotonic() - t0 < 10, "the background job was not cancelled"


# -- a run against a stand-in vLLM server --------------------------------------------------
class In(BaseModel):
    text: str


class Out(BaseModel):
    label: str


def _standin(on_version):
    """A vLLM stand-in: ``GET /version`` waits on ``on_version()``, chat requests answer at once."""

    async def handle(seen):
        if seen.path == "/version":
            await on_version()
            return ok({"version": "0.12.0"})
        return ok(chat_reply('{"label": "ok"}'))

    return fake_api(handle)


def _chain() -> Chain:
    step = Step("label", input_model=In, output_model=Out, engine_name="ov", user_prompt="{{ text }}")
    return Chain("ov", steps=[step])


def test_the_run_directory_opens_while_the_server_is_asked_its_version(tmp_path, monkeypatch):
    import threading

    from chainette.io.stream_writer import StreamWriter

    monkeypatch.setenv("CHAINETTE_CACHE_DIR", str(tmp_path / "cache"))
    out = tmp_path / "run"
    asked = threading.Event()
    seen: dict[str, bool] = {}
    real_open = StreamWriter.open

    def open_after_the_probe(self, *args, **kwargs):
        # held until the server is asked its version: one after the other would never get there
        seen["probe during the open"] = asked.wait(timeout=5)
        return real_open(self, *args, **kwargs)

    monkeypatch.setattr(StreamWriter, "open", open_after_the_probe)

    async def on_version():
        asked.set()

    async def go():
        async with _standin(on_version) as api:
            register_engine(name="ov", backend="vllm_api", model="m", endpoint=f"{api.url}/v1", max_retries=0)
            try:
                return await _chain().run_async([{"text": f"r{i}"} for i in range(4)], output_dir=out)
            finally:
                unregister_engine("ov")

    result = asyncio.run(go())
    assert seen == {"probe during the open": True}
    assert result.step_stats["label"].done == 4 and (out / "report.html").exists()
    assert (tmp_path / "cache" / "items.sqlite-filter").exists(), "the cache closed (its filter stored) with the run"


def test_a_run_that_cannot_open_says_so_at_once_without_waiting_on_a_slow_server(tmp_path, monkeypatch):
    monkeypatch.setenv("CHAINETTE_CACHE_DIR", str(tmp_path / "cache"))

    async def go():
        release = asyncio.Event()

        async def on_version():
            await asyncio.wait_for(release.wait(), 60)  # a server that hangs until the test ends

        async with _standin(on_version) as api:
            register_engine(name="ov", backend="vllm_api", model="m", endpoint=f"{api.url}/v1", max_retries=0)
            try:
                await _chain().run_async([{"text": "r"}], output_dir=tmp_path / "empty", resume=True)
            finally:
                unregister_engine("ov")
                release.set()

    t0 = time.monotonic()
    with pytest.raises(ResumeError, match="nothing to resume"):  # the writer's own error, not a group
        asyncio.run(go())
    assert time.monotonic() - t0 < 20, "the failed set-up waited for the version probe"


def test_an_engine_that_cannot_be_made_is_reported_by_the_first_row_as_before(tmp_path, monkeypatch):
    from chainette.run.engines import RunEngines

    monkeypatch.setenv("CHAINETTE_CACHE_DIR", str(tmp_path / "cache"))
    calls: list[str] = []
    real_create = RunEngines._create

    async def broken_create(self, name):
        calls.append(name)
        raise RuntimeError(f"cannot make {name}")

    monkeypatch.setattr(RunEngines, "_create", broken_create)
    register_engine(name="ov", backend="vllm_api", model="m", endpoint="http://127.0.0.1:9/v1", max_retries=0)
    try:
        result = _chain().run([{"text": "r"}], output_dir=tmp_path / "run", error_guard=None)
    finally:
        unregister_engine("ov")
        monkeypatch.setattr(RunEngines, "_create", real_create)
    assert len(calls) >= 2, "the warm-up's failure is not final: the row's own get() tries again"
    assert result.failed_rows == 1
    errors = (tmp_path / "run" / "errors" / "000.jsonl").read_text()
    assert "cannot make ov" in errors
