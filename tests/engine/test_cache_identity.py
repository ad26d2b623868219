"""The item cache keys on what answers (issue #11 item 7): other weights under one name never
share answers; a managed server restarted on another port still reuses them."""

from __future__ import annotations

import asyncio
import json
import socket

import pytest
from pydantic import BaseModel

from chainette import Chain, SamplingParams, Step
from chainette.engine.broker import EngineBroker
from chainette.engine.identity import answering_identity
from chainette.engine.registry import EngineConfig, register_engine, unregister_engine

ROWS = [{"text": f"row {i}"} for i in range(5)]


class In(BaseModel):
    text: str


class Out(BaseModel):
    label: str


def chain(engine: str) -> Chain:
    return Chain(
        "ident",
        steps=[
            Step(
                "label",
                input_model=In,
                output_model=Out,
                engine_name=engine,
                sampling=SamplingParams(temperature=0, max_tokens=16),
                user_prompt="{{ text }}",
            )
        ],
    )


async def serve(port: int, root: str, chats: list[str]):
    """An OpenAI-compatible server on ``port`` reporting ``root`` as the weights behind model ``m``."""
    from aiohttp import web

    async def models(request):
        return web.json_response({"object": "list", "data": [{"id": "m", "object": "model", "root": root}]})

    async def chat(request):
        chats.append(root)
        return web.json_response(
            {
                "id": "x",
                "object": "chat.completion",
                "model": "m",
                "choices": [
                    {
                        "index": 0,
                        "message": {"role": "assistant", "content": f'{{"label": "{root}"}}'},
                        "finish_reason": "stop",
                    }
                ],
                "usage": {"prompt_tokens": 3, "completion_tokens": 3, "total_tokens": 6},
            }
        )

    app = web.Application()
    app.router.add_get("/v1/models", models)
    app.router.add_post("/v1/chat/completions", chat)
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    await web.TCPSite(runner, "127.0.0.1", port).start()
    return runner


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_other_weights_under_one_name_on_one_port_do_not_share_answers():
    port, chats = free_port(), []
    register_engine(name="ident-api", backend="vllm_api", model="m", endpoint=f"http://127.0.0.1:{port}/v1")

    async def run_against(root: str):
        runner = await serve(port, root, chats)
        try:
            return await chain("ident-api").run_async(ROWS)
        finally:
            await runner.cleanup()

    try:
        first = asyncio.run(run_against("/weights/a"))
        assert len(chats) == 5 and {r.value.label for r in first["label"]} == {"/weights/a"}
        again = asyncio.run(run_against("/weights/a"))  # same weights: all from the cache
        assert len(chats) == 5 and again.step_stats["label"].cached == 5
        other = asyncio.run(run_against("/weights/b"))  # same name, same port, other weights
        assert chats.count("/weights/b") == 5
        assert {r.value.label for r in other["label"]} == {"/weights/b"}
    finally:
        unregister_engine("ident-api")


def test_managed_identity_ignores_the_port_and_follows_the_weights(tmp_path):
    a, b = tmp_path / "a.gguf", tmp_path / "b.gguf"
    a.write_bytes(b"GGUF-a")
    b.write_bytes(b"GGUF-b")
    cfg_a = EngineConfig(name="loc", backend="local", model=str(a))
    assert answering_identity(cfg_a, "http://127.0.0.1:1111/v1") == answering_identity(
        cfg_a, "http://127.0.0.1:2222/v1"
    )
    cfg_b = EngineConfig(name="loc", backend="local", model=str(b))
    assert answering_identity(cfg_a, None) != answering_identity(cfg_b, None)
    assert answering_identity(cfg_a, None)["weights"] == str(a.resolve())


@pytest.mark.integration
def test_managed_server_restarted_on_another_port_reuses_the_cache(tmp_path, standin_path):
    cfg = EngineConfig(
        name="ident-vllm",
        backend="vllm_api",
        model="Qwen/Qwen2.5-0.5B",
        startup_timeout=20,
        extra_env={"STANDIN_VLLM_RECORD": str(tmp_path / "argv.json")},
    )
    register_engine(cfg)
    ports = []
    try:
        for expected_requests in (5, 0):
            result = chain("ident-vllm").run(ROWS)
            argv = json.loads((tmp_path / "argv.json").read_text())["argv"]  # the stand-in's own record
            ports.append(argv[argv.index("--port") + 1])
            EngineBroker.flush(force=True)  # stop the server: the next run starts a new one
            stats = result.step_stats["label"]
            assert stats.requests == expected_requests and stats.cached == 5 - expected_requests
        assert len(ports) == 2 and ports[0] != ports[1]
    finally:
        EngineBroker.flush(force=True)
        unregister_engine("ident-vllm")
