"""Running a :class:`~chainette.io.record_writer.RecordWriter` (yours) as a run's writer.

:func:`as_writer` turns what ``chain.run(writer=...)`` or ``--writer module:Class`` was given
into the executor's writer:

* a built-in writer (``StreamWriter``, ``RunWriter``, ``MemoryWriter``) is used as it is;
* a class is instantiated first: ``Class(output_dir)`` when its constructor takes an
  argument, else ``Class()``;
* any other object with a ``write_step`` method is wrapped: in a :class:`RecordWriterRun`
  when there is an output directory (journal, ``graph.json``, ``metadata.json`` and
  ``errors/`` are kept there, so the run can be resumed), else in a
  :class:`RecordWriterMemory` (nothing to resume; errors also returned in memory).

The guarantees these wrappers give a custom writer are stated in
:mod:`chainette.io.record_writer`.
"""

from __future__ import annotations

import dataclasses
import inspect
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any

from pydantic import BaseModel

from chainette.errors import ConfigError
from chainette.io.base_writer import RunInfo, Writer
from chainette.io.journal import DoneSet, load_journal
from chainette.io.record_writer import call_with_optional, is_record_writer
from chainette.io.retry_errors import failed_inputs
from chainette.io.stream_writer import StreamWriter

if TYPE_CHECKING:
    from chainette.core.result import RunResult
    from chainette.core.row import RowRecords

__all__ = ["RecordWriterMemory", "RecordWriterRun", "as_writer", "instantiate", "output_record"]


def output_record(row_id: str, value: Any, reasoning: str | None) -> dict[str, Any]:
    """What a custom writer receives for one output: ``row_id`` first, then the fields (and
    ``reasoning_content`` when the model returned one): the same as a step's JSONL line."""
    data = (
        value.model_dump(mode="json")
        if isinstance(value, BaseModel)
        else (dict(value) if isinstance(value, dict) else {"value": value})
    )
    rec = {"row_id": row_id, **data}
    if reasoning is not None:
        rec["reasoning_content"] = reasoning
    return rec


def _deliver(target: Any, rows: list[RowRecords]) -> None:
    """Hand one commit group's records to ``target``: per step, then errors, then flattened."""
    per_step: dict[str, list[dict[str, Any]]] = {}
    errors: list[dict[str, Any]] = []
    flats: list[dict[str, Any]] = []
    for rec in rows:
        for step_id, row_id, value, reasoning in rec.outputs:
            per_step.setdefault(step_id, []).append(output_record(row_id, value, reasoning))
        errors.extend(rec.errors)
        flats.extend(rec.flats)
    for step_id, records in per_step.items():
        target.write_step(step_id, records)
    if errors and callable(getattr(target, "write_errors", None)):
        target.write_errors(errors)
    if flats and callable(getattr(target, "write_flattened", None)):
        target.write_flattened(flats)


def _init(target: Any, graph: dict[str, Any], run: RunInfo) -> None:
    if callable(getattr(target, "init", None)):  # optional for duck-typed writers
        call_with_optional(target.init, graph, run)


class RecordWriterRun(StreamWriter):
    """A custom writer with a run directory: records go to ``target``, the journal, graph,
    metadata, error records and staged rows stay in ``output_dir`` (resumable)."""

    def __init__(
        self, target: Any, output_dir: str | Path, *, max_lines_per_file: int = 10_000, durable: bool = True
    ) -> None:
        super().__init__(output_dir, fmt="jsonl", max_lines_per_file=max_lines_per_file, flatten=False, durable=durable)
        self.target = target

    def open(self, run: RunInfo, **options: Any) -> DoneSet:
        retry = bool(options.get("resume") and options.get("retry_errors"))
        failed = failed_inputs(self.output_dir) if retry and load_journal(self.output_dir) is not None else set()
        done = super().open(run, **options)
        _init(self.target, run.graph, dataclasses.replace(run, resumed=bool(options.get("resume"))))
        if failed and callable(getattr(self.target, "forget_rows", None)):
            self.target.forget_rows([str(i) for i in sorted(failed)])
        return done

    def _append_rows(self, rows: list[RowRecords]) -> None:
        rows = sorted(rows, key=lambda r: r.order)
        _deliver(self.target, rows)  # first: a group is committed only once the target has it
        counts = self.journal.counts
        for rec in rows:
            for step_id, *_ in rec.outputs:
                counts.setdefault(step_id, {"outputs": 0, "errors": 0})["outputs"] += 1
        # errors and staged rows are kept in the run directory; the base class commits the group
        super()._append_rows([dataclasses.replace(rec, outputs=[], flats=[]) for rec in rows])

    def close(self, result: RunResult | None = None) -> None:
        super().close(result)
        if callable(getattr(self.target, "finalize", None)):
            call_with_optional(self.target.finalize, result)

    # the run directory holds no step files of its own
    def step_dirs(self) -> list[str]:
        return []


class RecordWriterMemory(Writer):
    """A custom writer without a run directory: nothing is resumable; error records are also
    returned in ``RunResult.errors``."""

    output_dir = None

    def __init__(self, target: Any) -> None:
        self.target = target
        self._errors: list[dict[str, Any]] = []
        self._spills: dict[int, list[dict[str, Any]]] = {}

    def open(self, run: RunInfo, *, resume: bool = False, **options: Any) -> DoneSet:
        if resume:
            raise ConfigError(
                "resuming a run with a custom writer needs an output directory, where the run's "
                "journal is kept: pass output_dir (-o) as in the first session"
            )
        _init(self.target, run.graph, run)
        return DoneSet()

    def write_rows(self, rows: list[RowRecords]) -> None:
        rows = sorted(rows, key=lambda r: r.order)
        _deliver(self.target, rows)
        spill = self._spills.setdefault(self.stage, [])
        for rec in rows:
            self._errors.extend(rec.errors)
            spill.extend(rec.spill)

    def read_spill(self, stage: int) -> Iterator[dict[str, Any]]:
        return iter(self._spills.pop(stage, []))

    def close(self, result: RunResult) -> None:
        result.errors.extend(self._errors)
        if callable(getattr(self.target, "finalize", None)):
            call_with_optional(self.target.finalize, result)


def instantiate(cls: type, output_dir: str | Path | None) -> Any:
    """``cls(output_dir)`` when its constructor takes an argument (and there is a directory),
    else ``cls()``."""
    try:
        params = [
            p
            for p in inspect.signature(cls).parameters.values()
            if p.kind in (p.POSITIONAL_ONLY, p.POSITIONAL_OR_KEYWORD)
        ]
    except (TypeError, ValueError):  # pragma: no cover - builtins
        params = []
    if params and output_dir is not None:
        return cls(Path(output_dir))
    if params and params[0].default is inspect.Parameter.empty:
        raise ConfigError(
            f"writer class {cls.__name__} needs an argument (the output directory): "
            "run with an output directory, or pass an instance"
        )
    return cls()


def as_writer(writer: Any, output_dir: str | Path | None, *, max_lines_per_file: int = 10_000) -> Writer:
    """The executor's writer for ``writer`` (see the module docstring)."""
    if isinstance(writer, type):
        writer = instantiate(writer, output_dir)
    if isinstance(writer, Writer):
        return writer
    if not is_record_writer(writer):
        raise ConfigError(
            f"writer {type(writer).__name__} has no write_step(step_id, records) method: a writer "
            "follows the contract of chainette.io.record_writer.RecordWriter (init, write_step, "
            "finalize), or is a built-in writer"
        )
    if output_dir is None:
        return RecordWriterMemory(writer)
    return RecordWriterRun(writer, output_dir, max_lines_per_file=max_lines_per_file)


def load_writer(ref: str) -> Any:
    """The writer class (or object) named ``module:Class`` (``--writer``)."""
    from chainette.utils.symbols import resolve_symbol

    obj = resolve_symbol(ref, what="writer")
    if isinstance(obj, type) or is_record_writer(obj) or isinstance(obj, Writer):
        return obj
    raise ConfigError(
        f"'{ref}' is a {type(obj).__name__}, not a writer class: point at a class with "
        "write_step(step_id, records) (see chainette.io.record_writer)"
    )
