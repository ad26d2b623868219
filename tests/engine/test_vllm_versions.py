"""vLLM's structured-output constraint survives whatever version answers (issue #11 item 4).

vLLM ignores body fields it does not know and then answers unconstrained text, so sending
the wrong field would be silent. Three stand-ins that behave that way: one knows only the
old ``guided_json`` (reports 0.6.3), one only the new ``structured_outputs`` (0.12.0), one
only OpenAI's ``response_format`` and has no ``/version``. Each answers schema-valid JSON
only when it sees the field it knows, prose otherwise.
"""

from __future__ import annotations

import asyncio

import pytest
from pydantic import BaseModel

from chainette import Chain, SamplingParams, Step, register_engine
from chainette.engine.registry import unregister_engine

ROWS = [{"text": f"row {i}"} for i in range(6)]


class In(BaseModel):
    text: str


class Out(BaseModel):
    label: str


def constrained(body: dict, knows: str) -> bool:
    if knows == "guided_json":
        return isinstance(body.get("guided_json"), dict)
    if knows == "structured_outputs":
        return isinstance((body.get("structured_outputs") or {}).get("json"), dict)
    rf = body.get("response_format") or {}
    return rf.get("type") == "json_schema" and isinstance((rf.get("json_schema") or {}).get("schema"), dict)


async def standin(knows: str, version: str | None, chats: list[dict]):
    from aiohttp import web

    async def version_route(request):
        if version is None:
            return web.json_response({"detail": "Not Found"}, status=404)
        return web.json_response({"version": version})

    async def chat(request):
        body = await request.json()
        chats.append(body)
        content = '{"label": "ok"}' if constrained(body, knows) else "Sure! The label is probably ok."
        return web.json_response(
            {
                "id": "x",
                "object": "chat.completion",
                "model": "m",
                "choices": [
                    {"index": 0, "message": {"role": "assistant", "content": content}, "finish_reason": "stop"}
                ],
                "usage": {"prompt_tokens": 3, "completion_tokens": 5, "total_tokens": 8},
            }
        )

    async def models(request):
        return web.json_response({"data": [{"id": "m", "object": "model"}]})

    app = web.Application()
    app.router.add_get("/version", version_route)
    app.router.add_get("/v1/models", models)
    app.router.add_post("/v1/chat/completions", chat)
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    return runner, site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]


def run_against(knows: str, version: str | None, **engine):
    chats: list[dict] = []

    async def go():
        runner, port = await standin(knows, version, chats)
        register_engine(
            name="vv", backend="vllm_api", model="m", endpoint=f"http://127.0.0.1:{port}/v1", max_retries=0, **engine
        )
        try:
            step = Step(
                "label",
                input_model=In,
                output_model=Out,
                engine_name="vv",
                sampling=SamplingParams(temperature=0, max_tokens=32),
                user_prompt="{{ text }}",
            )
            return await Chain("vv", steps=[step]).run_async(ROWS, error_guard=None)
        finally:
            unregister_engine("vv")
            await runner.cleanup()

    return asyncio.run(go()), chats


@pytest.mark.parametrize(
    "knows, version", [("guided_json", "0.6.3"), ("structured_outputs", "0.12.0"), ("response_format", None)]
)
def test_constraint_reaches_every_version_without_configuration(knows, version):
    result, chats = run_against(knows, version)
    assert result.failed_rows == 0 and len(result["label"]) == len(ROWS)
    assert len(chats) == len(ROWS)  # constrained the first time: no re-ask
    assert all(constrained(body, knows) for body in chats)


def test_a_wrong_configured_version_loses_the_constraint_and_the_test_sees_it():
    # the negative control: with the version pinned wrong, the old server gets the new field
    result, chats = run_against("guided_json", "0.6.3", server_version="0.12.0")
    assert result.failed_rows == len(ROWS)
    assert not any(constrained(body, "guided_json") for body in chats)
