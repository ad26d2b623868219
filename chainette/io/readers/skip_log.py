"""The record of skipped input: ``<output_dir>/skipped_inputs.jsonl`` (``--on-bad-input skip``)."""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

__all__ = ["SkipLog"]


@dataclass
class SkipLog:
    """Records skipped rows to ``<output_dir>/skipped_inputs.jsonl``.

    Records are buffered until :meth:`start` (call it once the run directory is set up:
    the writer clears a stale ``skipped_inputs.jsonl`` when it opens), then streamed.
    ``records`` keeps the first ``keep`` records in memory for display. Past ``max_buffer``
    buffered records, the rest are counted and one closing record says how many were not
    written (with the CLI at most a hundred or so are ever buffered).
    """

    path: Path | None
    count: int = 0
    records: list[dict[str, Any]] = field(default_factory=list)
    keep: int = 1000
    max_buffer: int = 100_000
    _fh: Any = None
    _started: bool = False
    _buffer: list[str] = field(default_factory=list)
    _unbuffered: int = 0

    def add(self, record: dict[str, Any]) -> None:
        self.count += 1
        if len(self.records) < self.keep:
            self.records.append(record)
        line = json.dumps(record, ensure_ascii=False, default=str) + "\n"
        if self._fh is not None:
            self._fh.write(line)
            self._fh.flush()
        elif not self._started and self.path is not None:
            if len(self._buffer) < self.max_buffer:
                self._buffer.append(line)
            else:
                self._unbuffered += 1

    def start(self) -> None:
        """Open the file (truncating it) and write what was buffered."""
        if self._started:
            return
        self._started = True
        if self.path is None:
            return
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._fh = open(self.path, "w", encoding="utf-8")
        self._fh.writelines(self._buffer)
        if self._unbuffered:
            self._fh.write(
                json.dumps(
                    {
                        "error": f"{self._unbuffered} more skipped row(s) before the run started "
                        "were not recorded (buffer full)"
                    }
                )
                + "\n"
            )
        self._fh.flush()
        self._buffer = []

    def close(self) -> None:
        if not self._started and self._buffer and self.path is not None and self.path.parent.exists():
            self.start()
        if self._fh is not None:
            self._fh.close()
            self._fh = None
