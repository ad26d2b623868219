"""A ``.json`` file: an array of objects (or ``{"key": [...]}``, or one object), loaded whole.

Because it is loaded whole, a file larger than ``ReadLimits.max_json_bytes`` is refused with
the advice to convert it to JSON Lines. A file that is really JSON Lines under a ``.json``
name is read as JSON Lines (lazily).
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from chainette.io.readers.json_values import (
    Parsed,
    decode_error,
    json_type,
    loads,
    parse_object,
    value_error,
    value_problem,
)
from chainette.io.readers.jsonl import JsonlSource
from chainette.io.readers.lines import open_binary, utf8_problem
from chainette.io.readers.source import (
    DEFAULT_LIMITS,
    InputSource,
    RawRow,
    ReadLimits,
    file_problem,
)

__all__ = ["JsonSource"]


def _line_col(data: bytes | str, pos: int) -> tuple[int, int]:
    nl = "\n" if isinstance(data, str) else b"\n"
    line = data.count(nl, 0, pos) + 1  # type: ignore[arg-type]
    return line, pos - (data.rfind(nl, 0, pos) + 1) + 1  # type: ignore[arg-type]


class JsonSource(InputSource):
    """Rows are numbered by their position in the array (``row N``)."""

    def __init__(self, path: Path, columns: list[str] | None = None, limits: ReadLimits = DEFAULT_LIMITS) -> None:
        super().__init__(str(path), columns)
        self.path = path
        self.limits = limits
        self.empty_detail = "the file holds no rows (an empty file or an empty array)"
        self._rows: list[Any] | None = None
        self._problem: RawRow | None = None
        self._as_jsonl: JsonlSource | None = None
        self._parsed: Parsed | None = None

    def _looks_like_jsonl(self) -> bool:
        """The first line alone is a whole JSON object (JSON Lines saved with a .json name)."""
        try:
            with open_binary(self.path) as fh:
                first = fh.readline(self.limits.max_line_bytes + 1)
            return parse_object(first.decode("utf-8-sig"), self.limits.max_depth)[0] is not None
        except (OSError, EOFError, ValueError):
            return False

    def _load(self) -> None:
        if self._rows is not None or self._problem is not None or self._as_jsonl is not None:
            return
        try:
            with open_binary(self.path) as fh:
                data = fh.read(self.limits.max_json_bytes + 1)
        except (OSError, EOFError) as exc:
            self._problem = file_problem(f"the file cannot be read (cut short or corrupt?): {exc}")
            return
        if len(data) > self.limits.max_json_bytes:
            if self._looks_like_jsonl():
                self._as_jsonl = JsonlSource(self.path, self.columns, self.limits)
                return
            self._problem = file_problem(
                f"the file is larger than {self.limits.max_json_bytes} bytes (ReadLimits.max_json_bytes) and a "
                ".json file is loaded whole; convert it to JSON Lines (one object per line, .jsonl), "
                "e.g. jq -c '.[]' in.json > in.jsonl"
            )
            return
        try:
            text = data.decode("utf-8-sig")
        except UnicodeDecodeError as exc:
            line, col = _line_col(data, exc.start)
            self._problem = file_problem(
                utf8_problem(data, exc, where=f"of the file (line {line}, column {col})"), line
            )
            return
        if not text.strip(" \t\r\n"):
            self._rows = []
            return
        try:
            parsed = loads(text, self.limits.max_depth)
        except json.JSONDecodeError as exc:
            if exc.msg == "Extra data" and self._looks_like_jsonl():
                self._as_jsonl = JsonlSource(self.path, self.columns, self.limits)
                return
            self._problem = file_problem(f"malformed JSON: {decode_error(exc)}", exc.lineno)
            return
        except RecursionError:
            self._problem = file_problem(f"nested more than {self.limits.max_depth} levels deep")
            return
        except ValueError as exc:
            self._problem = file_problem(f"malformed JSON: {value_error(exc)}")
            return
        value = parsed.value
        if type(value) is dict:  # not an object that repeats a key: that one is a (bad) row itself
            lists = [v for v in value.values() if isinstance(v, list)]
            value = lists[0] if len(lists) == 1 and len(value) == 1 else [value]
        elif isinstance(value, dict):
            value = [value]
        if not isinstance(value, list):
            self._problem = file_problem(f"expected a JSON array of objects, got {json_type(value)}")
            return
        self._rows = value
        self._parsed = parsed

    def __iter__(self) -> Iterator[RawRow]:
        self._load()
        if self._as_jsonl is not None:
            self.unit = "line"
            yield from self._as_jsonl
            return
        if self._problem is not None:
            yield self._problem
            return
        for i, obj in enumerate(self._rows or [], start=1):
            if not isinstance(obj, dict):
                yield RawRow(i, None, f"expected a JSON object, got {json_type(obj)}")
                continue
            problem = value_problem(obj, self.limits.max_depth, self._parsed) if self._parsed else None
            yield RawRow(i, None, problem) if problem else self._select(obj, i)

    def count(self) -> int | None:
        self._load()
        if self._as_jsonl is not None:
            return self._as_jsonl.count()
        return None if self._rows is None else len(self._rows)
