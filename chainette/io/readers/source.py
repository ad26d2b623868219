"""What every reader yields: :class:`RawRow` items from an :class:`InputSource`, within :class:`ReadLimits`.

A reader never raises for a problem in the file's *content*: it yields a ``RawRow`` whose
``error`` says what is wrong and where, and :func:`~chainette.io.readers.validate.validate_rows`
decides (``--on-bad-input``) whether that stops the run or is recorded and skipped. Problems
with the *argument* (no such file, unsupported suffix, unreadable) raise
:class:`~chainette.errors.InputError` from :func:`~chainette.io.readers.open.open_input`.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

__all__ = ["DEFAULT_LIMITS", "InputSource", "RawRow", "ReadLimits"]


@dataclass(frozen=True, slots=True)
class ReadLimits:
    """Bounds that keep one hostile input from exhausting memory (documented in docs/cli.md).

    ``max_line_bytes``: the longest line (JSONL) or record (CSV, across its lines) that is read;
    a longer one is reported and skipped without being held in memory.
    ``max_json_bytes``: the largest ``.json`` file (after decompression), which is loaded whole.
    ``max_depth``: the deepest nesting of arrays and objects inside one row.
    """

    max_line_bytes: int = 16 * 1024 * 1024
    max_json_bytes: int = 256 * 1024 * 1024
    max_depth: int = 100


DEFAULT_LIMITS = ReadLimits()


@dataclass(slots=True)
class RawRow:
    """One input row before validation; ``data`` is ``None`` when it cannot be used.

    ``line`` is where it starts (a line number, or a row number when ``unit`` is ``"row"``)
    and ``end_line`` where it ends when it spans several lines (a CSV record with a quoted
    newline). ``positions`` is how many input positions (row ids) it takes: 1 for a row, good
    or bad; 0 for a problem that is not one row (an unreadable file, or the unreadable rest of
    one), which is reported but takes no row id.
    """

    line: int | None
    data: dict[str, Any] | None
    error: str | None = None
    end_line: int | None = None
    positions: int = 1
    unit: str | None = None  # overrides the source's unit (a JSON syntax error has a line, not a row)


class InputSource:
    """A lazily read input. Iterate it for :class:`RawRow`; ``count()`` may return ``None``.

    ``file_columns`` is the list of columns the file declares (a CSV header, a Parquet schema),
    set once iteration has started, or ``None`` for schemaless formats (JSON, JSONL).
    """

    unit = "row"  # how positions are named in messages: "line" or "row"

    def __init__(self, display: str, columns: list[str] | None = None) -> None:
        self.display = display
        self.columns = columns
        self.file_columns: list[str] | None = None
        self.empty_detail = "the input has no rows"

    def __iter__(self) -> Iterator[RawRow]:  # pragma: no cover - abstract
        raise NotImplementedError

    def count(self) -> int | None:
        """The number of rows if it can be known cheaply, else ``None``; never raises for bad content."""
        return None

    def _select(self, row: dict[str, Any], line: int, **kw: Any) -> RawRow:
        """Keep only the ``--columns`` of ``row`` (a row lacking one of them is an error)."""
        if self.columns:
            missing = [c for c in self.columns if c not in row]
            if missing:
                have = f"; it has {', '.join(map(str, row))}" if row else ""
                return RawRow(line, None, f"missing column(s) {', '.join(missing)} (from --columns){have}", **kw)
            row = {c: row[c] for c in self.columns}
        return RawRow(line, row, **kw)


def file_problem(message: str, line: int | None = None, unit: str = "line") -> RawRow:
    """A problem with the file rather than one row (it takes no row id)."""
    return RawRow(line, None, message, positions=0, unit=unit)
