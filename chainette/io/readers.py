"""Input readers: JSONL, JSON, CSV, Parquet, saved and Hub Hugging Face datasets.

``open_input(spec)`` returns an :class:`InputSource`, an iterable of :class:`RawRow`
read lazily (a 5 GB JSONL file is never loaded into memory). ``validate_rows`` turns
those into rows validated against a chain's input model, reporting a bad row with
file, line and field, and either raising :class:`~chainette.errors.InputError` or
recording it in ``<output_dir>/skipped_inputs.jsonl``.

Heavy libraries (``pyarrow``, ``datasets``) are imported only when their format is used.
"""

from __future__ import annotations

import csv
import gzip
import io
import json
import os
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Iterator, Literal

from chainette.errors import InputError

__all__ = [
    "InputSource",
    "RawRow",
    "SkipLog",
    "count_lines",
    "open_input",
    "validate_rows",
]

OnBad = Literal["fail", "skip"]

_JSONL = (".jsonl", ".ndjson", ".jsonl.gz", ".ndjson.gz")
_JSON = (".json", ".json.gz")
_CSV = (".csv", ".tsv", ".csv.gz", ".tsv.gz")
_PARQUET = (".parquet", ".pq")


@dataclass(slots=True)
class RawRow:
    """One input row before validation. ``data`` is ``None`` when the row is malformed."""

    line: int
    data: dict[str, Any] | None
    error: str | None = None


class InputSource:
    """A lazily read input. Iterate it for :class:`RawRow`; ``count()`` may return ``None``."""

    unit = "row"  # how positions are named in messages: "line" or "row"

    def __init__(self, display: str, columns: list[str] | None = None) -> None:
        self.display = display
        self.columns = columns

    def __iter__(self) -> Iterator[RawRow]:  # pragma: no cover - abstract
        raise NotImplementedError

    def count(self) -> int | None:
        """The number of rows if it can be known cheaply, else ``None``."""
        return None

    def _select(self, row: dict[str, Any], line: int) -> RawRow:
        if self.columns:
            missing = [c for c in self.columns if c not in row]
            if missing:
                return RawRow(line, None, f"missing column(s) {', '.join(missing)} (from --columns)")
            row = {c: row[c] for c in self.columns}
        return RawRow(line, row)


def _open_text(path: Path) -> io.TextIOBase:
    if path.suffix == ".gz":
        return io.TextIOWrapper(gzip.open(path, "rb"), encoding="utf-8", newline="")
    return open(path, encoding="utf-8", newline="")


def count_lines(path: str | Path, *, budget_s: float = 1.5) -> int | None:
    """Count lines with a buffered newline count (blank lines included, so it is an upper
    bound); ``None`` when counting takes longer than ``budget_s`` or the file is compressed."""
    path = Path(path)
    if path.suffix == ".gz":
        return None
    deadline = time.monotonic() + budget_s
    n = 0
    last = b"\n"
    with open(path, "rb") as fh:
        while True:
            chunk = fh.read(1 << 20)
            if not chunk:
                break
            n += chunk.count(b"\n")
            last = chunk[-1:]
            if time.monotonic() > deadline:
                return None
    return n + (0 if last == b"\n" else 1)


class JsonlSource(InputSource):
    unit = "line"

    def __init__(self, path: Path, columns: list[str] | None = None) -> None:
        super().__init__(str(path), columns)
        self.path = path

    def __iter__(self) -> Iterator[RawRow]:
        with _open_text(self.path) as fh:
            for lineno, line in enumerate(fh, start=1):
                if not line.strip():
                    continue
                try:
                    obj = json.loads(line)
                except json.JSONDecodeError as exc:
                    yield RawRow(lineno, None, f"malformed JSON: {exc.msg} at column {exc.colno}")
                    continue
                if not isinstance(obj, dict):
                    yield RawRow(lineno, None, f"expected a JSON object, got {type(obj).__name__}")
                    continue
                yield self._select(obj, lineno)

    def count(self) -> int | None:
        return count_lines(self.path)


class JsonSource(InputSource):
    """A JSON array of objects (loaded whole: use JSONL for large inputs)."""

    def __init__(self, path: Path, columns: list[str] | None = None) -> None:
        super().__init__(str(path), columns)
        self.path = path
        self._data: list[Any] | None = None
        self._as_jsonl: JsonlSource | None = None

    def _load(self) -> None:
        if self._data is not None or self._as_jsonl is not None:
            return
        with _open_text(self.path) as fh:
            text = fh.read()
        try:
            data = json.loads(text)
        except json.JSONDecodeError as exc:
            if exc.msg == "Extra data":  # JSON Lines saved with a .json name
                self._as_jsonl = JsonlSource(self.path, self.columns)
                self.unit = "line"
                return
            raise InputError(
                f"malformed JSON: {exc.msg} at column {exc.colno}", path=str(self.path), line=exc.lineno
            ) from None
        if isinstance(data, dict):
            lists = [v for v in data.values() if isinstance(v, list)]
            if len(lists) == 1 and len(data) == 1:
                data = lists[0]
            else:
                data = [data]
        if not isinstance(data, list):
            raise InputError("expected a JSON array of objects", path=str(self.path))
        self._data = data

    def __iter__(self) -> Iterator[RawRow]:
        self._load()
        if self._as_jsonl is not None:
            yield from self._as_jsonl
            return
        assert self._data is not None
        for i, obj in enumerate(self._data, start=1):
            if not isinstance(obj, dict):
                yield RawRow(i, None, f"expected a JSON object, got {type(obj).__name__}")
            else:
                yield self._select(obj, i)

    def count(self) -> int | None:
        self._load()
        if self._as_jsonl is not None:
            return self._as_jsonl.count()
        return len(self._data or [])


class CsvSource(InputSource):
    unit = "line"

    def __init__(self, path: Path, columns: list[str] | None = None) -> None:
        super().__init__(str(path), columns)
        self.path = path
        self.delimiter = "\t" if ".tsv" in path.suffixes else ","

    def __iter__(self) -> Iterator[RawRow]:
        with _open_text(self.path) as fh:
            reader = csv.DictReader(fh, delimiter=self.delimiter)
            start = 2
            for row in reader:
                if None in row:
                    yield RawRow(start, None, "more values than header columns")
                elif any(v is None for v in row.values()):
                    yield RawRow(start, None, "fewer values than header columns")
                else:
                    yield self._select(dict(row), start)
                start = reader.line_num + 1

    def count(self) -> int | None:
        n = count_lines(self.path)
        return None if n is None else max(n - 1, 0)


class ParquetSource(InputSource):
    def __init__(self, path: Path, columns: list[str] | None = None) -> None:
        super().__init__(str(path), columns)
        self.path = path

    def _file(self) -> Any:
        import pyarrow.parquet as pq

        try:
            return pq.ParquetFile(self.path)
        except Exception as exc:
            raise InputError(f"cannot read Parquet file: {exc}", path=str(self.path)) from None

    def __iter__(self) -> Iterator[RawRow]:
        pf = self._file()
        if self.columns:
            missing = [c for c in self.columns if c not in pf.schema_arrow.names]
            if missing:
                raise InputError(
                    f"column(s) {', '.join(missing)} not in the file; it has {', '.join(pf.schema_arrow.names)}",
                    path=str(self.path),
                )
        i = 0
        for batch in pf.iter_batches(batch_size=2048, columns=self.columns or None):
            for row in batch.to_pylist():
                i += 1
                yield RawRow(i, row)

    def count(self) -> int | None:
        return self._file().metadata.num_rows


class HFDatasetSource(InputSource):
    """A ``datasets.Dataset`` (saved directory or Hub split), read row by row (memory-mapped)."""

    def __init__(self, display: str, loader: Callable[[], Any], columns: list[str] | None = None) -> None:
        super().__init__(display, columns)
        self._loader = loader
        self._ds: Any = None

    def dataset(self) -> Any:
        if self._ds is None:
            ds = self._loader()
            if self.columns:
                missing = [c for c in self.columns if c not in ds.column_names]
                if missing:
                    raise InputError(
                        f"column(s) {', '.join(missing)} not in the dataset; it has {', '.join(ds.column_names)}",
                        path=self.display,
                    )
                ds = ds.select_columns(self.columns)
            self._ds = ds
        return self._ds

    def __iter__(self) -> Iterator[RawRow]:
        ds = self.dataset()
        i = 0
        for batch in ds.iter(batch_size=1024):
            keys = list(batch)
            n = len(batch[keys[0]]) if keys else 0
            for j in range(n):
                i += 1
                yield RawRow(i, {k: batch[k][j] for k in keys})

    def count(self) -> int | None:
        return len(self.dataset())


def _import_datasets() -> Any:
    try:
        import datasets
    except ImportError:
        raise InputError("reading Hugging Face datasets needs the 'datasets' package: "
                         "pip install 'chainette[datasets]'") from None
    return datasets


def _load_saved_dataset(path: Path) -> Any:
    datasets = _import_datasets()

    try:
        ds = datasets.load_from_disk(str(path))
    except Exception as exc:
        raise InputError(f"cannot load the saved Hugging Face dataset: {exc}", path=str(path)) from None
    if isinstance(ds, datasets.DatasetDict):
        splits = list(ds)
        if len(splits) == 1:
            return ds[splits[0]]
        raise InputError(
            f"this is a DatasetDict with splits {', '.join(splits)}; pass one split's directory, "
            f"e.g. -i {path / splits[0]}",
            path=str(path),
        )
    return ds


def _hub_reachable(timeout: float = 3.0) -> bool:
    """A quick TCP check of the Hub endpoint (``HF_ENDPOINT``), so offline fails fast."""
    if os.environ.get("HF_HUB_OFFLINE") in ("1", "true", "True"):
        return False
    import socket
    from urllib.parse import urlparse

    url = urlparse(os.environ.get("HF_ENDPOINT") or "https://huggingface.co")
    try:
        with socket.create_connection((url.hostname or "huggingface.co", url.port or 443), timeout=timeout):
            return True
    except OSError:
        return False


def _load_hub_dataset(name: str, split: str) -> Any:
    offline_now = not _hub_reachable()
    if offline_now:  # use the local cache only, without slow retries (read when the libraries import)
        os.environ["HF_HUB_OFFLINE"] = "1"
        os.environ["HF_DATASETS_OFFLINE"] = "1"
    try:
        import datasets
    except ImportError:
        raise InputError(
            "reading a Hugging Face dataset needs the 'datasets' package: pip install 'chainette[datasets]'",
            path=f"{name}/{split}",
        ) from None
    if offline_now:
        for mod_name, attr in (("huggingface_hub.constants", "HF_HUB_OFFLINE"), ("datasets.config", "HF_HUB_OFFLINE"),
                               ("datasets.config", "HF_DATASETS_OFFLINE")):
            mod = sys.modules.get(mod_name)
            if mod is not None and hasattr(mod, attr):
                setattr(mod, attr, True)
    try:
        return datasets.load_dataset(name, split=split)
    except Exception as exc:
        reason = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        offline = os.environ.get("HF_HUB_OFFLINE") in ("1", "true", "True") or os.environ.get("HF_DATASETS_OFFLINE")
        hint = (
            "the Hub is not reachable (offline mode); download the dataset on a connected machine and pass "
            "the directory written by dataset.save_to_disk(DIR), or a JSONL/Parquet export"
            if offline or any(w in reason.lower() for w in ("connect", "offline", "resolve", "reach"))
            else "check the dataset name and split (the form is NAME/SPLIT, e.g. imdb/test), or pass a local file"
        )
        if len(reason) > 300:
            reason = reason[:300] + "..."
        raise InputError(
            f"could not load Hugging Face dataset '{name}' split '{split}': {reason}. Fix: {hint}",
            path=f"{name}/{split}",
        ) from None


def open_input(spec: str | Path, *, columns: list[str] | None = None) -> InputSource:
    """Open an input by file extension, directory (saved HF dataset) or ``name/split`` (Hub)."""
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
        return HFDatasetSource(raw, lambda: _load_saved_dataset(path), columns)
    if path.exists():
        if not os.access(path, os.R_OK):
            raise InputError("permission denied: the file is not readable", path=raw)
        if name.endswith(_JSONL):
            return JsonlSource(path, columns)
        if name.endswith(_JSON):
            return JsonSource(path, columns)
        if name.endswith(_CSV):
            return CsvSource(path, columns)
        if name.endswith(_PARQUET):
            return ParquetSource(path, columns)
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
    return HFDatasetSource(raw, lambda: _load_hub_dataset(hub_name, split), columns)


# -- validation -------------------------------------------------------------------------


@dataclass
class SkipLog:
    """Records skipped rows to ``<output_dir>/skipped_inputs.jsonl``.

    Records are buffered until :meth:`start` (call it once the run directory is set up:
    the writer clears a stale ``skipped_inputs.jsonl`` when it opens), then streamed.
    ``records`` keeps the first ``keep`` records in memory for display.
    """

    path: Path | None
    count: int = 0
    records: list[dict[str, Any]] = field(default_factory=list)
    keep: int = 1000
    max_buffer: int = 100_000
    _fh: Any = None
    _started: bool = False
    _buffer: list[str] = field(default_factory=list)

    def add(self, record: dict[str, Any]) -> None:
        self.count += 1
        if len(self.records) < self.keep:
            self.records.append(record)
        line = json.dumps(record, ensure_ascii=False, default=str) + "\n"
        if self._fh is not None:
            self._fh.write(line)
            self._fh.flush()
        elif not self._started and len(self._buffer) < self.max_buffer:
            self._buffer.append(line)

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
        self._fh.flush()
        self._buffer = []

    def close(self) -> None:
        if not self._started and self._buffer and self.path is not None and self.path.parent.exists():
            self.start()
        if self._fh is not None:
            self._fh.close()
            self._fh = None


def _describe_validation(exc: Any) -> tuple[str | None, str]:
    errors = exc.errors(include_url=False)
    first_field = ".".join(str(p) for p in errors[0]["loc"]) if errors and errors[0]["loc"] else None
    parts = []
    for err in errors[:5]:
        loc = ".".join(str(p) for p in err["loc"])
        parts.append(f"{loc}: {err['msg']}" if loc else err["msg"])
    if len(errors) > 5:
        parts.append(f"... {len(errors) - 5} more")
    return first_field, "; ".join(parts)


def validate_rows(
    source: InputSource,
    model: Any = None,
    *,
    on_bad: OnBad = "fail",
    skip_log: SkipLog | None = None,
    on_row: Callable[[], None] | None = None,
) -> Iterator[Any]:
    """Yield validated rows (model instances, or dicts when ``model`` is ``None``), lazily.

    A skipped row is yielded as :data:`chainette.core.row.SKIPPED` so that row ids stay equal
    to positions in the input.

    A malformed or invalid row raises :class:`InputError` (``on_bad="fail"``) naming the
    file, line and field, or is recorded in ``skip_log`` and skipped (``on_bad="skip"``).
    """
    from pydantic import ValidationError

    from chainette.core.row import SKIPPED

    for raw in source:
        if on_row is not None:
            on_row()
        fld: str | None = None
        if raw.data is None:
            message = raw.error or "malformed row"
        elif model is None:
            yield raw.data
            continue
        else:
            try:
                yield model.model_validate(raw.data)
                continue
            except ValidationError as exc:
                fld, message = _describe_validation(exc)
                message = f"does not match {model.__name__}: {message}"
        if on_bad == "fail":
            hint = (". Fix the input, or pass --on-bad-input skip to skip bad rows "
                    "(they are listed in <output_dir>/skipped_inputs.jsonl)")
            if source.unit == "line":
                err = InputError(message + hint, path=source.display, line=raw.line, field=fld)
            else:
                err = InputError(f"row {raw.line}: {message}{hint}", path=source.display, field=fld)
                err.line = raw.line
            raise err
        if skip_log is not None:
            skip_log.add({"source": source.display, "line": raw.line, "unit": source.unit,
                          "field": fld, "error": message})
        yield SKIPPED  # keeps the following rows' ids equal to their position in the input
