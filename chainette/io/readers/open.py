"""Choosing the reader for ``-i``: by file suffix, a saved-dataset directory, or ``NAME/SPLIT`` for the Hub.

Problems with the argument itself (no such file, an unsupported suffix, an unreadable file, a
directory that is not a saved dataset) raise :class:`~chainette.errors.InputError` here; problems
inside the file are reported row by row while it is read.
"""

from __future__ import annotations

import os
from pathlib import Path

from chainette.errors import InputError
from chainette.io.readers import source as _source
from chainette.io.readers.csv_file import CsvSource
from chainette.io.readers.hf import (
    HFDatasetSource,
    load_hub_dataset,
    load_saved_dataset,
)
from chainette.io.readers.json_file import JsonSource
from chainette.io.readers.jsonl import JsonlSource
from chainette.io.readers.parquet import ParquetSource
from chainette.io.readers.source import InputSource, ReadLimits

__all__ = ["open_input"]

_JSONL = (".jsonl", ".ndjson", ".jsonl.gz", ".ndjson.gz")
_JSON = (".json", ".json.gz")
_CSV = (".csv", ".tsv", ".csv.gz", ".tsv.gz")
_PARQUET = (".parquet", ".pq")


def open_input(spec: str | Path, *, columns: list[str] | None = None, limits: ReadLimits | None = None) -> InputSource:
    """Open an input by file extension, directory (saved HF dataset) or ``name/split`` (Hub).

    ``limits`` bounds what one line, record or ``.json`` file may take (default
    :data:`~chainette.io.readers.source.DEFAULT_LIMITS`).
    """
    limits = limits or _source.DEFAULT_LIMITS
    columns = [c.strip() for c in columns if c.strip()] if columns else None
    raw = str(spec)
    path = Path(raw).expanduser()
    name = path.name.lower()
    if path.is_dir():
        if not any((path / f).exists() for f in ("state.json", "dataset_info.json", "dataset_dict.json")):
            raise InputError(
                "this directory is not a saved Hugging Face dataset (no state.json / dataset_dict.json); "
                "pass a .jsonl, .json, .csv or .parquet file, or a directory written by save_to_disk()",
                path=raw,
            )
        return HFDatasetSource(raw, lambda: load_saved_dataset(path), columns)
    if path.exists():
        if not os.access(path, os.R_OK):
            raise InputError("permission denied: the file is not readable", path=raw)
        for suffixes, kind in (
            (_JSONL, JsonlSource),
            (_JSON, JsonSource),
            (_CSV, CsvSource),
            (_PARQUET, ParquetSource),
        ):
            if name.endswith(suffixes):
                return kind(path, columns, limits)
        raise InputError(
            f"unsupported input format '{path.suffix or name}'; use .jsonl, .json, .csv, .parquet "
            "(optionally .gz for text formats), a saved dataset directory, or NAME/SPLIT for the Hub",
            path=raw,
        )
    looks_like_file = name.endswith(_JSONL + _JSON + _CSV + _PARQUET) or raw.startswith((".", "/", "~"))
    if looks_like_file or "/" not in raw.strip("/"):
        raise InputError(
            "file not found; check the path (for a Hugging Face Hub dataset write NAME/SPLIT, e.g. imdb/test)",
            path=raw,
        )
    hub_name, _, split = raw.strip("/").rpartition("/")
    return HFDatasetSource(raw, lambda: load_hub_dataset(hub_name, split), columns)
