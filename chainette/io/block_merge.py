"""A run directory built from blocks: each block of input rows runs as a sub-run of its own, and
finished sub-runs are merged into the run directory one at a time.

```
<output_dir>/
  graph.json metadata.json <step>/ flattened/ errors/   the usual layout (io/stream_writer.py)
  .chainette/progress.json                               the run's journal: global input indices
  .chainette/blocks.json                                 the block layout: {"block_rows": N}
  .chainette/blocks/00000042/                            block 42 while it runs: a sub-run directory
                                                         (its own journal, local indices 0..N-1)
```
Block ``k`` holds input rows ``k*N .. k*N+N-1``; its rows keep their global ``row_id`` (the
worker that runs it numbers them from the block's offset). A block's sub-run resumes like
any run (its journal says which of its rows are committed). Merging a finished block
appends its committed lines to the run's folders, adds its counts, marks its rows done in
the run's journal (the commit point), and only then removes the block directory, so a crash
at any moment leaves either the block (merged again after the run's files are cut back to
the journal) or its merged rows, never both and never neither. Because the run's own journal
holds global indices, the merged directory reads, resumes and ``--retry-errors`` like a
local run's.
"""

from __future__ import annotations

import json
import shutil
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from chainette.errors import ResumeError
from chainette.io.journal import JOURNAL_DIR, DoneSet, Journal, load_journal, save_journal, write_atomic
from chainette.io.stream_writer import StreamWriter
from chainette.utils.paths import confined

BLOCKS_DIR = f"{JOURNAL_DIR}/blocks"
LAYOUT_FILE = "blocks.json"
_CHUNK = 4096


def block_dir(output_dir: str | Path, block: int) -> Path:
    """Where block ``block`` runs as a sub-run of ``output_dir``."""
    return confined(Path(output_dir), BLOCKS_DIR, f"{block:08d}")


def read_layout(output_dir: str | Path) -> dict[str, Any] | None:
    p = Path(output_dir) / JOURNAL_DIR / LAYOUT_FILE
    try:
        return json.loads(p.read_text())
    except (OSError, ValueError):
        return None


def write_layout(output_dir: str | Path, layout: dict[str, Any]) -> None:
    p = confined(Path(output_dir), JOURNAL_DIR, LAYOUT_FILE)
    p.parent.mkdir(parents=True, exist_ok=True)
    write_atomic(p, json.dumps(layout, sort_keys=True))


def seed_block(sub_dir: Path, done_local: list[int]) -> None:
    """Start block's sub-run journal with ``done_local`` rows already committed (rows of a
    block done in an earlier session, e.g. all but the failed ones after ``--retry-errors``)."""
    if (sub_dir / JOURNAL_DIR / "progress.json").exists():
        return  # a sub-run from an earlier session: it resumes from its own journal
    done = DoneSet()
    for i in done_local:
        done.add(i)
    save_journal(sub_dir, Journal(done=done))


def retry_block_errors(sub_dir: Path, offset: int) -> int:
    """``--retry-errors`` inside a block started in an earlier session: drop its failed rows'
    records and mark them not done. Its records carry global row ids and its journal local
    indices, so the indices are mapped here, in the same journal write that names the rewrite
    (a crash at any point leaves the rows either failed or to do, never lost)."""
    from chainette.io.retry_errors import failed_inputs, finish_pending_rewrite, remove_failed_rows

    journal = load_journal(sub_dir)
    if journal is None:
        return 0
    finish_pending_rewrite(sub_dir, journal, durable=True)
    failed = failed_inputs(sub_dir)
    if not failed:
        return 0
    for row in failed:
        journal.done.discard(row - offset)
    journal.completed = False
    return remove_failed_rows(sub_dir, journal, durable=True)


def done_indices(done: DoneSet) -> Iterator[int]:
    """Every index ``done`` holds."""
    for i in range(done.watermark):
        if i not in done.redo:
            yield i
    yield from sorted(done.above)


class BlockRunWriter(StreamWriter):
    """The run directory of a run made of blocks: a :class:`StreamWriter` the blocks merge into."""

    extra_metadata: dict[str, Any]

    def __init__(self, output_dir: str | Path, **options: Any) -> None:
        super().__init__(output_dir, **options)
        self.extra_metadata = {}

    def merge_block(self, sub_dir: Path, offset: int) -> dict[str, dict[str, int]]:
        """Append finished sub-run ``sub_dir`` (block rows starting at ``offset``) to the run and
        commit it; return its per-step counts. The sub-run directory is removed afterwards."""
        journal = load_journal(sub_dir)
        if journal is None or not journal.completed:
            raise ResumeError(
                f"block {sub_dir} is not finished; it cannot be merged into the run (rerun with --resume)"
            )
        for name, state in journal.files.items():
            if name.startswith(JOURNAL_DIR):
                continue  # a staged sub-run's spill files: internal
            folder = self._folder(name)
            for lines in _committed_lines(sub_dir / name, state):
                folder.write(lines)
        counts = self.journal.counts
        for step, c in journal.counts.items():
            mine = counts.setdefault(step, {"outputs": 0, "errors": 0})
            for k, v in c.items():
                mine[k] = mine.get(k, 0) + v
        for i in done_indices(journal.done):
            self.journal.done.add(offset + i)
        self.journal.rows_seen = max(self.journal.rows_seen, offset + journal.rows_seen)
        _add_spent(self.journal.spent, journal.spent)
        for f in self._folders.values():
            f.flush(self.durable)
        self._save_journal()  # the commit point: the block's rows are the run's now
        shutil.rmtree(sub_dir, ignore_errors=True)
        return journal.counts

    def drop_block(self, sub_dir: Path) -> None:
        """Remove a block directory whose rows the run already holds (merged before a crash)."""
        shutil.rmtree(sub_dir, ignore_errors=True)

    def _write_metadata(self, status: str, result: Any = None) -> None:
        super()._write_metadata(status, result)
        if self.extra_metadata:
            p = self.output_dir / "metadata.json"
            meta = json.loads(p.read_text())
            meta.update(self.extra_metadata)
            write_atomic(
                confined(self.output_dir, "metadata.json"),
                json.dumps(meta, indent=2, ensure_ascii=False, default=str),
                durable=False,
            )


def _committed_lines(folder: Path, state: dict[str, int]) -> Iterator[list[bytes]]:
    """The lines of ``folder`` up to its committed ``state`` (later bytes are not the run's)."""
    last = state.get("index", 0)
    for index in range(last + 1):
        path = folder / f"{index:03d}.jsonl"
        if not path.exists():
            continue
        limit = state.get("size", 0) if index == last else None
        with open(path, "rb") as f:
            data = f.read() if limit is None else f.read(limit)
        lines = data.splitlines(keepends=True)
        for start in range(0, len(lines), _CHUNK):
            yield lines[start : start + _CHUNK]


def _add_spent(into: dict[str, Any], more: dict[str, Any]) -> None:
    for k, v in (more or {}).items():
        if isinstance(v, (int, float)) and not isinstance(v, bool):
            into[k] = (into.get(k) or 0) + v
