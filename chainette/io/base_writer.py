"""The writer interface (:class:`Writer`, :class:`RunInfo`) and :class:`MemoryWriter`.

A writer receives finished rows from the executor: ``open`` → ``write_rows``* → ``close``
(with ``begin_stage`` / ``read_spill`` between the stages of a staged run).
``write_rows`` runs in a worker thread, never on the event loop.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from chainette.core.result import Result
from chainette.io.journal import DoneSet

if TYPE_CHECKING:
    from chainette.core.result import RunResult
    from chainette.core.row import RowRecords


@dataclass
class RunInfo:
    """What a writer needs to know about the run it records."""

    run_id: str
    chain_name: str
    graph: dict[str, Any]
    engines: list[dict[str, Any]]
    fingerprint: dict[str, str]
    started_at: str
    step_ids: list[str] = field(default_factory=list)
    resumed: bool = False
    """this session continues an earlier one (``--resume``); set for custom writers' ``init``"""


class Writer:
    """Base class (and protocol) of writers."""

    output_dir: Path | None = None

    def open(self, run: RunInfo, *, resume: bool = False, force: bool = False, retry_errors: bool = False) -> DoneSet:
        """Prepare storage; return the input indices already committed (resume)."""
        return DoneSet()

    rows_seen: int = 0
    """Input rows seen by earlier sessions of this run (resume)."""
    stage: int = 0
    """The stage whose rows are being written (staged runs; see ``chainette/run/stages.py``)."""
    spent_before: dict[str, Any] | None = None
    """What earlier sessions of this run spent (tokens, cost; set by ``open`` on resume)."""

    def write_rows(self, rows: list[RowRecords]) -> None:
        """Persist finished rows (called from a worker thread, one call at a time)."""
        raise NotImplementedError

    def begin_stage(self, stage: int) -> None:
        """Everything of the previous stage is committed; start recording ``stage``."""
        self.stage = stage

    def read_spill(self, stage: int) -> Iterator[dict[str, Any]]:
        """The rows spilled at the end of ``stage``, in commit order."""
        raise NotImplementedError

    def note_rows_seen(self, n: int) -> None:
        """The run has seen ``n`` input rows so far (kept for resume; called after each drive)."""

    def note_spent(self, spent: dict[str, Any]) -> None:
        """What the whole run has spent so far (tokens, cost), kept with the next commit so that
        a resumed run's budget counts it (called before each ``write_rows`` and before ``close``)."""

    def close(self, result: RunResult) -> None:
        """Finish the run; fill in-memory fields of ``result`` where the writer keeps them."""


class MemoryWriter(Writer):
    """Keeps every result in memory, returned in input order."""

    def __init__(self) -> None:
        self._rows: list[RowRecords] = []
        self._spills: dict[int, list[dict[str, Any]]] = {}

    def write_rows(self, rows: list[RowRecords]) -> None:
        self._rows.extend(rows)
        spill = self._spills.setdefault(self.stage, [])
        for rec in rows:
            spill.extend(rec.spill)

    def read_spill(self, stage: int) -> Iterator[dict[str, Any]]:
        return iter(self._spills.pop(stage, []))

    def close(self, result: RunResult) -> None:
        self._rows.sort(key=lambda r: r.order)
        outputs: dict[str, list[Result]] = {}
        for rec in self._rows:
            for step_id, row_id, value, reasoning in rec.outputs:
                outputs.setdefault(step_id, []).append(
                    Result(row_id=row_id, step_id=step_id, value=value, reasoning_content=reasoning)
                )
            result.errors.extend(rec.errors)
            result.flattened.extend(rec.flats)
        result.outputs = outputs
