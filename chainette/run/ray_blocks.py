"""The input of a Ray run, cut into numbered blocks of ``block_rows`` rows.

``inputs`` may be:

* a ``ray.data.Dataset`` you built with any Ray Data reader (``read_json``, ``read_csv``,
  ``read_parquet``, ``from_huggingface``...), read in order;
* a path or URL (``s3://...``; a URL ending in ``/`` is a directory): ``.jsonl``
  (``read_json(lines=True)``), ``.csv`` (``read_csv``), ``.parquet`` or a
  directory of Parquet files (``read_parquet``), read by Ray Data on the cluster; ``hf://NAME``
  or ``hf://NAME/SPLIT`` loads a Hugging Face dataset (``from_huggingface``);
* any other iterable of rows, as a local run takes them (what ``chainette run`` passes: rows
  read and checked by Chainette's own readers, bad rows skipped in place).

Block ``k`` holds the rows ``k*block_rows`` to ``(k+1)*block_rows - 1`` in input order, so a
row's id is its position in the input, as in a local run, whatever the cluster's size; a
resumed run cuts the input at the same places (the layout is kept in the run directory).
"""

from __future__ import annotations

import itertools
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from chainette.core.row import SKIPPED
from chainette.errors import ConfigError

_JSONL = (".jsonl", ".ndjson", ".jsonl.gz", ".ndjson.gz")
_CSV = (".csv", ".csv.gz")
_PARQUET = (".parquet", ".pq")
READ_CPUS = 0
"""CPUs a read task reserves: none, because the runner's workers hold one CPU each (all of them by
default) and a read that waits for a free CPU would wait for the run to end. Build your own
``ray.data.Dataset`` the same way (``num_cpus=0``), or pass ``num_workers`` below the CPU count."""


@dataclass
class Block:
    """One block of input rows (``skipped``: positions of bad rows a reader skipped in place)."""

    index: int
    offset: int
    rows: list[Any]
    skipped: list[int] = field(default_factory=list)


def is_ray_dataset(obj: Any) -> bool:
    return type(obj).__module__.startswith("ray.data") and hasattr(obj, "iter_batches")


def read_dataset(path: str | Path) -> Any:
    """A ``ray.data.Dataset`` over ``path`` (see the module docstring for what is understood)."""
    import ray.data

    raw = str(path)
    if raw.startswith("hf://"):
        from chainette.utils.optional import require

        datasets = require("datasets", extra="datasets", feature="reading a Hugging Face dataset")
        name, _, split = raw[len("hf://") :].strip("/").partition("/")
        return ray.data.from_huggingface(datasets.load_dataset(name, split=split or "train"))
    remote = "://" in raw  # s3://, gs://, abfs://...: Ray Data (pyarrow) opens it on the cluster
    p = Path(raw).expanduser()
    name = raw.rstrip("/").rsplit("/", 1)[-1].lower()
    if not remote and not p.exists():
        raise ConfigError(
            f"input {raw} not found (runner='ray' reads a .jsonl/.csv/.parquet file, a "
            "directory of Parquet files, or hf://NAME/SPLIT)"
        )
    where = raw if remote else str(p)
    is_dir = raw.endswith("/") if remote else p.is_dir()
    if is_dir or name.endswith(_PARQUET):
        return ray.data.read_parquet(where, num_cpus=READ_CPUS)
    if name.endswith(_JSONL):
        return ray.data.read_json(where, lines=True, file_extensions=None, num_cpus=READ_CPUS)
    if name.endswith(_CSV):
        return ray.data.read_csv(where, num_cpus=READ_CPUS)
    raise ConfigError(
        f"runner='ray' cannot read {raw}: use .jsonl, .csv, .parquet, a directory of "
        "Parquet files, hf://NAME/SPLIT, a ray.data.Dataset or any iterable of rows"
    )


def iter_blocks(inputs: Any, block_rows: int) -> Iterator[Block]:
    """Cut ``inputs`` into blocks of ``block_rows`` rows, numbered from 0."""
    if isinstance(inputs, (str, Path)):
        inputs = read_dataset(inputs)
    if is_ray_dataset(inputs):
        yield from _dataset_blocks(inputs, block_rows)
        return
    if hasattr(inputs, "__aiter__"):
        raise ConfigError("runner='ray' takes a plain iterable, a path or a ray.data.Dataset, not an async iterable")
    it = iter(inputs)
    for k in itertools.count():
        rows = list(itertools.islice(it, block_rows))
        if not rows:
            return
        yield _block(k, block_rows, rows)
        if len(rows) < block_rows:
            return


def _dataset_blocks(ds: Any, block_rows: int) -> Iterator[Block]:
    import ray.data

    ctx = ray.data.DataContext.get_current()
    ctx.execution_options.preserve_order = True  # rows in input order: a row's id is its position
    # Read it all first (in parallel, into the object store, spilled to disk beyond its size): the
    # workers then hold the CPUs without starving the reads, and blocks are cut from memory.
    ds = ds.materialize()
    batches = ds.iter_batches(batch_size=block_rows, batch_format="pyarrow", drop_last=False)
    for k, table in enumerate(batches):
        yield _block(k, block_rows, table.to_pylist())


def _block(k: int, block_rows: int, rows: list[Any]) -> Block:
    skipped = [i for i, r in enumerate(rows) if r is SKIPPED]
    for i in skipped:
        rows[i] = None  # the marker does not survive pickling; the worker puts it back
    return Block(index=k, offset=k * block_rows, rows=rows, skipped=skipped)


def peek_rows(blocks: Iterator[Block], n: int) -> tuple[list[Any], Iterable[Block]]:
    """The first ``n`` input rows (for the run's fingerprint) and the blocks, none lost."""
    head: list[Any] = []
    taken: list[Block] = []
    for block in blocks:
        taken.append(block)
        head.extend(SKIPPED if i in set(block.skipped) else r for i, r in enumerate(block.rows))
        if len(head) >= n:
            break
    return head[:n], itertools.chain(taken, blocks)
