"""A counting OpenAI-style mock LLM server in a background thread (for API and CLI tests).

Each chat request is answered after ``latency`` seconds with ``reply`` as the content and
known usage: ``prompt_tokens = ceil(characters of all message contents / 4)`` and
``completion_tokens = completion``. The server counts requests, tokens served and the most
requests in flight at once, so tests can assert exactly what was sent and spent.
"""

from __future__ import annotations

import asyncio
import json
import math
import threading
from dataclasses import dataclass, field
from typing import Any


def prompt_tokens(messages: list[dict[str, Any]]) -> int:
    return math.ceil(sum(len(m.get("content") or "") for m in messages) / 4)


@dataclass
class CountingMock:
    reply: str = '{"label": "ok"}'
    completion: int = 10
    latency: float = 0.01
    cached_tokens: int = 0
    tokenize: bool = False
    url: str = ""
    chat_requests: int = 0
    other_requests: list[str] = field(default_factory=list)
    prompt_tokens: int = 0
    completion_tokens: int = 0
    in_flight: int = 0
    max_in_flight: int = 0
    bodies: list[dict[str, Any]] = field(default_factory=list)

    @property
    def tokens(self) -> int:
        return self.prompt_tokens + self.completion_tokens

    # -- server ---------------------------------------------------------------------------
    def start(self) -> CountingMock:
        ready = threading.Event()
        self._thread = threading.Thread(target=self._serve, args=(ready,), daemon=True)
        self._thread.start()
        if not ready.wait(10):
            raise RuntimeError("mock did not start")
        return self

    def _serve(self, ready: threading.Event) -> None:
        from aiohttp import web

        async def chat(request: web.Request) -> web.Response:
            body = await request.json()
            self.chat_requests += 1
            self.bodies.append(body)
            self.in_flight += 1
            self.max_in_flight = max(self.max_in_flight, self.in_flight)
            try:
                await asyncio.sleep(self.latency)
            finally:
                self.in_flight -= 1
            p = prompt_tokens(body["messages"])
            self.prompt_tokens += p
            self.completion_tokens += self.completion
            usage: dict[str, Any] = {
                "prompt_tokens": p,
                "completion_tokens": self.completion,
                "total_tokens": p + self.completion,
            }
            if self.cached_tokens:
                usage["prompt_tokens_details"] = {"cached_tokens": min(self.cached_tokens, p)}
            return web.json_response(
                {
                    "id": "x",
                    "object": "chat.completion",
                    "model": body.get("model", "m"),
                    "choices": [
                        {"index": 0, "finish_reason": "stop", "message": {"role": "assistant", "content": self.reply}}
                    ],
                    "usage": usage,
                }
            )

        async def tokenize(request: web.Request) -> web.Response:
            self.other_requests.append(request.path)
            if not self.tokenize:
                return web.json_response({"error": "not found"}, status=404)
            body = await request.json()
            return web.json_response({"count": prompt_tokens(body.get("messages") or []) + 7, "max_model_len": 4096})

        async def other(request: web.Request) -> web.Response:
            self.other_requests.append(request.path)
            return web.json_response({"error": "not found"}, status=404)

        async def main() -> None:
            app = web.Application()
            app.router.add_post("/v1/chat/completions", chat)
            app.router.add_post("/tokenize", tokenize)
            app.router.add_route("*", "/{tail:.*}", other)
            runner = web.AppRunner(app, access_log=None)
            await runner.setup()
            site = web.TCPSite(runner, "127.0.0.1", 0)
            await site.start()
            port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
            self.url = f"http://127.0.0.1:{port}/v1"
            self._stop = asyncio.Event()
            ready.set()
            await self._stop.wait()
            await runner.cleanup()

        self._loop = asyncio.new_event_loop()
        self._loop.run_until_complete(main())
        self._loop.close()

    def stop(self) -> None:
        loop = getattr(self, "_loop", None)
        if loop is not None and not loop.is_closed():
            loop.call_soon_threadsafe(self._stop.set)
        self._thread.join(10)


CHAIN_PY = """
from pydantic import BaseModel
from chainette import Chain, SamplingParams, Step


class Item(BaseModel):
    text: str


class Label(BaseModel):
    label: str


label = Step("label", input_model=Item, output_model=Label, engine_name="mock",
             sampling=SamplingParams(temperature=0.0, max_tokens=10), user_prompt="Classify: {{ text }}")
again = Step("again", input_model=Label, output_model=Label, engine_name="mock",
             sampling=SamplingParams(temperature=0.0, max_tokens=10),
             user_prompt="Check {{ chain_input.text }} labelled {{ label.label }}")
chain = Chain(name="budgeted", steps=[label, again])
one = Chain(name="budgeted-one", steps=[label])
"""


def engines_yaml(url: str, **extra: Any) -> str:
    fields = {
        "name": "mock",
        "backend": "vllm_api",
        "endpoint": url,
        "model": "m",
        "max_retries": 0,
        "timeout": 10,
        "max_in_flight": 8,
        **extra,
    }
    lines = ["engines:"]
    for k, (key, value) in enumerate(fields.items()):
        lines.append(("  - " if k == 0 else "    ") + f"{key}: {json.dumps(value)}")
    return "\n".join(lines) + "\n"
