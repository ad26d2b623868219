"""Parquet files, read one batch at a time (``pyarrow`` is imported only when used).

A file whose footer cannot be read (cut short, not Parquet) is a problem with the file. When
a later part cannot be read or decoded, the rows before it are kept and the rest is reported
as one problem naming the first row that could not be read.
"""

from __future__ import annotations

import importlib.util
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from chainette.errors import InputError
from chainette.io.readers.source import (
    DEFAULT_LIMITS,
    InputSource,
    RawRow,
    ReadLimits,
    file_problem,
)

__all__ = ["ParquetSource"]

_BATCH = 2048


def _reason(exc: BaseException) -> str:
    text = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
    return text[:300] + ("..." if len(text) > 300 else "")


class ParquetSource(InputSource):
    def __init__(self, path: Path, columns: list[str] | None = None, limits: ReadLimits = DEFAULT_LIMITS) -> None:
        if importlib.util.find_spec("pyarrow") is None:
            raise InputError(
                "reading Parquet needs the 'pyarrow' package: pip install 'chainette[parquet]'", path=str(path)
            )
        super().__init__(str(path), columns)
        self.path = path
        self.limits = limits
        self.empty_detail = "the file has no rows"

    def _file(self) -> tuple[Any, str | None]:
        import pyarrow.parquet as pq

        try:
            try:  # pages written with a checksum are verified (pyarrow >= 15)
                return pq.ParquetFile(self.path, page_checksum_verification=True), None
            except TypeError:  # pragma: no cover - older pyarrow
                return pq.ParquetFile(self.path), None
        except Exception as exc:  # pyarrow raises ArrowInvalid, OSError, ... for a broken file
            return None, f"cannot read the Parquet file (cut short or not Parquet?): {_reason(exc)}"

    def __iter__(self) -> Iterator[RawRow]:
        pf, problem = self._file()
        if problem:
            yield file_problem(problem, unit="row")
            return
        try:
            names = list(pf.schema_arrow.names)
            groups = pf.num_row_groups
        except Exception as exc:
            yield file_problem(f"cannot read the Parquet schema: {_reason(exc)}", unit="row")
            return
        self.file_columns = names
        missing = [c for c in self.columns or [] if c not in names]
        selected = None if missing else self.columns
        i = 0
        for group in range(groups):
            batches = pf.iter_batches(batch_size=_BATCH, row_groups=[group], columns=selected)
            while True:
                try:
                    batch = next(batches, None)
                    rows = None if batch is None else batch.to_pylist()
                except Exception as exc:  # a corrupt page, bad UTF-8 in a string column, ...
                    yield file_problem(
                        f"this row and all after it (row group {group + 1} of {groups}) cannot be "
                        f"read: {_reason(exc)}; the rows before it were read",
                        i + 1,
                        unit="row",
                    )
                    return
                if rows is None:
                    break
                for row in rows:
                    i += 1
                    yield self._select(row, i) if missing else RawRow(i, row)

    def count(self) -> int | None:
        pf, problem = self._file()
        try:
            return None if problem else int(pf.metadata.num_rows)
        except Exception:
            return None
