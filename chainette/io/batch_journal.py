"""``BatchJournal``: the batches of a run in batch mode, kept in its run directory.

```
<run dir>/.chainette/batches.json           {"version": 1, "run_key": ..., "batches": [record, ...]}
<run dir>/.chainette/batches/<key>.requests.jsonl   the input file as uploaded
<run dir>/.chainette/batches/<key>.output.jsonl     the output file, once downloaded
<run dir>/.chainette/batches/<key>.errors.jsonl     the error file, once downloaded
<run dir>/.chainette/batches/<key>.log              vllm run-batch's log (offline vLLM)
<run dir>/.chainette/batches-cancel.json    ids cancelled by `chainette batches --cancel`
```
``batches.json`` is replaced atomically (a temporary file, then ``os.replace``) each time a
batch changes state, so a killed driver leaves it whole: ``--resume`` re-attaches to the
batches in it (see :mod:`chainette.engine.batch.record`). ``--force`` removes it with the
rest of ``.chainette/`` (cancel live batches first: ``chainette batches RUN_DIR --cancel``).
"""

from __future__ import annotations

import json
import re
import secrets
import threading
from pathlib import Path
from typing import Any

from chainette.engine.batch.record import BatchRecord
from chainette.io.journal import JOURNAL_DIR, write_atomic
from chainette.utils.paths import confined

BATCHES_FILE = "batches.json"
BATCHES_DIR = "batches"
CANCEL_FILE = "batches-cancel.json"
VERSION = 1
_UNSAFE = re.compile(r"[^A-Za-z0-9_.-]")

__all__ = ["BatchJournal", "batches_path", "load_batches"]


def batches_path(run_dir: str | Path) -> Path:
    return Path(run_dir) / JOURNAL_DIR / BATCHES_FILE


def load_batches(run_dir: str | Path) -> BatchJournal | None:
    """The journal of ``run_dir``, or ``None`` when the run never used batch mode."""
    return BatchJournal(run_dir) if batches_path(run_dir).exists() else None


class BatchJournal:
    """The :class:`~chainette.engine.batch.record.BatchStore` of one run directory."""

    def __init__(self, run_dir: str | Path, *, durable: bool = True) -> None:
        self.root = Path(run_dir)
        self.durable = durable
        self.folder = confined(self.root, JOURNAL_DIR, BATCHES_DIR)
        self._lock = threading.Lock()
        self._records: dict[str, BatchRecord] = {}
        self._cancel_cache: tuple[float, set[str]] = (-1.0, set())
        data: dict[str, Any] = {}
        path = batches_path(self.root)
        if path.exists():
            data = json.loads(path.read_text(encoding="utf-8"))
        self.run_key: str = str(data.get("run_key") or "r" + secrets.token_hex(4))
        for entry in data.get("batches") or []:
            rec = BatchRecord.from_dict(entry)
            self._records[rec.key] = rec
        self._reserved: set[str] = set(self._records)

    # -- records -----------------------------------------------------------------------
    def records(self, engine: str | None = None) -> list[BatchRecord]:
        with self._lock:
            return [r for r in self._records.values() if engine is None or r.engine == engine]

    def new_key(self, engine: str) -> str:
        prefix = _UNSAFE.sub("_", engine)[:48] or "engine"
        with self._lock:
            n = 1 + sum(1 for k in self._reserved if k.rsplit("-", 1)[0] == prefix)
            key = f"{prefix}-{n:04d}"
            while key in self._reserved:
                n += 1
                key = f"{prefix}-{n:04d}"
            self._reserved.add(key)
            return key

    def save(self, record: BatchRecord) -> None:
        import time

        record.updated_at = time.time()
        with self._lock:
            self._records[record.key] = record
            self._reserved.add(record.key)
            text = json.dumps(
                {"version": VERSION, "run_key": self.run_key, "batches": [r.to_dict() for r in self._records.values()]},
                separators=(",", ":"),
                ensure_ascii=False,
            )
            path = confined(self.root, JOURNAL_DIR, BATCHES_FILE)
            path.parent.mkdir(parents=True, exist_ok=True)
            write_atomic(path, text, durable=self.durable)

    # -- files -------------------------------------------------------------------------
    def _file(self, name: str) -> Path:
        self.folder.mkdir(parents=True, exist_ok=True)
        return confined(self.folder, name)

    def request_path(self, key: str) -> Path:
        return self._file(f"{key}.requests.jsonl")

    def result_path(self, key: str, kind: str) -> Path:
        return self._file(f"{key}.{kind}.jsonl")

    def log_path(self, key: str) -> Path:
        return self._file(f"{key}.log")

    # -- cancellation by the CLI ---------------------------------------------------------
    def cancel_requested(self) -> set[str]:
        path = self.root / JOURNAL_DIR / CANCEL_FILE
        try:
            mtime = path.stat().st_mtime
        except OSError:
            return set()
        if mtime != self._cancel_cache[0]:
            try:
                ids = set(json.loads(path.read_text(encoding="utf-8")).get("cancelled") or [])
            except (OSError, ValueError):
                ids = set()
            self._cancel_cache = (mtime, ids)
        return set(self._cancel_cache[1])

    def request_cancel(self, ids: list[str]) -> None:
        """Record that ``ids`` (batch ids or keys) were cancelled on purpose: a running driver
        stops (resumable) instead of re-queuing their unfinished requests."""
        path = confined(self.root, JOURNAL_DIR, CANCEL_FILE)
        done = self.cancel_requested() | set(ids)
        write_atomic(path, json.dumps({"cancelled": sorted(done)}), durable=self.durable)
