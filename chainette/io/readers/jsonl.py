"""JSON Lines (``.jsonl``, ``.ndjson``, optionally ``.gz``): one object per line, read lazily.

Blank lines (only spaces, tabs, CR) are not rows. Every other line is one row: a line that is
not UTF-8, too long, not JSON or not an object becomes a bad row naming its line.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

from chainette.io.readers.json_values import parse_object
from chainette.io.readers.lines import count_lines, open_binary, read_lines
from chainette.io.readers.source import (
    DEFAULT_LIMITS,
    InputSource,
    RawRow,
    ReadLimits,
    file_problem,
)

__all__ = ["JsonlSource"]

_BLANK = " \t\r\n"


class JsonlSource(InputSource):
    unit = "line"

    def __init__(self, path: Path, columns: list[str] | None = None, limits: ReadLimits = DEFAULT_LIMITS) -> None:
        super().__init__(str(path), columns)
        self.path = path
        self.limits = limits
        self.empty_detail = "the file is empty (no JSON lines)"

    def __iter__(self) -> Iterator[RawRow]:
        try:
            fh = open_binary(self.path)
        except OSError as exc:
            yield file_problem(f"the file cannot be read: {exc}")
            return
        with fh:
            for line in read_lines(fh, self.limits.max_line_bytes):
                if line.fatal:
                    yield file_problem(line.error or "unreadable", line.number)
                    return
                if line.text is None:
                    yield RawRow(line.number, None, line.error)
                    continue
                if not line.text.strip(_BLANK):
                    continue
                obj, error = parse_object(line.text.rstrip("\r\n"), self.limits.max_depth)
                yield RawRow(line.number, None, error) if obj is None else self._select(obj, line.number)

    def count(self) -> int | None:
        return count_lines(self.path)
