"""Hugging Face datasets: a directory written by ``save_to_disk``, or a Hub dataset ``NAME/SPLIT``.

``datasets`` and ``huggingface_hub`` are imported only when such an input is used.

Offline use changes no process-wide state. When ``HF_HUB_OFFLINE`` (or ``HF_DATASETS_OFFLINE``)
is set, or a quick TCP check finds the Hub unreachable, the dataset is read from the local Hub
cache through an argument of that one call - ``snapshot_download(..., local_files_only=True)``
gives the cached snapshot's directory, which ``load_dataset`` then reads as a local dataset -
instead of setting ``HF_HUB_OFFLINE`` in ``os.environ`` (which would switch every other thread
and every later call in the process offline too, and which the libraries read only at import).
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

from chainette.errors import InputError
from chainette.io.readers.source import InputSource, RawRow

__all__ = ["HFDatasetSource", "hub_reachable", "load_hub_dataset", "load_saved_dataset", "offline_requested"]

_TRUE = ("1", "true", "yes", "on")
_OFFLINE_HINT = (
    "download the dataset on a connected machine (load_dataset caches it), or pass the directory "
    "written by dataset.save_to_disk(DIR), or a JSONL/Parquet export"
)


class HFDatasetSource(InputSource):
    """A ``datasets.Dataset`` (saved directory or Hub split), read batch by batch (memory-mapped)."""

    def __init__(self, display: str, loader: Callable[[], Any], columns: list[str] | None = None) -> None:
        super().__init__(display, columns)
        self._loader = loader
        self._ds: Any = None
        self.empty_detail = "the dataset has no rows"

    def dataset(self) -> Any:
        if self._ds is None:
            ds = self._loader()
            self.file_columns = list(ds.column_names)
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


def _import_datasets(where: str) -> Any:
    try:
        import datasets
    except ImportError:
        raise InputError(
            "reading a Hugging Face dataset needs the 'datasets' package: pip install 'chainette[datasets]'", path=where
        ) from None
    return datasets


def load_saved_dataset(path: Path) -> Any:
    """A dataset saved with ``save_to_disk`` (a DatasetDict must have exactly one split)."""
    datasets = _import_datasets(str(path))
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


def offline_requested() -> bool:
    """The user asked for offline mode in the environment (read, never written)."""
    return any(os.environ.get(k, "").strip().lower() in _TRUE for k in ("HF_HUB_OFFLINE", "HF_DATASETS_OFFLINE"))


def hub_reachable(timeout: float = 3.0) -> bool:
    """A quick TCP check of the Hub endpoint (``HF_ENDPOINT``), so that offline fails fast."""
    import socket
    from urllib.parse import urlparse

    url = urlparse(os.environ.get("HF_ENDPOINT") or "https://huggingface.co")
    try:
        with socket.create_connection((url.hostname or "huggingface.co", url.port or 443), timeout=timeout):
            return True
    except OSError:
        return False


def cached_snapshot(name: str, hub_cache: str | Path | None = None) -> str | None:
    """The directory of ``name``'s snapshot in the local Hub cache, without any network access."""
    try:
        from huggingface_hub import snapshot_download
    except ImportError:
        return None
    for revision in (None, "refs/convert/parquet"):  # the repository, then the Hub's Parquet export
        try:
            return str(
                snapshot_download(
                    name, repo_type="dataset", revision=revision, cache_dir=hub_cache, local_files_only=True
                )
            )
        except Exception:  # not cached (LocalEntryNotFoundError), or a malformed name
            continue
    return None


def _reason(exc: BaseException) -> str:
    reason = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
    return reason[:300] + ("..." if len(reason) > 300 else "")


def load_hub_dataset(
    name: str,
    split: str,
    *,
    offline: bool | None = None,
    hub_cache: str | Path | None = None,
    datasets_cache: str | None = None,
) -> Any:
    """Load split ``split`` of Hub dataset ``name``; offline (``None``: decide now), from the local cache."""
    where = f"{name}/{split}"
    datasets = _import_datasets(where)
    if offline is None:
        offline = offline_requested() or not hub_reachable()
    kwargs: dict[str, Any] = {"split": split}
    if datasets_cache is not None:
        kwargs["cache_dir"] = datasets_cache
    source = name
    if offline:
        snapshot = cached_snapshot(name, hub_cache)
        if snapshot is not None:
            source = snapshot
        elif not offline_requested():  # the libraries are not in offline mode: they would try the network
            raise InputError(
                f"could not load Hugging Face dataset '{name}' split '{split}': the Hub is not reachable and the "
                f"dataset is not in the local Hub cache. Fix: {_OFFLINE_HINT}",
                path=where,
            )
    try:
        return datasets.load_dataset(source, **kwargs)
    except Exception as exc:
        reason = _reason(exc)
        hint = (
            f"the Hub is not reachable (offline mode); {_OFFLINE_HINT}"
            if offline or any(w in reason.lower() for w in ("connect", "offline", "resolve", "reach"))
            else "check the dataset name and split (the form is NAME/SPLIT, e.g. imdb/test), or pass a local file"
        )
        raise InputError(
            f"could not load Hugging Face dataset '{name}' split '{split}': {reason}. Fix: {hint}", path=where
        ) from None
