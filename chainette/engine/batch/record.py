"""``BatchRecord``: one batch as the run journals it, and ``BatchStore``, where records live.

A record is written before anything is sent (state ``prepared``: its request file is on
disk), again when its input file is uploaded (``uploaded``, ``input_file_id``), when the
batch is created (``batch_id``, then the provider's own status) and when its results were
downloaded and handed out (``collected``). A resumed run reads the records back: a live
batch is polled again, never created twice (a ``prepared``/``uploaded`` record is first
looked for at the provider by the metadata it was created with), and finished batches'
result files are read from the run directory.

The store is implemented in the io layer (:class:`chainette.io.batch_journal.BatchJournal`:
``.chainette/batches.json`` plus the files under ``.chainette/batches/``).
"""

from __future__ import annotations

import time
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path
from typing import Any, Protocol

__all__ = ["BatchRecord", "BatchStore"]


@dataclass
class BatchRecord:
    key: str
    """our name for the batch (``<engine>-<n>``), also its request file's name"""
    engine: str
    kind: str
    """the transport: ``openai`` (a Batch API) or ``vllm-offline`` (``vllm run-batch``)"""
    requests: int = 0
    bytes: int = 0
    state: str = "prepared"
    """``prepared`` | ``uploaded`` | the provider's status (validating, in_progress, finalizing,
    completed, failed, expired, cancelling, cancelled)"""
    input_file_id: str | None = None
    batch_id: str | None = None
    output_file_id: str | None = None
    error_file_id: str | None = None
    request_counts: dict[str, int] = field(default_factory=dict)
    """the provider's own counts: total, completed, failed"""
    errors: str = ""
    """why a batch failed (the provider's ``errors``)"""
    collected: bool = False
    """results downloaded and handed to the rows"""
    cancel_requested: bool = False
    requeue_of: str | None = None
    pid: int | None = None
    """``vllm-offline``: the ``vllm run-batch`` process"""
    created_at: float = field(default_factory=time.time)
    updated_at: float = field(default_factory=time.time)

    @property
    def live(self) -> bool:
        """Submitted (or about to be) and not yet collected."""
        return not self.collected

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> BatchRecord:
        names = {f.name for f in fields(cls)}
        return cls(**{k: v for k, v in data.items() if k in names})


class BatchStore(Protocol):
    """Where an engine in batch mode keeps its records and files (one per run)."""

    run_key: str
    """a short random id of the run, the first part of every ``custom_id``"""

    def records(self, engine: str | None = None) -> list[BatchRecord]:
        """The journaled records (of ``engine``), oldest first."""
        ...

    def new_key(self, engine: str) -> str:
        """A record key not used before in this run (``<engine>-<n>``)."""
        ...

    def save(self, record: BatchRecord) -> None:
        """Add or replace ``record`` and write the journal atomically."""
        ...

    def request_path(self, key: str) -> Path:
        """Where the request file of batch ``key`` is written."""
        ...

    def result_path(self, key: str, kind: str) -> Path:
        """Where its downloaded ``output`` or ``errors`` file goes."""
        ...

    def log_path(self, key: str) -> Path:
        """Where a local process (``vllm run-batch``) logs."""
        ...

    def cancel_requested(self) -> set[str]:
        """Batch ids (or keys) that ``chainette batches --cancel`` cancelled."""
        ...
