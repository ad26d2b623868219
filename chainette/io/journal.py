"""The run journal: which input rows are committed, and how long each file was then.

After every commit the writer replaces ``.chainette/progress.json`` atomically. A resumed
run truncates every file back to the recorded sizes (dropping anything written after the
last commit) and skips the committed rows, so no row is written twice.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from chainette.utils.paths import confined

JOURNAL_DIR = ".chainette"
JOURNAL_FILE = "progress.json"
FLATTENED = "flattened"
"""run-directory folder of flattened records"""
ERRORS = "errors"
"""run-directory folder of error records"""


def write_atomic(path: Path, text: str, *, durable: bool = True) -> None:
    """Replace ``path`` with ``text`` in one step (a temporary file, then ``os.replace``)."""
    tmp = path.with_name(path.name + ".tmp")
    with open(tmp, "w") as f:
        f.write(text)
        f.flush()
        if durable:
            os.fsync(f.fileno())
    os.replace(tmp, path)


@dataclass
class DoneSet:
    """Committed input indices: everything below ``watermark`` plus a sparse set above it."""

    watermark: int = 0
    above: set[int] = field(default_factory=set)
    redo: set[int] = field(default_factory=set)
    """indices below the watermark that are to be processed again (``--retry-errors``)"""

    def add(self, index: int) -> None:
        if index < self.watermark:
            self.redo.discard(index)
            return
        self.above.add(index)
        while self.watermark in self.above:
            self.above.discard(self.watermark)
            self.watermark += 1

    def discard(self, index: int) -> None:
        """Mark ``index`` as not done."""
        if index < self.watermark:
            self.redo.add(index)
        else:
            self.above.discard(index)

    def __contains__(self, index: int) -> bool:
        return (index < self.watermark and index not in self.redo) or index in self.above

    def __len__(self) -> int:
        return self.watermark - len(self.redo) + len(self.above)

    def to_dict(self) -> dict[str, Any]:
        return {"watermark": self.watermark, "above": sorted(self.above), "redo": sorted(self.redo)}

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> DoneSet:
        return cls(watermark=int(d.get("watermark", 0)), above=set(d.get("above", [])), redo=set(d.get("redo", [])))


@dataclass
class Journal:
    """Progress of one run directory."""

    done: DoneSet = field(default_factory=DoneSet)
    files: dict[str, dict[str, int]] = field(default_factory=dict)
    """per output folder: {"index": current file number, "lines": lines in it, "size": its bytes}"""
    fingerprint: dict[str, str] = field(default_factory=dict)
    rows_seen: int = 0
    completed: bool = False
    counts: dict[str, dict[str, int]] = field(default_factory=dict)
    stage: int = 0
    """staged runs: the stage in progress (``done`` counts spill positions after stage 0)"""
    rewrite: list[str] = field(default_factory=list)
    """files being replaced by ``--retry-errors`` (see ``io/retry_errors.py``)"""
    spent: dict[str, Any] = field(default_factory=dict)
    """what the run has spent so far over all its sessions (tokens, cost; see ``run/costs.py``)"""

    def to_dict(self) -> dict[str, Any]:
        return {
            "done": self.done.to_dict(),
            "files": self.files,
            "fingerprint": self.fingerprint,
            "rows_seen": self.rows_seen,
            "completed": self.completed,
            "counts": self.counts,
            "stage": self.stage,
            "rewrite": self.rewrite,
            "spent": self.spent,
        }

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> Journal:
        return cls(
            done=DoneSet.from_dict(d.get("done", {})),
            files=d.get("files", {}),
            fingerprint=d.get("fingerprint", {}),
            rows_seen=d.get("rows_seen", 0),
            completed=d.get("completed", False),
            counts=d.get("counts", {}),
            stage=d.get("stage", 0),
            rewrite=d.get("rewrite", []),
            spent=d.get("spent", {}),
        )


def journal_path(run_dir: Path) -> Path:
    return run_dir / JOURNAL_DIR / JOURNAL_FILE


def load_journal(run_dir: Path) -> Journal | None:
    p = journal_path(run_dir)
    if not p.exists():
        return None
    return Journal.from_dict(json.loads(p.read_text()))


def save_journal(run_dir: Path, journal: Journal, *, durable: bool = True) -> None:
    p = confined(run_dir, JOURNAL_DIR, JOURNAL_FILE)
    p.parent.mkdir(parents=True, exist_ok=True)
    write_atomic(p, json.dumps(journal.to_dict(), separators=(",", ":")), durable=durable)
