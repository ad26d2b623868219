"""``RecordWriter``: the writer contract for your own storage (a database, a queue, a bucket).

The contract is the spec's: **initialise with the graph, write a step's records, finalise**::

    class SQLiteWriter(RecordWriter):
        def __init__(self, path):
            self.path = path

        def init(self, graph, run):                 # once per session, before any record
            self.db = sqlite3.connect(self.path)
            self.db.execute("CREATE TABLE IF NOT EXISTS records "
                            "(step_id TEXT, row_id TEXT, data TEXT, PRIMARY KEY (step_id, row_id))")

        def write_step(self, step_id, records):     # records: dicts with "row_id" first
            with self.db:                            # one transaction: durable when it returns
                self.db.executemany("INSERT OR REPLACE INTO records VALUES (?, ?, ?)",
                                    [(step_id, r["row_id"], json.dumps(r)) for r in records])

        def finalize(self):
            self.db.close()

    chain.run(inputs, "runs/x", writer=SQLiteWriter("runs/x.sqlite"))
    # chainette run chain.py:chain -i in.jsonl -o runs/x --writer mywriters:SQLiteWriter

The built-in writers implement it too (``StreamWriter`` for JSONL and Parquet,
``RunWriter`` for a ``DatasetDict``), so they can be used the same way on their own.

**Calls.** ``init(graph, run)`` (``graph`` is what ``graph.json`` holds; ``run`` a
:class:`~chainette.io.base_writer.RunInfo`, ``run.resumed`` tells a resumed session),
then, for every group of finished rows, ``write_step(step_id, records)`` once per step that
has records in the group, ``write_errors(records)`` and ``write_flattened(records)`` (both
optional), and at the end of the session ``finalize()`` (or ``finalize(result)``), also
when the run was interrupted. Calls come one at a time, from a worker thread.

**Crash safety and resume.** With an output directory, Chainette keeps the run's journal,
``graph.json``, ``metadata.json`` and ``errors/`` there, as for any run. A group of rows is
recorded as committed in the journal only *after* your calls for it have returned. So:

* a row's records reach you only once the whole row has finished (never half a row);
* after a crash, ``--resume`` processes again every row whose group was not committed and
  hands its records to you again: delivery is **at least once**. Records carry ``row_id``
  (and errors ``step_id``): write them keyed by ``(step_id, row_id)`` (an upsert) and the
  result is exactly once;
* make each call durable before it returns (commit the transaction, flush the file); a call
  that raises stops the run, which stays resumable;
* with ``--resume --retry-errors``, ``forget_rows(row_ids)`` (optional) is called first with
  the failed input rows: drop your records whose ``row_id`` is one of them or a fan-out child
  (``"<id>.<k>"``); they are processed and delivered again.

Without an output directory there is no journal: nothing can be resumed, and error records
are also returned in ``RunResult.errors``.
"""

from __future__ import annotations

import inspect
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from chainette.core.result import RunResult
    from chainette.io.base_writer import RunInfo

__all__ = ["RecordWriter", "call_with_optional", "is_record_writer"]


class RecordWriter:
    """Base class of writers for your own storage; only :meth:`write_step` is required."""

    def init(self, graph: dict[str, Any], run: RunInfo) -> None:
        """Prepare storage for the run described by ``graph`` (called once per session)."""

    def write_step(self, step_id: str, records: list[dict[str, Any]]) -> None:
        """Store ``records`` of step ``step_id``: dicts with ``row_id`` then the output's fields."""
        raise NotImplementedError

    def write_errors(self, records: list[dict[str, Any]]) -> None:
        """Store error records (``row_id``, ``step_id``, ``error_type``, ``message``, ``attempts``)."""

    def write_flattened(self, records: list[dict[str, Any]]) -> None:
        """Store flattened records (``row_id``, ``<step_id>.<field>``...), one per final row."""

    def finalize(self) -> None:
        """The session is over (completed or interrupted): close connections, files."""


def is_record_writer(obj: Any) -> bool:
    """Whether ``obj`` follows the contract (duck typing: it has a ``write_step`` method)."""
    return callable(getattr(obj, "write_step", None))


def call_with_optional(fn: Callable[..., Any], *args: Any) -> Any:
    """Call ``fn`` with as many of ``args`` as its signature takes (``finalize()`` or
    ``finalize(result)``, ``init(graph)`` or ``init(graph, run)``)."""
    try:
        params = inspect.signature(fn).parameters.values()
    except (TypeError, ValueError):  # pragma: no cover - builtins
        return fn(*args)
    if any(p.kind is p.VAR_POSITIONAL for p in params):
        return fn(*args)
    n = sum(1 for p in params if p.kind in (p.POSITIONAL_ONLY, p.POSITIONAL_OR_KEYWORD))
    return fn(*args[:n])


def result_placeholder(run: RunInfo | None, output_dir: Any = None) -> RunResult:
    """A :class:`RunResult` for finishing a writer used on its own (no executor)."""
    from chainette.core.result import RunResult

    return RunResult(run_id=run.run_id if run else "", chain_name=run.chain_name if run else "", output_dir=output_dir)
