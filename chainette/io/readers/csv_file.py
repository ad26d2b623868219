"""CSV and TSV (optionally ``.gz``): a header line, then one row per record, read lazily.

Records are parsed strictly (Python's ``csv`` with ``strict=True``) from the bounded,
per-line-decoded lines of :mod:`~chainette.io.readers.lines`, so nothing is silently glued
together or cut:

* a record that cannot be completed (a quote that is never closed, text after a closing
  quote, a record over ``ReadLimits.max_line_bytes``, an unreadable line inside a quoted
  field) is one bad row at the line where it starts, and reading resumes at the next line;
* a row with more or fewer values than the header is a bad row;
* a header that repeats a column name is a problem with the file (values would be merged).

A field may hold at most 131,072 characters: that is the ``csv`` module's limit, which is
process-wide, so Chainette does not raise it; a longer field is a bad row (use JSON Lines).
"""

from __future__ import annotations

import csv
from collections import deque
from collections.abc import Iterator
from pathlib import Path

from chainette.io.readers.lines import Line, count_lines, open_binary, read_lines
from chainette.io.readers.source import (
    DEFAULT_LIMITS,
    InputSource,
    RawRow,
    ReadLimits,
    file_problem,
)

__all__ = ["CsvSource"]


class _Unreadable(Exception):
    def __init__(self, line: Line) -> None:
        self.line = line


class _TooLong(Exception):
    pass


class _Feed:
    """The lines given to ``csv.reader``: lines to read again first, then the file's. It keeps
    the lines of the record being parsed, so a broken record can be re-read from its 2nd line."""

    def __init__(self, lines: Iterator[Line], max_record: int) -> None:
        self.lines = lines
        self.again: deque[Line] = deque()
        self.record: list[Line] = []
        self.size = 0
        self.max_record = max_record

    def start_record(self) -> None:
        self.record = []
        self.size = 0

    def __iter__(self) -> _Feed:
        return self

    def __next__(self) -> str:
        line = self.again.popleft() if self.again else next(self.lines)
        self.record.append(line)
        if line.text is None:
            raise _Unreadable(line)
        self.size += len(line.text)
        if self.size > self.max_record:
            raise _TooLong
        return line.text

    def read_again_from_second_line(self) -> None:
        self.again.extendleft(reversed(self.record[1:]))


def _explain(exc: csv.Error, first: int, last: int) -> str:
    msg = str(exc)
    span = f" (the quoted field runs from line {first} to line {last})" if last > first else ""
    if "unexpected end of data" in msg:
        return (
            f"unbalanced quotes: a quoted field that starts on this line is never closed (no closing quote up "
            f"to the end of the file, line {last}); close the quote, or double a quote that is part of the "
            'text ("")'
        )
    if "expected after" in msg:
        return (
            f"a closing quote is followed by more text ({msg}){span}; a quote inside a quoted field must be "
            'doubled ("")'
        )
    if "new-line character seen in unquoted field" in msg:
        return (
            "a bare carriage return (\\r) inside an unquoted field: the file may use old Mac line endings; "
            "convert them to \\n, or quote the field"
        )
    if "field larger than field limit" in msg:
        return (
            f"a field is longer than {csv.field_size_limit()} characters (the limit of Python's csv module); "
            "use JSON Lines for longer values"
        )
    return f"malformed CSV: {msg}{span}"


class CsvSource(InputSource):
    unit = "line"

    def __init__(self, path: Path, columns: list[str] | None = None, limits: ReadLimits = DEFAULT_LIMITS) -> None:
        super().__init__(str(path), columns)
        self.path = path
        self.limits = limits
        self.delimiter = "\t" if ".tsv" in path.suffixes else ","
        self.empty_detail = "the file is empty (not even a header line)"

    def _records(self, feed: _Feed) -> Iterator[tuple[list[str] | None, str | None, int, int, bool]]:
        """``(fields, error, first line, last line, fatal)`` per record; blank lines are left out."""
        reader = csv.reader(feed, delimiter=self.delimiter, strict=True)
        while True:
            feed.start_record()
            try:
                fields = next(reader)
            except StopIteration:
                return
            except _Unreadable as bad:
                first = feed.record[0].number
                if bad.line.fatal:
                    partial = f" (the record that starts on line {first} is incomplete)" if len(feed.record) > 1 else ""
                    yield None, f"{bad.line.error}{partial}", bad.line.number, bad.line.number, True
                    return
                if len(feed.record) == 1:  # the bad line was a record of its own
                    reader = csv.reader(feed, delimiter=self.delimiter, strict=True)
                    yield None, bad.line.error, first, first, False
                    continue
                error = (
                    f"line {bad.line.number}, inside a quoted field that starts here, cannot be read: {bad.line.error}"
                )
            except _TooLong:
                first = feed.record[0].number
                error = (
                    f"a record longer than {self.limits.max_line_bytes} bytes (ReadLimits.max_line_bytes) "
                    f"starts here (read up to line {feed.record[-1].number}); is a quote never closed?"
                )
            except csv.Error as exc:
                first = feed.record[0].number if feed.record else 0
                error = _explain(exc, first, feed.record[-1].number if feed.record else first)
            else:
                if fields:
                    yield fields, None, feed.record[0].number, feed.record[-1].number, False
                continue
            feed.read_again_from_second_line()  # only the first line is given up; the rest is read again
            reader = csv.reader(feed, delimiter=self.delimiter, strict=True)
            yield None, error, first, first, False

    def __iter__(self) -> Iterator[RawRow]:
        try:
            fh = open_binary(self.path)
        except OSError as exc:
            yield file_problem(f"the file cannot be read: {exc}")
            return
        with fh:
            feed = _Feed(read_lines(fh, self.limits.max_line_bytes), self.limits.max_line_bytes)
            header: list[str] | None = None
            for fields, error, first, last, fatal in self._records(feed):
                end = last if last > first else None
                if fatal:
                    yield file_problem(error or "unreadable", first)
                    return
                if header is None:
                    if fields is None:
                        yield file_problem(f"the header line cannot be read: {error}", first)
                        return
                    dupes = sorted({c for c in fields if fields.count(c) > 1})
                    if dupes:
                        yield file_problem(
                            f"the header repeats column name(s) {', '.join(map(repr, dupes))}; "
                            "their values would be merged: rename them",
                            first,
                        )
                        return
                    header = fields
                    self.file_columns = list(header)
                    self.empty_detail = "the file has a header line but no rows"
                    continue
                if fields is None:
                    yield RawRow(first, None, error, end_line=end)
                elif len(fields) != len(header):
                    more = "more" if len(fields) > len(header) else "fewer"
                    yield RawRow(
                        first,
                        None,
                        f"{len(fields)} value{'s' if len(fields) != 1 else ''}, {more} than the {len(header)} header columns "
                        f"({', '.join(header)})",
                        end_line=end,
                    )
                else:
                    yield self._select(dict(zip(header, fields, strict=True)), first, end_line=end)

    def count(self) -> int | None:
        n = count_lines(self.path)
        return None if n is None else max(n - 1, 0)
