"""``StreamWriter``: streams every finished row to a run directory.

```
<output_dir>/
  graph.json              every node (type, engine, schemas) and edge
  metadata.json           run id, chain, times, counts per step, engines (no secrets), versions
  <step_id>/000.jsonl     one record per row that passed the step ({"row_id": ..., fields})
  flattened/000.jsonl     one record per final row: row_id, <step_id>.<field>, <alias>.<field>
  errors/000.jsonl        one record per failure: row_id, step_id, error_type, message, attempts
  .chainette/progress.json  the commit journal used by --resume
```
Files roll every ``max_lines_per_file`` lines. Rows are committed in groups: lines are
appended whole, flushed (and fsynced), then the journal is replaced atomically, so a crash
never leaves a half-written line that a resume would keep. With ``fmt="parquet"`` (or
``fmt="csv"``: one column per field, nested values as JSON text in their cell) step and
flattened files are converted to Parquet when the run completes.
"""

from __future__ import annotations

import functools
import json
import shutil
import time
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any

from pydantic import BaseModel

from chainette.errors import ConfigError, ResumeError
from chainette.io.base_writer import RunInfo, Writer
from chainette.io.journal import (
    ERRORS,
    FLATTENED,
    JOURNAL_DIR,
    DoneSet,
    Journal,
    load_journal,
    save_journal,
    write_atomic,
)
from chainette.io.record_writer import RecordWriter, result_placeholder
from chainette.io.retry_errors import finish_pending_rewrite, remove_failed_rows
from chainette.io.rolling import RollingJsonl
from chainette.utils.paths import confined, ensure_within

if TYPE_CHECKING:
    from chainette.core.result import RunResult
    from chainette.core.row import RowRecords


def spill_folder(stage: int) -> str:
    """Where rows leaving ``stage`` of a staged run wait for the next stage."""
    return f"{JOURNAL_DIR}/spill-{stage}"


def _dumps(obj: Any) -> bytes:
    return (json.dumps(obj, ensure_ascii=False, separators=(",", ":"), default=str) + "\n").encode()


def output_line(row_id: str, value: Any, reasoning: str | None) -> bytes:
    """``{"row_id": ..., <fields>[, "reasoning_content": ...]}`` as one JSONL line."""
    if isinstance(value, BaseModel):
        body = value.model_dump_json()
        head = '{"row_id":' + json.dumps(row_id, ensure_ascii=False)
        line = head + ("," + body[1:] if body != "{}" else "}")
        if reasoning is not None:
            line = line[:-1] + ',"reasoning_content":' + json.dumps(reasoning, ensure_ascii=False) + "}"
        return (line + "\n").encode()
    data = {"row_id": row_id, **(value if isinstance(value, dict) else {"value": value})}
    if reasoning is not None:
        data["reasoning_content"] = reasoning
    return _dumps(data)


FORMATS = ("jsonl", "parquet", "csv")
"""Output formats of step and flattened files (errors are always JSONL)."""


class StreamWriter(Writer, RecordWriter):
    """Write a run directory as rows finish (see the module docstring for the layout)."""

    output_dir: Path  # always set by __init__ (the base Writer may have none)

    def __init__(
        self,
        output_dir: str | Path,
        *,
        fmt: str = "jsonl",
        max_lines_per_file: int = 10_000,
        flatten: bool = True,
        durable: bool = True,
    ) -> None:
        if fmt not in FORMATS:
            raise ConfigError(f"unknown output format '{fmt}': use {', '.join(FORMATS)}")
        if fmt == "parquet":  # fail before the run, not when its files are converted at the end
            from chainette.utils.optional import require

            require("pyarrow.parquet", extra="parquet", feature="--format parquet")
        if max_lines_per_file < 1:
            raise ConfigError("max_lines_per_file must be at least 1")
        self.output_dir = Path(output_dir)
        self.fmt = fmt
        self.max_lines = max_lines_per_file
        self.flatten = flatten
        self.durable = durable
        self.journal = Journal()
        self._folders: dict[str, RollingJsonl] = {}
        self._run: RunInfo | None = None

    # -- lifecycle ----------------------------------------------------------------------
    def open(self, run: RunInfo, *, resume: bool = False, force: bool = False, retry_errors: bool = False) -> DoneSet:
        self._run = run
        out = self.output_dir
        existing = load_journal(out) if out.exists() else None
        if retry_errors and not resume:
            raise ConfigError(
                "--retry-errors works with --resume (resume=True): it re-runs the failed rows "
                "of an existing run directory"
            )
        if resume:
            if existing is None:
                raise ResumeError(
                    f"nothing to resume in {out}: it holds no Chainette run journal. Run without --resume."
                )
            self._check_fingerprint(existing, run, force)
            finish_pending_rewrite(out, existing, durable=self.durable)
            if retry_errors:
                remove_failed_rows(out, existing, durable=self.durable)
            self.journal = existing
            self.journal.completed = False
            self.spent_before = dict(existing.spent) or None
            self.stage = existing.stage
            for name, state in existing.files.items():
                self._folder(name).restore(state)
            spills = {spill_folder(k) for k in range(existing.stage, existing.stage + 2)}
            for name in {FLATTENED, ERRORS, *run.step_ids, *spills} - set(existing.files):
                stale = confined(out, name)  # written after the last commit: drop it
                if stale.is_dir():
                    shutil.rmtree(stale)
        else:
            if existing is not None or (out / "graph.json").exists():
                if not force:
                    raise ConfigError(
                        f"{out} already holds a run. Use --resume (resume=True) to continue it, "
                        "--force (force=True) to overwrite it, or choose another output directory."
                    )
                self._remove_previous(run)
            self.journal = Journal(fingerprint=dict(run.fingerprint))
        try:
            out.mkdir(parents=True, exist_ok=True)
            if not resume:  # journal first: a run killed before its first commit is resumable
                save_journal(out, self.journal, durable=self.durable)
            self._write_json("graph.json", run.graph)
            self._write_metadata(status="running")
        except OSError as exc:
            raise ConfigError(
                f"cannot write to output directory {out}: {exc.strerror or exc}. "
                "Choose a writable directory with -o/--output-dir."
            ) from None
        return self.journal.done

    def _check_fingerprint(self, journal: Journal, run: RunInfo, force: bool) -> None:
        if force:
            return
        for key, new in run.fingerprint.items():
            old = journal.fingerprint.get(key)
            if old is not None and old != new:
                raise ResumeError(
                    f"cannot resume {self.output_dir}: the {key} changed since the run started. "
                    "Resume with the same chain and inputs, pass --force (force=True) to resume anyway, "
                    "or start a new run in another directory."
                )

    def _remove_previous(self, run: RunInfo) -> None:
        out = self.output_dir
        old_graph = out / "graph.json"
        names = {FLATTENED, ERRORS, JOURNAL_DIR, "datasets", "servers", *run.step_ids}
        if old_graph.exists():
            try:
                names.update(n["id"] for n in json.loads(old_graph.read_text()).get("nodes", []))
            except (ValueError, KeyError):
                pass
        for name in names:
            p = out / name
            if p.is_dir() and p.resolve().parent == out.resolve():
                shutil.rmtree(p)
        for name in ("graph.json", "metadata.json", "skipped_inputs.jsonl", "metrics.json", "report.html"):
            (out / name).unlink(missing_ok=True)

    def _folder(self, name: str) -> RollingJsonl:
        f = self._folders.get(name)
        if f is None:
            f = self._folders[name] = RollingJsonl(
                confined(self.output_dir, name), self.max_lines, root=self.output_dir
            )
        return f

    # -- writing ------------------------------------------------------------------------
    def write_rows(self, rows: list[RowRecords]) -> None:
        counts = {k: dict(v) for k, v in self.journal.counts.items()}
        committed = len(self.journal.done)
        try:
            self._append_rows(rows)
        except BaseException:
            if len(self.journal.done) == committed:  # failed before the commit point (e.g. ENOSPC):
                self.journal.counts = counts  # undo the partial append, so that close() and a
                for name, folder in self._folders.items():  # resume see only committed lines
                    folder.rollback(self.journal.files.get(name, {"index": 0, "lines": 0, "size": 0}))
            raise

    def _append_rows(self, rows: list[RowRecords]) -> None:
        rows = sorted(rows, key=lambda r: r.order)  # input order within each commit
        by_folder: dict[str, list[bytes]] = {}
        counts = self.journal.counts
        for rec in rows:
            for step_id, row_id, value, reasoning in rec.outputs:
                by_folder.setdefault(step_id, []).append(output_line(row_id, value, reasoning))
                counts.setdefault(step_id, {"outputs": 0, "errors": 0})["outputs"] += 1
            for err in rec.errors:
                by_folder.setdefault(ERRORS, []).append(_dumps(err))
                counts.setdefault(err["step_id"], {"outputs": 0, "errors": 0})["errors"] += 1
            if self.flatten:
                for flat in rec.flats:
                    by_folder.setdefault(FLATTENED, []).append(_dumps(flat))
            for spilled in rec.spill:
                by_folder.setdefault(spill_folder(self.stage), []).append(_dumps(spilled))
        for name, lines in by_folder.items():
            self._folder(name).write(lines)
        for folder in self._folders.values():
            folder.flush(self.durable)
        for rec in rows:
            self.journal.done.add(rec.index)
        self._save_journal()

    def _save_journal(self) -> None:
        """Record every folder's committed state and replace the journal (the commit point)."""
        self.journal.files = {name: f.state() for name, f in self._folders.items()}
        save_journal(self.output_dir, self.journal, durable=self.durable)

    def begin_stage(self, stage: int) -> None:
        for folder in self._folders.values():
            folder.flush(self.durable)
        self.stage = stage
        self.journal.stage = stage
        self.journal.done = DoneSet()
        self._save_journal()

    def read_spill(self, stage: int) -> Iterator[dict[str, Any]]:
        folder = self._folders.get(spill_folder(stage))
        if folder is not None:
            folder.flush(durable=False)
        return read_records(self.output_dir / spill_folder(stage))

    @property
    def rows_seen(self) -> int:  # type: ignore[override]
        return self.journal.rows_seen

    def note_rows_seen(self, n: int) -> None:
        self.journal.rows_seen = max(self.journal.rows_seen, n)

    def note_spent(self, spent: dict[str, Any]) -> None:
        self.journal.spent = spent

    def close(self, result: RunResult | None = None) -> None:
        if result is None:  # used on its own (the writer contract, or the original's close())
            result = result_placeholder(self._run, self.output_dir)
        for folder in self._folders.values():
            folder.close()
        if not result.interrupted:
            self.journal.completed = True
            if self.fmt == "parquet":
                self._convert_to_parquet()
            elif self.fmt == "csv":
                self._convert_to_csv()
            for name in [n for n in self._folders if n.startswith(f"{JOURNAL_DIR}/spill-")]:
                shutil.rmtree(confined(self.output_dir, name), ignore_errors=True)  # staged rows are no longer needed
                del self._folders[name]
        self._save_journal()
        self._write_metadata(status="interrupted" if result.interrupted else "completed", result=result)

    # -- the writer contract, used on its own (see chainette/io/record_writer.py) ---------
    def init(self, graph: dict[str, Any] | None = None, run: RunInfo | None = None) -> None:
        """Start a run directory for ``graph`` without the executor (``write_step`` calls it
        with an empty graph if needed). Refuses a directory that already holds a run."""
        if run is None:
            from chainette.utils.ids import new_run_id

            run = RunInfo(
                run_id=new_run_id(),
                chain_name=str((graph or {}).get("name", "")),
                graph=graph or {},
                engines=[],
                fingerprint={},
                started_at=time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
            )
        self.open(run)

    def write_step(self, step_id: str, records: list[Any]) -> None:
        """Append ``records`` (models or dicts, ideally with ``row_id``) to ``<step_id>/``."""
        self._write_records(step_id, records, step=True)

    def write_errors(self, records: list[dict[str, Any]]) -> None:
        self._write_records(ERRORS, records)

    def write_flattened(self, records: list[dict[str, Any]]) -> None:
        self._write_records(FLATTENED, records)

    def finalize(self, result: RunResult | None = None) -> Any:
        """Finish the run directory (Parquet or CSV files are written now); same as ``close``."""
        self.close(result)

    def _write_records(self, name: str, records: list[Any], *, step: bool = False) -> None:
        if self._run is None:
            self.init()
        assert self._run is not None
        if step:
            if not name.isidentifier() or name in (ERRORS, FLATTENED):
                raise ConfigError(f"cannot write step {name!r}: not a valid step id")
            if name not in self._run.step_ids:
                self._run.step_ids.append(name)
        lines = [_dumps(r.model_dump(mode="json") if isinstance(r, BaseModel) else r) for r in records]
        if not lines:
            return
        self._folder(name).write(lines)
        self._folder(name).flush(self.durable)
        if step:
            self.journal.counts.setdefault(name, {"outputs": 0, "errors": 0})["outputs"] += len(lines)
        self._save_journal()

    # -- reading back -------------------------------------------------------------------
    def step_dirs(self) -> list[str]:
        """The step folders of the run directory, in the chain's order."""
        return [s for s in (self._run.step_ids if self._run else []) if (self.output_dir / s).is_dir()]

    def iter_records(self, folder: str) -> Iterator[dict[str, Any]]:
        """Read back a folder's records (JSONL or Parquet) in file order."""
        return read_records(self.output_dir / folder)

    # -- helpers ------------------------------------------------------------------------
    def _write_json(self, name: str, data: Any) -> None:
        write_atomic(
            confined(self.output_dir, name), json.dumps(data, indent=2, ensure_ascii=False, default=str), durable=False
        )

    def _write_metadata(self, status: str, result: RunResult | None = None) -> None:
        run = self._run
        assert run is not None
        meta: dict[str, Any] = {
            "run_id": run.run_id,
            "chain_name": run.chain_name,
            "status": status,
            "started_at": run.started_at,
            "ended_at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()) if result is not None else None,
            "format": self.fmt,
            "max_lines_per_file": self.max_lines,
            "fingerprint": run.fingerprint,
            "engines": run.engines,
            "versions": package_versions(),
        }
        if result is not None:
            meta["rows_in"] = result.rows_in
            meta["seconds"] = round(result.seconds, 3)
            meta["steps"] = {
                sid: {
                    **self.journal.counts.get(sid, {"outputs": 0, "errors": 0}),
                    "prompt_tokens": st.prompt_tokens,
                    "completion_tokens": st.completion_tokens,
                    "cached": st.cached,
                }
                for sid, st in result.step_stats.items()
            }
            meta["errors"] = sum(c.get("errors", 0) for c in self.journal.counts.values())
            meta["cost"] = result.cost
            meta["stopped_by"] = result.stopped_by
        self._write_json("metadata.json", meta)

    def _convert_to_csv(self) -> None:
        """Step and flattened files as CSV: one column per field (in order of first appearance),
        nested values (lists, objects) as JSON text, ``None`` as an empty cell."""
        import csv

        for name, folder in self._folders.items():
            if name == ERRORS or name.startswith(JOURNAL_DIR):
                continue
            for path in folder.files():
                with open(path, "rb") as f:
                    rows = [json.loads(line) for line in f if line.strip()]
                columns: dict[str, None] = {}
                for row in rows:
                    columns.update(dict.fromkeys(row))
                target = ensure_within(self.output_dir, path.with_suffix(".csv"))
                with open(target, "w", encoding="utf-8", newline="") as out:
                    w = csv.writer(out)
                    w.writerow(list(columns))
                    for row in rows:
                        w.writerow([csv_cell(row.get(c)) for c in columns])
                path.unlink()

    def _convert_to_parquet(self) -> None:
        import pyarrow.parquet as pq

        for name, folder in self._folders.items():
            if name == ERRORS or name.startswith(JOURNAL_DIR):
                continue
            for path in folder.files():
                with open(path, "rb") as f:
                    rows = [json.loads(line) for line in f if line.strip()]
                pq.write_table(_arrow_table(rows), ensure_within(self.output_dir, path.with_suffix(".parquet")))
                path.unlink()


def _arrow_table(rows: list[dict[str, Any]]) -> Any:
    """A table with every key of every row (not just the first row's); a column whose values
    Arrow cannot unify (e.g. text in one row, a number in another) is stored as JSON text."""
    import pyarrow as pa

    keys: dict[str, None] = {}
    for row in rows:
        keys.update(dict.fromkeys(row))
    columns = {}
    for key in keys:
        values = [row.get(key) for row in rows]
        try:
            columns[key] = pa.array(values)
        except (pa.ArrowInvalid, pa.ArrowTypeError):
            columns[key] = pa.array([None if v is None else json.dumps(v, ensure_ascii=False) for v in values])
    return pa.table(columns)


def csv_cell(value: Any) -> str:
    """A CSV cell: text as is, ``None`` empty, anything else (numbers, lists, objects) as JSON."""
    if value is None:
        return ""
    if isinstance(value, str):
        return value
    return json.dumps(value, ensure_ascii=False)


def read_records(folder: Path) -> Iterator[dict[str, Any]]:
    """Records of a run-directory folder, whether written as JSONL, Parquet or CSV (CSV cells
    come back as text)."""
    files = sorted(p for p in folder.glob("*") if p.stem.isdigit() and p.suffix in (".jsonl", ".parquet", ".csv"))
    for p in files:
        if p.suffix == ".csv":
            import csv

            with open(p, encoding="utf-8", newline="") as f:
                yield from csv.DictReader(f)
        elif p.suffix == ".jsonl":
            with open(p, "rb") as f:
                for line in f:
                    if line.strip():
                        yield json.loads(line)
        else:
            import pyarrow.parquet as pq

            yield from pq.read_table(p).to_pylist()


_VERSIONED = ("chainette", "pydantic", "jinja2", "anyio", "aiohttp", "pyarrow", "datasets", "typer", "rich")


def package_versions() -> dict[str, str]:
    """Python's and the main packages' versions (recorded in ``metadata.json``): looked up once
    per process (the code running does not change while it runs)."""
    return dict(_package_versions())


@functools.lru_cache(maxsize=1)
def _package_versions() -> dict[str, str]:
    import platform
    from importlib import metadata

    out = {"python": platform.python_version()}
    for name in _VERSIONED:
        try:
            out[name] = _version_of(metadata.distribution(name))
        except metadata.PackageNotFoundError:
            continue
    return out


def _version_of(dist: Any) -> str:
    """A distribution's version read from its metadata's ``Version:`` header line (a single
    line by the core metadata spec, among the headers that come first), without parsing the
    whole file as an e-mail message the way ``Distribution.version`` does (~1 ms a package)."""
    text = dist.read_text("METADATA") or dist.read_text("PKG-INFO") or ""
    for line in text.splitlines():
        if not line:  # the end of the headers
            break
        if line.startswith("Version:"):
            return line[len("Version:") :].strip()
    return str(dist.version)
