"""A mock of OpenAI's Files and Batches APIs (and Chat Completions), for the batch-mode tests.

It follows the documented wire, not Chainette's idea of it:

* ``POST /v1/files`` multipart (``purpose=batch``, ``file``) -> a file object;
  ``GET /v1/files/{id}/content`` -> the bytes;
* ``POST /v1/batches`` ``{input_file_id, endpoint, completion_window: "24h", metadata}``;
  the input file is checked line by line like the real API (JSON object, unique
  ``custom_id``, ``method`` POST, ``url`` equal to the batch ``endpoint``, one ``body.model``,
  at most ``max_requests`` requests and ``max_bytes`` bytes) and a bad file makes the batch
  ``failed`` with ``errors.data[] = {code, message, line}``;
* ``GET /v1/batches/{id}``, ``POST /v1/batches/{id}/cancel``, ``GET /v1/batches?limit=&after=``;
* ``POST /v1/chat/completions`` (online requests, e.g. re-asks with ``reask: online``).

Every ``/v1`` path needs ``Authorization: Bearer <key>`` (401 otherwise). A batch moves
through ``validating`` -> ``in_progress`` (``request_counts.completed`` grows) ->
``finalizing`` -> ``completed`` as time passes (``validate_s``, ``progress_s``,
``finalize_s``). Knobs: ``expire`` (batch ordinals that expire half-way: the run half in the
output file, the rest ``batch_expired`` lines in the error file), ``fail`` (ordinals whose
validation fails), ``line_error(cid, body) -> status | None`` (that request's line goes to
the error file with that HTTP status), ``reply(cid, body) -> str | None`` (the message
content instead of the schema-filling default). ``cancel`` makes a batch ``cancelling`` then
``cancelled``: what ran is in the output file, what did not has no line.

The server runs on its own thread and loop, so a ``chainette`` subprocess can use it too.
"""

from __future__ import annotations

import asyncio
import itertools
import json
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

KEY = "sk-batch-mock-KEY"


def fill(schema: dict[str, Any] | None, defs: dict[str, Any] | None = None) -> Any:
    """A value that fits ``schema`` (deterministic)."""
    if not schema:
        return "text"
    defs = defs if defs is not None else schema.get("$defs", {})
    if "$ref" in schema:
        return fill(defs[schema["$ref"].rsplit("/", 1)[-1]], defs)
    if "enum" in schema:
        return schema["enum"][0]
    for key in ("anyOf", "oneOf", "allOf"):
        if key in schema:
            opts = [s for s in schema[key] if s.get("type") != "null"] or schema[key]
            return fill(opts[0], defs)
    t = schema.get("type", "string")
    if isinstance(t, list):
        t = next((x for x in t if x != "null"), "string")
    if t == "object":
        return {k: fill(v, defs) for k, v in schema.get("properties", {}).items()}
    if t == "array":
        return [fill(schema.get("items", {}), defs)]
    return {"integer": 1, "number": 0.5, "boolean": True, "null": None}.get(t, "text")


def completion(body: dict[str, Any], content: str) -> dict[str, Any]:
    prompt = sum(len(str(m.get("content", ""))) for m in body.get("messages", [])) // 4 + 1
    return {
        "id": "chatcmpl-mock",
        "object": "chat.completion",
        "created": int(time.time()),
        "model": body.get("model"),
        "choices": [
            {
                "index": 0,
                "message": {"role": "assistant", "content": content, "refusal": None},
                "finish_reason": "stop",
                "logprobs": None,
            }
        ],
        "usage": {"prompt_tokens": prompt, "completion_tokens": 10, "total_tokens": prompt + 10},
    }


def default_content(body: dict[str, Any]) -> str:
    rf = body.get("response_format") or {}
    schema = (rf.get("json_schema") or {}).get("schema") if rf.get("type") == "json_schema" else None
    return json.dumps(fill(schema)) if schema else "plain text"


@dataclass
class Batch:
    obj: dict[str, Any]
    ordinal: int
    lines: list[dict[str, Any]]
    created: float
    cancelled_at: float | None = None
    done: bool = False


@dataclass
class MockBatchAPI:
    validate_s: float = 0.02
    progress_s: float = 0.15
    finalize_s: float = 0.02
    max_requests: int = 50_000
    max_bytes: int = 200 * 1000 * 1000
    expire: set[int] = field(default_factory=set)
    fail: set[int] = field(default_factory=set)
    line_error: Callable[[str, dict[str, Any]], int | None] | None = None
    reply: Callable[[str, dict[str, Any]], str | None] | None = None
    key: str = KEY
    # what it saw
    files: dict[str, dict[str, Any]] = field(default_factory=dict)
    batches: dict[str, Batch] = field(default_factory=dict)
    creations: list[dict[str, Any]] = field(default_factory=list)
    cancels: list[str] = field(default_factory=list)
    chat_requests: list[dict[str, Any]] = field(default_factory=list)
    requests: list[tuple[str, str]] = field(default_factory=list)
    url: str = ""

    def __post_init__(self) -> None:
        self._ids = itertools.count(1)
        self._lock = threading.Lock()
        self._loop: asyncio.AbstractEventLoop | None = None
        self._thread: threading.Thread | None = None
        self._runner: Any = None

    # -- lifecycle --------------------------------------------------------------------
    def start(self) -> MockBatchAPI:
        ready = threading.Event()

        def serve() -> None:
            loop = self._loop = asyncio.new_event_loop()
            asyncio.set_event_loop(loop)
            loop.run_until_complete(self._start_app())
            ready.set()
            loop.run_forever()
            loop.run_until_complete(self._runner.cleanup())
            loop.close()

        self._thread = threading.Thread(target=serve, name="mock-batch-api", daemon=True)
        self._thread.start()
        assert ready.wait(10), "mock Batch API did not start"
        return self

    def stop(self) -> None:
        if self._loop is not None:
            self._loop.call_soon_threadsafe(self._loop.stop)
            assert self._thread is not None
            self._thread.join(10)

    def __enter__(self) -> MockBatchAPI:
        return self.start()

    def __exit__(self, *exc: Any) -> None:
        self.stop()

    async def _start_app(self) -> None:
        from aiohttp import web

        app = web.Application(client_max_size=300 * 1024 * 1024)
        app.router.add_route("*", "/{tail:.*}", self._route)
        self._runner = web.AppRunner(app, access_log=None)
        await self._runner.setup()
        site = web.TCPSite(self._runner, "127.0.0.1", 0)
        await site.start()
        port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
        self.url = f"http://127.0.0.1:{port}/v1"

    # -- queries for tests ----------------------------------------------------------------
    def created_keys(self) -> list[str]:
        """``metadata.chainette_batch`` of every batch created, in order (duplicates = created twice)."""
        return [c["metadata"].get("chainette_batch", "") for c in self.creations]

    def batch_custom_ids(self) -> list[list[str]]:
        return [[ln["custom_id"] for ln in b.lines] for b in self.batches.values()]

    # -- routing ----------------------------------------------------------------------
    async def _route(self, request: Any) -> Any:
        from aiohttp import web

        path, method = request.path, request.method
        self.requests.append((method, path))
        if request.headers.get("Authorization") != f"Bearer {self.key}":
            return _error(401, "Incorrect API key provided.", "invalid_api_key")
        try:
            if path == "/v1/files" and method == "POST":
                return await self._upload(request)
            if path.startswith("/v1/files/") and path.endswith("/content") and method == "GET":
                f = self.files.get(path.split("/")[3])
                if f is None:
                    return _error(404, "No such File object", "not_found")
                return web.Response(body=f["content"], content_type="application/octet-stream")
            if path == "/v1/batches" and method == "POST":
                return self._create(json.loads(await request.read()))
            if path == "/v1/batches" and method == "GET":
                return self._list(request.query)
            if path.startswith("/v1/batches/"):
                parts = path.split("/")
                batch = self.batches.get(parts[3])
                if batch is None:
                    return _error(404, f"No batch found with id '{parts[3]}'.", "not_found")
                if len(parts) == 5 and parts[4] == "cancel" and method == "POST":
                    self.cancels.append(parts[3])
                    if batch.obj["status"] in ("validating", "in_progress", "finalizing"):
                        batch.cancelled_at = time.monotonic()
                        batch.obj["status"] = "cancelling"
                        batch.obj["cancelling_at"] = int(time.time())
                    return _json(batch.obj)
                if len(parts) == 4 and method == "GET":
                    return _json(self._advance(batch))
            if path == "/v1/chat/completions" and method == "POST":
                body = json.loads(await request.read())
                self.chat_requests.append(body)
                content = (self.reply(None, body) if self.reply else None) or default_content(body)
                return _json(completion(body, content))
        except Exception as exc:  # a bug in the mock shows as a 500 the test will see
            return _error(500, f"mock failure: {type(exc).__name__}: {exc}", "server_error")
        return _error(404, f"Unknown path {method} {path}", "not_found")

    async def _upload(self, request: Any) -> Any:
        reader = await request.multipart()
        purpose = filename = None
        content = b""
        async for part in reader:
            if part.name == "purpose":
                purpose = (await part.read()).decode()
            elif part.name == "file":
                filename = part.filename
                content = bytes(await part.read())
        if purpose != "batch" or filename is None:
            return _error(400, "purpose must be 'batch' and a file is required", "invalid_request_error")
        fid = f"file-{next(self._ids):05d}"
        self.files[fid] = {
            "id": fid,
            "object": "file",
            "bytes": len(content),
            "created_at": int(time.time()),
            "filename": filename,
            "purpose": purpose,
            "content": content,
        }
        return _json({k: v for k, v in self.files[fid].items() if k != "content"})

    def _create(self, data: dict[str, Any]) -> Any:
        fid = data.get("input_file_id")
        if fid not in self.files:
            return _error(400, f"Invalid input_file_id '{fid}'", "invalid_request_error")
        if data.get("endpoint") != "/v1/chat/completions":
            return _error(400, "endpoint must be /v1/chat/completions", "invalid_request_error")
        if data.get("completion_window") != "24h":
            return _error(400, "completion_window must be '24h'", "invalid_request_error")
        metadata = data.get("metadata") or {}
        if len(metadata) > 16 or any(len(k) > 64 or len(str(v)) > 512 for k, v in metadata.items()):
            return _error(
                400, "metadata: at most 16 pairs, keys <= 64 and values <= 512 characters", "invalid_request_error"
            )
        ordinal = len(self.creations) + 1
        bid = f"batch_{next(self._ids):05d}"
        content = self.files[fid]["content"]
        lines, errors = self._check_file(content, data["endpoint"])
        now = int(time.time())
        obj = {
            "id": bid,
            "object": "batch",
            "endpoint": data["endpoint"],
            "errors": None,
            "input_file_id": fid,
            "completion_window": "24h",
            "status": "validating",
            "output_file_id": None,
            "error_file_id": None,
            "created_at": now,
            "in_progress_at": None,
            "expires_at": now + 86400,
            "finalizing_at": None,
            "completed_at": None,
            "failed_at": None,
            "expired_at": None,
            "cancelling_at": None,
            "cancelled_at": None,
            "request_counts": {"total": 0, "completed": 0, "failed": 0},
            "metadata": metadata,
        }
        if errors or ordinal in self.fail:
            obj["errors"] = {
                "object": "list",
                "data": errors
                or [
                    {
                        "code": "token_limit_exceeded",
                        "message": "Enqueued token limit reached for this model.",
                        "param": None,
                        "line": None,
                    }
                ],
            }
        self.batches[bid] = Batch(obj=obj, ordinal=ordinal, lines=lines, created=time.monotonic())
        self.creations.append({"batch_id": bid, "input_file_id": fid, "metadata": metadata, "requests": len(lines)})
        return _json(obj)

    def _check_file(self, content: bytes, endpoint: str) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
        errors: list[dict[str, Any]] = []
        lines: list[dict[str, Any]] = []
        seen: set[str] = set()
        models: set[str] = set()
        if len(content) > self.max_bytes:
            errors.append(
                {
                    "code": "file_too_large",
                    "message": f"{len(content)} bytes > {self.max_bytes}",
                    "param": None,
                    "line": None,
                }
            )
        for n, raw in enumerate(content.splitlines(), 1):
            if not raw.strip():
                continue
            try:
                line = json.loads(raw)
            except ValueError:
                errors.append({"code": "invalid_json_line", "message": "not JSON", "param": None, "line": n})
                continue
            cid = line.get("custom_id")
            if not isinstance(cid, str) or cid in seen:
                errors.append(
                    {
                        "code": "duplicate_custom_id",
                        "message": f"custom_id {cid!r} is not unique",
                        "param": None,
                        "line": n,
                    }
                )
            seen.add(str(cid))
            if line.get("method") != "POST" or line.get("url") != endpoint or not isinstance(line.get("body"), dict):
                errors.append(
                    {
                        "code": "invalid_request",
                        "message": "method must be POST, url the batch endpoint, body an object",
                        "param": None,
                        "line": n,
                    }
                )
                continue
            models.add(str(line["body"].get("model")))
            lines.append(line)
        if len(models) > 1:
            errors.append({"code": "mixed_models", "message": "one model per batch", "param": None, "line": None})
        if len(lines) > self.max_requests:
            errors.append(
                {
                    "code": "too_many_requests",
                    "message": f"{len(lines)} requests > {self.max_requests}",
                    "param": None,
                    "line": None,
                }
            )
        if not lines and not errors:
            errors.append({"code": "empty_file", "message": "no requests", "param": None, "line": None})
        return lines, errors

    def _list(self, query: Any) -> Any:
        limit = int(query.get("limit", 20))
        objs = [b.obj for b in sorted(self.batches.values(), key=lambda b: -b.ordinal)]
        after = query.get("after")
        if after:
            ids = [o["id"] for o in objs]
            objs = objs[ids.index(after) + 1 :] if after in ids else []
        page = objs[:limit]
        return _json(
            {
                "object": "list",
                "data": page,
                "first_id": page[0]["id"] if page else None,
                "last_id": page[-1]["id"] if page else None,
                "has_more": len(objs) > limit,
            }
        )

    # -- time ---------------------------------------------------------------------------
    def _advance(self, batch: Batch) -> dict[str, Any]:
        obj = batch.obj
        if batch.done:
            return obj
        t = time.monotonic() - batch.created
        total = len(batch.lines)
        now = int(time.time())
        if obj["errors"] is not None:
            if t >= self.validate_s:
                obj.update(status="failed", failed_at=now)
                batch.done = True
            return obj
        if batch.cancelled_at is not None:
            ran = self._ran(batch, batch.cancelled_at - batch.created)
            if obj["status"] == "cancelling" and time.monotonic() - batch.cancelled_at >= self.finalize_s:
                self._finish(batch, ran, "cancelled")
                obj.update(cancelled_at=now)
            return obj
        if t < self.validate_s:
            return obj
        obj["request_counts"]["total"] = total
        expires = batch.ordinal in self.expire
        if t < self.validate_s + self.progress_s and not (expires and t >= self.validate_s + self.progress_s / 2):
            obj.update(status="in_progress", in_progress_at=obj["in_progress_at"] or now)
            obj["request_counts"]["completed"] = self._ran(batch, t)
            return obj
        if expires:
            self._finish(batch, total // 2, "expired")
            obj.update(expired_at=now)
            return obj
        if t < self.validate_s + self.progress_s + self.finalize_s:
            obj.update(status="finalizing", finalizing_at=obj["finalizing_at"] or now)
            obj["request_counts"]["completed"] = total
            return obj
        self._finish(batch, total, "completed")
        obj.update(completed_at=now)
        return obj

    def _ran(self, batch: Batch, t: float) -> int:
        frac = min(1.0, max(0.0, (t - self.validate_s) / self.progress_s))
        return int(len(batch.lines) * frac)

    def _finish(self, batch: Batch, ran: int, status: str) -> None:
        out, err = [], []
        completed = failed = 0
        for k, line in enumerate(batch.lines):
            cid, body = line["custom_id"], line["body"]
            rid = f"batch_req_{next(self._ids):05d}"
            if k >= ran:
                if status == "expired":
                    err.append(
                        {
                            "id": rid,
                            "custom_id": cid,
                            "response": None,
                            "error": {
                                "code": "batch_expired",
                                "message": "This request could not be executed before the completion window expired.",
                            },
                        }
                    )
                continue  # cancelled: what did not run has no line
            code = self.line_error(cid, body) if self.line_error else None
            if code:
                failed += 1
                err.append(
                    {
                        "id": rid,
                        "custom_id": cid,
                        "response": {
                            "status_code": code,
                            "request_id": f"req_{rid}",
                            "body": {
                                "error": {
                                    "message": f"mock error {code}",
                                    "type": "server_error" if code >= 500 else "invalid_request_error",
                                    "param": None,
                                    "code": None,
                                }
                            },
                        },
                        "error": None,
                    }
                )
                continue
            completed += 1
            content = (self.reply(cid, body) if self.reply else None) or default_content(body)
            out.append(
                {
                    "id": rid,
                    "custom_id": cid,
                    "response": {"status_code": 200, "request_id": f"req_{rid}", "body": completion(body, content)},
                    "error": None,
                }
            )
        out.reverse()  # results come back in any order
        obj = batch.obj
        for name, rows, purpose in (("output_file_id", out, "batch_output"), ("error_file_id", err, "batch_output")):
            if rows:
                fid = f"file-{next(self._ids):05d}"
                content = "".join(json.dumps(r) + "\n" for r in rows).encode()
                self.files[fid] = {
                    "id": fid,
                    "object": "file",
                    "bytes": len(content),
                    "created_at": int(time.time()),
                    "filename": f"{obj['id']}_{name}.jsonl",
                    "purpose": purpose,
                    "content": content,
                }
                obj[name] = fid
        obj["status"] = status
        obj["request_counts"] = {"total": len(batch.lines), "completed": completed, "failed": failed}
        batch.done = True


def _json(obj: Any, status: int = 200) -> Any:
    from aiohttp import web

    return web.Response(status=status, body=json.dumps(obj), content_type="application/json")


def _error(status: int, message: str, code: str) -> Any:
    return _json({"error": {"message": message, "type": "invalid_request_error", "param": None, "code": code}}, status)
