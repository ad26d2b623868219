"""The item cache: completed LLM replies, content-addressed, shared across runs.

The key is :func:`chainette.utils.canonical.canonical_hash` of two parts: a header holding
the format version (``CACHE_VERSION``), the output schema, model, backend, endpoint kind and
sampling parameters (seed included), then the rendered messages.
Editing one step's prompt changes only that step's keys, so only its rows (and the rows
downstream, whose prompts change with its outputs) are requested again.

Stored in SQLite (WAL) under the user cache directory (``$CHAINETTE_CACHE_DIR`` or
``~/.cache/chainette/items.sqlite``). The cache holds every prompt and reply, so it is private
to the user: the cache directory is made 0700 and the database and its WAL/SHM files 0600
(an existing cache's permissions are fixed when it is opened). ``chainette cache info`` shows
it, ``chainette cache clear`` deletes it (:func:`cache_info`, :func:`clear_cache`). Reads
happen inline (a primary-key lookup); writes are queued and committed in batches by a
background thread so they never block the loop.
"""

from __future__ import annotations

import os
import queue
import sqlite3
import threading
import time
from pathlib import Path
from typing import Any

from chainette.engine.protocol import Completion, CompletionRequest, Usage
from chainette.utils.canonical import canonical_hasher, canonical_json

CACHE_VERSION = "chainette-item-v2"


def default_cache_path() -> Path:
    base = os.environ.get("CHAINETTE_CACHE_DIR")
    root = Path(base) if base else Path(os.environ.get("XDG_CACHE_HOME", Path.home() / ".cache")) / "chainette"
    return root / "items.sqlite"


SQLITE_SUFFIXES = ("", "-wal", "-shm", "-journal")
"""The database file and the files SQLite keeps beside it."""


def _make_private(path: Path, mode: int) -> None:
    """``chmod`` ``path`` to ``mode`` when it exists and differs (best effort: a file or
    directory owned by someone else is left alone)."""
    try:
        if path.exists() and (path.stat().st_mode & 0o777) != mode:
            os.chmod(path, mode)
    except OSError:
        pass


def _files(path: Path) -> list[Path]:
    return [path.with_name(path.name + suffix) for suffix in SQLITE_SUFFIXES]


def cache_info(path: str | Path | None = None) -> dict[str, Any]:
    """Where the item cache is, whether it exists, its size on disk and its number of entries."""
    p = Path(path) if path else default_cache_path()
    size = sum(f.stat().st_size for f in _files(p) if f.exists())
    entries = 0
    if p.exists():
        try:
            conn = sqlite3.connect(f"{p.resolve().as_uri()}?mode=ro", uri=True, timeout=30)
            try:
                entries = conn.execute("SELECT count(*) FROM items").fetchone()[0]
            finally:
                conn.close()
        except sqlite3.Error:
            entries = 0
    return {"path": str(p), "exists": p.exists(), "size_bytes": size, "entries": entries}


def clear_cache(path: str | Path | None = None) -> dict[str, Any]:
    """Delete the item cache (the database and its WAL/SHM files); return what was removed."""
    p = Path(path) if path else default_cache_path()
    info = cache_info(p)
    removed = []
    for f in _files(p):
        if f.exists():
            f.unlink()
            removed.append(str(f))
    return {**info, "removed": removed}


def _header(request: CompletionRequest, scope: dict[str, Any]) -> dict[str, Any]:
    """The step-constant part of a key (the same for every row of a step)."""
    return {
        "v": CACHE_VERSION,
        "schema": request.json_schema,
        "sampling": request.sampling.model_dump(exclude_none=True),
        **scope,
    }


class ItemCache:
    """SQLite-backed reply cache. Use as ``cache.get(key)`` / ``cache.put(key, completion)``."""

    def __init__(self, path: str | Path | None = None, *, flush_every: float = 0.2) -> None:
        self.path = Path(path) if path else default_cache_path()
        folder = self.path.parent
        own_folder = path is None or not folder.exists()  # the cache directory, or one made for it
        folder.mkdir(mode=0o700, parents=True, exist_ok=True)
        if own_folder:
            _make_private(folder, 0o700)
        os.close(os.open(self.path, os.O_RDWR | os.O_CREAT, 0o600))  # created private, never 0644
        self._read = self._connect()
        for f in _files(self.path):  # an existing cache, and the WAL/SHM files SQLite made
            _make_private(f, 0o600)
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
        """``canonical_hash(header, request.messages)``, with the header hashed once per step."""
        memo_key = (id(request.json_schema), id(request.sampling), tuple(sorted(scope.items())))
        hit = self._prefixes.get(memo_key)
        if hit is None or hit[0] is not request.json_schema or hit[1] is not request.sampling:
            if len(self._prefixes) > 256:
                self._prefixes.clear()
            hit = self._prefixes[memo_key] = (
                request.json_schema, request.sampling, canonical_hasher(_header(request, scope)))
        digest = hit[2].copy()
        digest.update(canonical_json(request.messages))
        return digest.hexdigest()

    def get(self, key: str) -> Completion | None:
        row = self._read.execute(
            "SELECT text, reasoning, prompt_tokens, completion_tokens, model FROM items WHERE key=?", (key,)
        ).fetchone()
        if row is None:
            self.misses += 1
            return None
        self.hits += 1
        # the usage the reply cost when it was first made: what this hit saves (not spent again)
        return Completion(text=row[0], reasoning=row[1], usage=Usage(row[2] or 0, row[3] or 0), model=row[4])

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
