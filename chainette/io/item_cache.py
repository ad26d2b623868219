"""The item cache: completed LLM replies, content-addressed, shared across runs.

The key is a SHA-256 of canonical JSON holding a version prefix, the rendered messages,
the output schema, model, backend, endpoint kind and sampling parameters (seed included).
Editing one step's prompt changes only that step's keys, so only its rows (and the rows
downstream, whose prompts change with its outputs) are requested again.

Stored in SQLite (WAL) under the user cache directory (``$CHAINETTE_CACHE_DIR`` or
``~/.cache/chainette/items.sqlite``). Reads happen inline (a primary-key lookup); writes
are queued and committed in batches by a background thread so they never block the loop.
"""

from __future__ import annotations

import hashlib
import json
import os
import queue
import sqlite3
import threading
import time
from pathlib import Path
from typing import Any

from chainette.engine.protocol import Completion, CompletionRequest, Usage

CACHE_VERSION = "chainette-item-v2"


def default_cache_path() -> Path:
    base = os.environ.get("CHAINETTE_CACHE_DIR")
    root = Path(base) if base else Path(os.environ.get("XDG_CACHE_HOME", Path.home() / ".cache")) / "chainette"
    return root / "items.sqlite"


def _canonical(obj: Any) -> bytes:
    return json.dumps(obj, sort_keys=True, separators=(",", ":"), ensure_ascii=False).encode()


def cache_key(request: CompletionRequest, scope: dict[str, Any]) -> str:
    """SHA-256 over canonical JSON of everything that determines a reply, with a version prefix:
    the step-constant part (schema, sampling, model, backend), then the rendered messages."""
    digest = hashlib.sha256(_static_part(request, scope))
    digest.update(_canonical(request.messages))
    return digest.hexdigest()


def _static_part(request: CompletionRequest, scope: dict[str, Any]) -> bytes:
    return _canonical({
        "v": CACHE_VERSION,
        "schema": request.json_schema,
        "sampling": request.sampling.model_dump(exclude_none=True),
        **scope,
    }) + b"\n"


class ItemCache:
    """SQLite-backed reply cache. Use as ``cache.get(key)`` / ``cache.put(key, completion)``."""

    def __init__(self, path: str | Path | None = None, *, flush_every: float = 0.2) -> None:
        self.path = Path(path) if path else default_cache_path()
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._read = self._connect()
        self._read.execute(
            "CREATE TABLE IF NOT EXISTS items (key TEXT PRIMARY KEY, text TEXT NOT NULL, "
            "reasoning TEXT, prompt_tokens INTEGER, completion_tokens INTEGER, model TEXT)"
        )
        self._read.commit()
        self._queue: queue.Queue[tuple[str, Completion] | None] = queue.Queue()
        self._flush_every = flush_every
        self._writer = threading.Thread(target=self._write_loop, name="chainette-cache", daemon=True)
        self._writer.start()
        self.hits = 0
        self.misses = 0
        self._prefixes: dict[tuple[Any, ...], tuple[Any, Any, Any]] = {}

    def _connect(self) -> sqlite3.Connection:
        conn = sqlite3.connect(self.path, check_same_thread=False, timeout=30)
        conn.execute("PRAGMA journal_mode=WAL")
        conn.execute("PRAGMA synchronous=NORMAL")
        return conn

    def key(self, request: CompletionRequest, scope: dict[str, Any]) -> str:
        """:func:`cache_key`, with the step-constant part hashed once per step."""
        memo_key = (id(request.json_schema), id(request.sampling), tuple(sorted(scope.items())))
        hit = self._prefixes.get(memo_key)
        if hit is None or hit[0] is not request.json_schema or hit[1] is not request.sampling:
            if len(self._prefixes) > 256:
                self._prefixes.clear()
            hit = self._prefixes[memo_key] = (
                request.json_schema, request.sampling, hashlib.sha256(_static_part(request, scope)))
        digest = hit[2].copy()
        digest.update(_canonical(request.messages))
        return digest.hexdigest()

    def get(self, key: str) -> Completion | None:
        row = self._read.execute(
            "SELECT text, reasoning, prompt_tokens, completion_tokens, model FROM items WHERE key=?", (key,)
        ).fetchone()
        if row is None:
            self.misses += 1
            return None
        self.hits += 1
        return Completion(text=row[0], reasoning=row[1], usage=Usage(0, 0), model=row[4])

    def put(self, key: str, completion: Completion) -> None:
        self._queue.put((key, completion))

    def _write_loop(self) -> None:
        """Write queued replies in one transaction per ``flush_every`` seconds (not one per reply)."""
        conn = self._connect()
        stop = False
        while not stop:
            item = self._queue.get()
            batch = []
            if item is None:
                stop = True
            else:
                batch.append(item)
                time.sleep(self._flush_every)  # let the batch fill
            while not stop:
                try:
                    item = self._queue.get_nowait()
                except queue.Empty:
                    break
                if item is None:
                    stop = True
                else:
                    batch.append(item)
            if batch:
                conn.executemany(
                    "INSERT OR REPLACE INTO items VALUES (?,?,?,?,?,?)",
                    [(k, c.text, c.reasoning, c.usage.prompt_tokens, c.usage.completion_tokens, c.model)
                     for k, c in batch],
                )
                conn.commit()
        conn.close()

    def close(self) -> None:
        """Flush pending writes and stop the writer thread."""
        if self._writer.is_alive():
            self._queue.put(None)
            self._writer.join(timeout=30)
        self._read.close()
