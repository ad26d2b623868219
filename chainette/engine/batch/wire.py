"""The Batch API file formats, as documented (pure: no I/O).

Input file (JSONL, one request per line; OpenAI Batch API and ``vllm run-batch`` alike)::

    {"custom_id": "...", "method": "POST", "url": "/v1/chat/completions", "body": {<chat request>}}

``body`` is byte for byte the body the engine sends online (the backend's own ``encode``),
so a batch request is the same request. Output and error files hold one object per line::

    {"id": "batch_req_...", "custom_id": "...",
     "response": {"status_code": 200, "request_id": "...", "body": {<chat.completion>}},
     "error": null}

A request that failed has a non-2xx ``status_code`` (its ``body`` holds the API's error
object, or is absent: vLLM puts the message in ``error``), or ``response: null`` and an
``error: {"code", "message"}`` (``batch_expired``: not run before the completion window
ended; ``batch_cancelled``: the batch was cancelled first). Results come back in any order:
they are matched by ``custom_id``.

The ``custom_id`` names the run, the step and the row, and ends with a hash of the body:
``<run key>:<step id>:<row id>:<12 hex>``. It is unique within a file (a re-ask has other
messages, so another hash) and the same when a resumed run renders the same request, which
is how a resumed run finds the batch a request is already in.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from typing import Any

from chainette.engine.backends.base import dumps, loads
from chainette.errors import EngineError, EngineHTTPError

CHAT_URL = "/v1/chat/completions"
"""The ``url`` of every request line and the ``endpoint`` of every batch."""

LIVE_STATES = frozenset({"validating", "in_progress", "finalizing", "cancelling"})
"""A batch in one of these states may still produce results."""
TERMINAL_STATES = frozenset({"completed", "failed", "expired", "cancelled"})
"""Documented final states of a batch."""
UNFINISHED_CODES = frozenset({"batch_expired", "batch_cancelled"})
"""Per-request error codes meaning "never run" (the request may be sent again)."""

__all__ = [
    "CHAT_URL",
    "LIVE_STATES",
    "TERMINAL_STATES",
    "UNFINISHED_CODES",
    "Outcome",
    "custom_id",
    "describe_batch_errors",
    "line_custom_id",
    "read_result",
    "request_line",
]


def custom_id(run_key: str, step_id: str, row_id: str, body: bytes) -> str:
    """``<run key>:<step>:<row>:<sha256(body)[:12]>``: who asked, and for exactly what."""
    digest = hashlib.sha256(body).hexdigest()[:12]
    return f"{run_key}:{step_id or '-'}:{row_id or '-'}:{digest}"


def request_line(cid: str, body: bytes, url: str = CHAT_URL) -> bytes:
    """One input-file line (``custom_id`` first, so it can be read back without decoding)."""
    return b'{"custom_id":' + dumps(cid) + b',"method":"POST","url":' + dumps(url) + b',"body":' + body + b"}\n"


_PREFIX = b'{"custom_id":"'


def line_custom_id(line: bytes) -> str | None:
    """The ``custom_id`` of a request line we wrote (fast path), or of any JSON line."""
    if line.startswith(_PREFIX):
        end = line.find(b'"', len(_PREFIX))
        if end > 0 and b"\\" not in line[len(_PREFIX) : end]:
            return line[len(_PREFIX) : end].decode()
    try:
        value = loads(line).get("custom_id")
    except (ValueError, AttributeError):
        return None
    return value if isinstance(value, str) else None


@dataclass(slots=True)
class Outcome:
    """What a batch says about one request.

    ``kind``: ``"ok"`` (``body`` is the chat completion), ``"error"`` (``error`` says why;
    a retryable one, e.g. a 5xx line, is sent again once), or ``"unfinished"`` (the request
    never ran: expired, cancelled or failed batch; ``reason`` says which)."""

    kind: str
    body: Any = None
    error: EngineError | None = None
    reason: str = ""


def read_result(obj: Any, engine: str) -> tuple[str | None, Outcome]:
    """``(custom_id, outcome)`` of one output- or error-file line (decoded)."""
    if not isinstance(obj, dict):
        return None, Outcome(
            "error", error=EngineError(f"engine '{engine}': batch result line is not an object", engine=engine)
        )
    cid = obj.get("custom_id")
    cid = cid if isinstance(cid, str) else None
    response = obj.get("response")
    error = obj.get("error")
    status = response.get("status_code") if isinstance(response, dict) else None
    body = response.get("body") if isinstance(response, dict) else None
    if isinstance(status, int) and 200 <= status < 300 and isinstance(body, dict) and not error:
        return cid, Outcome("ok", body=body)
    code, message = _error_fields(error, body)
    if status is None and code in UNFINISHED_CODES:
        return cid, Outcome("unfinished", reason=f"{code}: {message}" if message else code)
    if isinstance(status, int) and not 200 <= status < 300:
        err: EngineError = EngineHTTPError(
            f"engine '{engine}': HTTP {status} for this request in the batch: {message or 'no message'}",
            status=status,
            engine=engine,
            code=code,
        )
        return cid, Outcome("error", error=err)
    what = f"{code}: {message}" if code and message else (message or code or "no response and no error")
    return cid, Outcome(
        "error",
        error=EngineError(f"engine '{engine}': the batch returned an error for this request: {what}", engine=engine),
    )


def _error_fields(error: Any, body: Any) -> tuple[str | None, str]:
    """``(code, message)`` from a line's ``error`` field or its response body's error object."""
    found = error
    if not found and isinstance(body, dict):
        found = body.get("error")
    if isinstance(found, dict):
        code = found.get("code") or found.get("type")
        return (code if isinstance(code, str) else None), str(found.get("message") or "")
    if found:
        return None, str(found)
    return None, ""


def describe_batch_errors(batch: dict[str, Any]) -> str:
    """The ``errors`` of a failed batch object in one line (``code: message (line n)``)."""
    errors = batch.get("errors")
    items = errors.get("data") if isinstance(errors, dict) else errors
    parts = []
    for e in items or []:
        if isinstance(e, dict):
            where = f" (line {e['line']})" if e.get("line") is not None else ""
            parts.append(f"{e.get('code') or 'error'}: {e.get('message') or ''}{where}".strip())
        elif e:
            parts.append(str(e))
    return "; ".join(parts[:5]) or "no reason given"
