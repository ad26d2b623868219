"""Engine test helpers (imported by the tests): a tiny in-process aiohttp server that fakes an LLM API at the transport."""

from __future__ import annotations

import asyncio
import json
import threading
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager, contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

PAYLOADS = Path(__file__).resolve().parents[1] / "fixtures" / "payloads"
STANDINS = Path(__file__).resolve().parents[1] / "standins"


def payload(name: str) -> dict[str, Any]:
    return json.loads((PAYLOADS / f"{name}.json").read_text())


@dataclass
class Seen:
    """One request the fake server received."""

    path: str
    headers: dict[str, str]
    body: dict[str, Any]


Reply = tuple[int, Any, dict[str, str]]
Handler = Callable[[Seen], Awaitable[Reply] | Reply]


@dataclass
class FakeAPI:
    url: str  # base URL without /v1
    seen: list[Seen] = field(default_factory=list)
    in_flight: int = 0
    max_seen_in_flight: int = 0


@asynccontextmanager
async def fake_api(handler: Handler) -> AsyncIterator[FakeAPI]:
    """Serve ``handler`` on 127.0.0.1:<free port> for the duration of the block."""
    from aiohttp import web

    state = FakeAPI(url="")

    async def route(request: web.Request) -> web.StreamResponse:
        raw = await request.read()
        seen = Seen(request.path, dict(request.headers), json.loads(raw) if raw else {})
        state.seen.append(seen)
        state.in_flight += 1
        state.max_seen_in_flight = max(state.max_seen_in_flight, state.in_flight)
        try:
            out = handler(seen)
            if asyncio.iscoroutine(out):
                out = await out
        finally:
            state.in_flight -= 1
        status, body, headers = out
        data = body if isinstance(body, (bytes, str)) else json.dumps(body)
        return web.Response(status=status, body=data, headers=headers, content_type="application/json")

    app = web.Application()
    app.router.add_route("*", "/{tail:.*}", route)
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
    state.url = f"http://127.0.0.1:{port}"
    try:
        yield state
    finally:
        await runner.cleanup()


def ok(body: Any) -> Reply:
    return 200, body, {}


def chat_reply(content: str) -> dict[str, Any]:
    """An OpenAI ``chat.completion`` whose one choice says ``content`` (5 prompt + 3 completion tokens)."""
    return {
        "id": "x",
        "object": "chat.completion",
        "model": "m",
        "choices": [{"index": 0, "message": {"role": "assistant", "content": content}, "finish_reason": "stop"}],
        "usage": {"prompt_tokens": 5, "completion_tokens": 3, "total_tokens": 8},
    }


@contextmanager
def threaded_api(handler):
    """``fake_api`` served from a thread of its own, so a blocking CLI call can reach it."""
    ready, done = threading.Event(), None
    box: dict = {}

    async def serve():
        nonlocal done
        done = asyncio.Event()
        async with fake_api(handler) as api:
            box["api"], box["loop"] = api, asyncio.get_running_loop()
            ready.set()
            await done.wait()

    thread = threading.Thread(target=asyncio.run, args=(serve(),), daemon=True)
    thread.start()
    assert ready.wait(10)
    try:
        yield box["api"]
    finally:
        box["loop"].call_soon_threadsafe(done.set)
        thread.join(10)
