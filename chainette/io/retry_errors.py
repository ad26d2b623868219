"""``--resume --retry-errors``: take the rows that ended in an error record out of a run
directory so that the resumed run processes them again.

Every record of a failed input row (its step outputs, flattened lines and error records) is
removed, so the retried row ends, like any other, with exactly one record per step it reaches.
The rewrite is crash-safe in two phases: filtered copies are written beside the files
(``NNN.jsonl.retry``) and the journal, naming them, is saved; then the copies replace the
files and the journal is saved again. An interrupted rewrite is finished by the next open.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

from chainette.errors import ResumeError
from chainette.io.journal import ERRORS, FLATTENED, Journal, save_journal
from chainette.utils.paths import confined, ensure_within

RETRY_SUFFIX = ".retry"


def input_index(row_id: str) -> int:
    """The input row a record belongs to: ``"12"`` and ``"12.3"`` both come from input 12."""
    return int(row_id.split(".", 1)[0])


def failed_inputs(run_dir: Path) -> set[int]:
    folder = run_dir / ERRORS
    failed: set[int] = set()
    for path in sorted(folder.glob("*.jsonl")) if folder.is_dir() else ():
        with open(path, "rb") as f:
            for line in f:
                if line.strip():
                    failed.add(input_index(json.loads(line)["row_id"]))
    return failed


def finish_pending_rewrite(run_dir: Path, journal: Journal, *, durable: bool) -> None:
    """Complete (or discard) a rewrite a crash interrupted."""
    for rel in journal.rewrite:
        tmp = confined(run_dir, rel + RETRY_SUFFIX)  # names read from the journal: confined
        if tmp.exists():
            os.replace(tmp, confined(run_dir, rel))
    if journal.rewrite:
        journal.rewrite = []
        save_journal(run_dir, journal, durable=durable)
    for stray in run_dir.glob(f"*/*.jsonl{RETRY_SUFFIX}"):  # phase one never reached the journal
        stray.unlink()


def remove_failed_rows(run_dir: Path, journal: Journal, *, durable: bool) -> int:
    """Drop every record of the failed input rows and mark them not done; return how many."""
    if journal.stage > 0:
        raise ResumeError(
            "--retry-errors cannot be used once a staged run has passed its first stage; "
            "start a new run for the failed inputs instead"
        )
    if any(run_dir.glob("*/*.parquet")) or any(run_dir.glob("*/*.csv")):
        raise ResumeError(
            "--retry-errors needs the JSONL files of a run; this run was already converted "
            "to Parquet or CSV (it completed). Start a new run for the failed inputs instead."
        )
    failed = failed_inputs(run_dir)
    if not failed:
        return 0
    rewritten: list[str] = []
    counts: dict[str, dict[str, int]] = {}
    for name, state in journal.files.items():
        if name.startswith("."):
            continue
        folder = confined(run_dir, name)
        last_lines = last_size = 0
        for path in sorted(folder.glob("*.jsonl")):
            kept = []
            with open(path, "rb") as f:
                for line in f:
                    if not line.strip():
                        continue
                    rec = json.loads(line)
                    if input_index(rec["row_id"]) in failed:
                        continue
                    kept.append(line)
                    if name == ERRORS:
                        counts.setdefault(rec["step_id"], {"outputs": 0, "errors": 0})["errors"] += 1
                    elif name != FLATTENED:
                        counts.setdefault(name, {"outputs": 0, "errors": 0})["outputs"] += 1
            data = b"".join(kept)
            with open(ensure_within(run_dir, str(path) + RETRY_SUFFIX), "wb") as f:
                f.write(data)
                f.flush()
                if durable:
                    os.fsync(f.fileno())
            rewritten.append(f"{name}/{path.name}")
            if int(path.stem) == state["index"]:
                last_lines, last_size = len(kept), len(data)
        journal.files[name] = {"index": state["index"], "lines": last_lines, "size": last_size}
    journal.counts = counts
    for index in failed:
        journal.done.discard(index)
    journal.rewrite = rewritten
    save_journal(run_dir, journal, durable=durable)  # phase one: the journal names the copies
    finish_pending_rewrite(run_dir, journal, durable=durable)  # phase two: swap them in
    return len(failed)
