"""``AsyncExecutor``: streams rows through a chain in a bounded window, with no batch barriers.

Data flow of one run::

    inputs ─► InputFeed ─► row workers (a fixed pool of ``window``) ─► row_runner.run_from
              (inputs.py)                                                    │ finished rows
                                                                             ▼
                          CommitLoop ─► writer.write_rows (worker thread) ─► run directory
                        (commit_loop.py)  └─► progress events (BatchFinished, StepTotalItems)

Memory stays flat: at most ``window`` rows are in flight and at most ``max_pending``
finished rows wait for the writer. Each engine bounds its own in-flight requests, shared by
every step and branch that uses it.
"""

from __future__ import annotations

import signal
import sys
import time
from collections.abc import AsyncIterable, AsyncIterator, Iterable, Mapping
from pathlib import Path
from typing import Any

import anyio
from pydantic import BaseModel, ValidationError

from chainette.core.chain import Chain
from chainette.core.context import coerce
from chainette.core.result import RunResult, StepStats
from chainette.core.row import SKIPPED, Row, RowRecords
from chainette.core.validation import iter_nodes, iter_steps
from chainette.errors import ConfigError, ErrorRecord, ServerStartError, describe_validation_error
from chainette.events import BudgetReached, EventBus, RunFinished, RunStarted
from chainette.events import bus as global_bus
from chainette.io.base_writer import MemoryWriter, RunInfo, Writer
from chainette.io.flatten import flatten
from chainette.io.journal import DoneSet
from chainette.io.metrics import RunMetrics, earlier_sessions
from chainette.io.spill import RowDecoder, encode_row
from chainette.run.budget import Budget
from chainette.run.commit_loop import CommitLoop
from chainette.run.costs import CostMeter
from chainette.run.debug import DebugSampler, StepDebug, debug_rows, print_sample
from chainette.run.engines import RunEngines
from chainette.run.gc_tuning import restore_after_run, tune_for_run
from chainette.run.inputs import InputFeed, graph_fingerprint, inputs_fingerprint, peek, rejoin
from chainette.run.overlap import alongside
from chainette.run.row_runner import RunState, run_from
from chainette.run.stages import plan_stages, stage_engines
from chainette.run.stop import ErrorGuard, RunStop
from chainette.utils.ids import new_run_id

if sys.version_info < (3, 11):  # pragma: no cover - anyio installs the backport there
    from exceptiongroup import BaseExceptionGroup

INPUT_STEP = "chain_input"
FINGERPRINT_ROWS = 100


class AsyncExecutor:
    """Run a chain on an event loop (anyio).

    Args:
        chain: the chain to run.
        batch_size: rows per commit to the writer (and per progress update).
        engines: engine instances or configs by name, overriding the registry.
        events: the event bus to publish on (default: the global bus).
        cache: ``True`` for the default on-disk item cache, ``False`` for none, or an ``ItemCache``.
    """

    def __init__(
        self,
        chain: Chain,
        *,
        batch_size: int = 256,
        engines: Mapping[str, Any] | None = None,
        events: EventBus | None = None,
        cache: Any = True,
    ) -> None:
        self.chain = chain
        self.batch_size = max(1, int(batch_size))
        self.engine_overrides = dict(engines or {})
        self.bus = events if events is not None else global_bus
        self.cache_option = cache
        self.commit_interval = 1.0

    # -- public API ---------------------------------------------------------------------
    async def run(
        self,
        inputs: Iterable[Any] | AsyncIterable[Any],
        output_dir: str | Path | None = None,
        *,
        writer: Writer | None = None,
        fmt: str = "jsonl",
        max_lines_per_file: int = 10_000,
        resume: bool = False,
        force: bool = False,
        retry_errors: bool = False,
        total: int | None = None,
        run_id: str | None = None,
        input_fingerprint: str | None = None,
        handle_signals: bool = False,
        window: int | None = None,
        on_rows: Any = None,
        max_cost: float | None = None,
        max_tokens: int | None = None,
        debug: bool | int = False,
        debug_output: Any = None,
        error_guard: ErrorGuard | None = ErrorGuard(),
        report: bool = True,
    ) -> RunResult:
        """Run every input row through the chain.

        Without ``output_dir`` (and no ``writer``) results are returned in memory
        (``RunResult.outputs`` / ``.flattened`` / ``.errors``). With it, rows stream to a
        :class:`StreamWriter` run directory (``fmt`` ``jsonl`` or ``parquet``, files rolling at
        ``max_lines_per_file``). ``resume=True`` continues an interrupted run in the same
        directory; ``force=True`` overwrites an existing run or resumes despite changes;
        ``retry_errors=True`` (with ``resume``) processes again the rows that ended in an error.
        ``max_cost`` (USD) and ``max_tokens`` cap what the whole run may spend, earlier sessions
        included: no request is sent once it could pass a cap, and the run stops resumable with
        ``RunResult.stopped_by`` set (see :mod:`chainette.run.budget`).
        ``debug=True`` (or a number of rows) shows the messages sent and the raw reply of the
        first rows of each step, secrets masked: ``debug_output`` receives the events
        (default: printed to stderr; see :mod:`chainette.run.debug`).
        ``error_guard`` stops a run whose rows overwhelmingly fail (default: 90% of at least
        50 finished rows; ``None`` disables it); an engine with a systemic fault (refused key,
        exhausted quota, rejected schema, unreachable endpoint) stops the run too. Either way
        the run ends resumable with ``RunResult.stopped_by`` and ``stop_reason`` set
        (see :mod:`chainette.run.stop`).
        A run directory also gets ``metrics.json`` (latency histograms and counters over time,
        see :mod:`chainette.io.metrics`) and, when the session ends, ``report.html`` (see
        :mod:`chainette.io.report`; ``report=False`` skips the HTML).
        """
        self.chain.validate(engines=self.engine_overrides)
        self._input_model = self.chain.input_model
        writer = self._make_writer(writer, output_dir, fmt, max_lines_per_file)
        out_dir = writer.output_dir
        head, rest = await peek(inputs, FINGERPRINT_ROWS)
        fingerprint = {
            "chain": graph_fingerprint(self.chain.graph.to_dict()),
            "inputs": input_fingerprint or inputs_fingerprint(head),
        }
        engines = RunEngines(self.engine_overrides, log_dir=out_dir, events=self.bus)
        meter = self._cost_meter(engines)
        run_stop = RunStop(guard=error_guard)
        run_stop.listeners.append(lambda by, reason: engines.release_batch_waiters(f"the run stopped ({by}): {reason}"))
        budget = self._make_budget(meter, engines, max_cost, max_tokens, run_stop)
        run = RunInfo(
            run_id=run_id or new_run_id(),
            chain_name=self.chain.name,
            graph=self.chain.graph.to_dict(),
            engines=[c.public_dict() for c in (engines.config(n) for n in self.chain.engine_names()) if c],
            fingerprint=fingerprint,
            started_at=time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
            step_ids=[
                n.id
                for n in iter_nodes(self.chain.items)
                if hasattr(n, "output_model") and n.kind in ("step", "apply", "batch")
            ],
        )

        def open_files() -> tuple[DoneSet, Any]:
            opened = writer.open(run, resume=resume, force=force, retry_errors=retry_errors)
            return opened, self._make_cache()

        # the run directory and the cache open while the engines' clients are made (a server's
        # version probe): the first row does not wait for one after the other
        done, cache = await alongside(
            lambda: anyio.to_thread.run_sync(open_files),
            lambda: engines.warm_up(self.chain.engine_names()),
            cancel_on_error=True,
        )
        stats = {sid: StepStats() for sid in run.step_ids}
        before = writer.spent_before
        note_spent = writer.note_spent
        if budget is not None and before:
            budget.spent_tokens = int(before.get("tokens", 0))
            budget.spent_cost = float(before.get("cost") or 0.0)
        state = RunState(
            get_engine=engines.get,
            stats=stats,
            bus=self.bus,
            cache=cache,
            cache_scope=engines.cache_scope,
            budget=budget,
            costs=meter,
            note_spent=lambda: note_spent(meter.spent(stats, engines.held_seconds(), before)),
            stop=run_stop,
        )
        metrics = None
        if out_dir is not None:  # a run directory: measure the run for its report
            metrics = state.metrics = RunMetrics(
                out_dir, stats, run_id=run.run_id, costs=meter, previous=earlier_sessions(out_dir) if resume else None
            )
            await anyio.to_thread.run_sync(metrics.write, metrics.document())
        stop_debug = self._start_debug(state, engines, debug, debug_output)
        result = RunResult(run_id=run.run_id, chain_name=self.chain.name, output_dir=out_dir, step_stats=stats)
        if window is None:
            biggest = max((engines.max_in_flight(n) for n in self.chain.engine_names()), default=64)
            window = max(self.batch_size, biggest + biggest // 2)  # enough rows to keep every slot busy
        self.bus.publish(
            RunStarted(
                run.run_id,
                self.chain.name,
                str(out_dir) if out_dir else None,
                total,
                run.step_ids,
                max_cost,
                max_tokens,
            )
        )
        stages = plan_stages(self.chain.items, engines.is_exclusive)
        started = time.monotonic()
        tune_for_run()  # fewer, cheaper garbage collections while rows flow
        try:
            for name in self.chain.engine_names():  # persistent servers start up front
                cfg = engines.config(name)
                if cfg is not None and cfg.is_managed and not cfg.lazy:
                    await engines.get(name)
            for k in range(writer.stage, len(stages)):
                last = k == len(stages) - 1
                if k == 0:
                    source, make_row = rejoin(head, rest), self._input_row
                else:
                    result.rows_in = max(result.rows_in, writer.rows_seen)
                    decoder = RowDecoder(self._models())
                    source, make_row = iter(writer.read_spill(k - 1)), _spilled_row(decoder)
                await self._drive(
                    stages[k],
                    source,
                    make_row,
                    done,
                    writer,
                    state,
                    result,
                    window,
                    handle_signals,
                    on_rows,
                    last=last,
                    count_inputs=k == 0,
                )
                if state.stop.by is not None:  # a budget cap asks it too, as it is reached (_make_budget)
                    result.interrupted = True  # resumable: the rows stopped before they finished are not committed
                    result.stopped_by, result.stop_reason = state.stop.by, state.stop.reason
                if result.interrupted or last:
                    break
                await engines.release_except(stage_engines(stages[k + 1]))
                await anyio.to_thread.run_sync(writer.begin_stage, k + 1)
                done = DoneSet()
        except BaseExceptionGroup as group:
            result.interrupted = True  # failed: keep what was committed, resumable
            raise (_first_chainette_error(group) or group) from None
        except BaseException:
            result.interrupted = True  # cancelled or failed: keep what was committed, resumable
            raise
        finally:
            restore_after_run()
            if stop_debug is not None:
                stop_debug()
            result.seconds = time.monotonic() - started
            engines.end_holds()
            held = engines.held_seconds()
            result.cost = meter.report(stats, held, before)
            note_spent(meter.spent(stats, held, before))

            def close_files() -> None:
                writer.close(result)
                if metrics is not None:
                    _finish_run_files(metrics, result, report)

            async def close_cache() -> None:
                if cache is not None:
                    await anyio.to_thread.run_sync(cache.close)

            # the run's files, its engines (sessions, servers) and the cache close side by side
            with anyio.CancelScope(shield=True):
                await alongside(lambda: anyio.to_thread.run_sync(close_files), engines.aclose, close_cache)
        self.bus.publish(
            RunFinished(
                run.run_id,
                result.seconds,
                result.rows_in,
                {k: v.to_dict() for k, v in stats.items()},
                str(out_dir) if out_dir else None,
                result.interrupted,
                result.cost,
                result.stopped_by,
            )
        )
        return result

    async def run_iter(
        self, inputs: Iterable[Any] | AsyncIterable[Any], output_dir: str | Path | None = None, **options: Any
    ) -> AsyncIterator[list[RowRecords]]:
        """Run and yield finished rows in committed groups as they reach the writer."""
        send, receive = anyio.create_memory_object_stream[list[RowRecords]](4)

        async def produce() -> None:
            async with send:
                await self.run(inputs, output_dir, on_rows=send.send, **options)

        async with anyio.create_task_group() as tg:
            tg.start_soon(produce)
            async with receive:
                async for batch in receive:
                    yield batch

    # -- internals ----------------------------------------------------------------------
    def _make_writer(self, writer: Any, output_dir: Any, fmt: str, max_lines: int) -> Writer:
        if writer is not None:  # a built-in writer, or yours (a RecordWriter, or its class)
            from chainette.io.custom_writer import as_writer

            return as_writer(writer, output_dir, max_lines_per_file=max_lines)
        if output_dir is None:
            return MemoryWriter()
        from chainette.io.stream_writer import StreamWriter

        return StreamWriter(output_dir, fmt=fmt, max_lines_per_file=max_lines)

    def _cost_meter(self, engines: RunEngines) -> CostMeter:
        names = self.chain.engine_names()
        models = {}
        for name in names:
            cfg = engines.config(name)
            models[name] = cfg.model if cfg is not None else ""
        return CostMeter(
            {s.id: s.engine_name for s in iter_steps(self.chain.items)},
            {name: engines.price(name) for name in names},
            models=models,
        )

    def _make_budget(
        self,
        meter: CostMeter,
        engines: RunEngines,
        max_cost: float | None,
        max_tokens: int | None,
        run_stop: RunStop,
    ) -> Budget | None:
        """The run's :class:`Budget` (``None`` without caps); a cost cap needs every engine's price."""
        if max_cost is None and max_tokens is None:
            return None
        if max_cost is not None and (max_cost < 0 or max_cost != max_cost):
            raise ConfigError(f"max_cost must be a number of USD >= 0, got {max_cost!r}")
        if max_tokens is not None and max_tokens < 1:
            raise ConfigError(f"max_tokens must be at least 1, got {max_tokens!r}")
        if max_cost is not None and meter.unpriced_engines:
            names = ", ".join(meter.unpriced_engines)
            raise ConfigError(
                f"--max-cost (max_cost=) needs a price for every engine, and engine(s) {names} have none: "
                "add `price: {input: USD per 1M tokens, output: USD per 1M tokens}` (or `per_hour:`) to them "
                "in the engines file (register_engine(..., price={...})), or cap tokens with --max-tokens"
            )
        hourly = [(n, p) for n, (p, _) in meter.prices.items() if p is not None and p.per_hour]
        hourly_cost = None
        if hourly:

            def hourly_cost() -> float:
                held = engines.held_seconds()
                return sum(p.hour_cost(held.get(n, 0.0)) for n, p in hourly)

        def on_stop(b: Budget) -> None:
            run_stop.request(b.stopped_by or "budget", b.describe_stop())
            r = b.refused or {}
            cost_cap = b.stopped_by == "max_cost"
            self.bus.publish(
                BudgetReached(
                    cap=b.stopped_by or "",
                    limit=float(r.get("limit") or 0),
                    spent=float(r["spent_cost"] if cost_cap else r["spent_tokens"]),
                    reserved=float(r["reserved_cost"] if cost_cap else r["reserved_tokens"]),
                    in_flight_requests=int(r.get("in_flight_requests", 0)),
                    step_id=str(r.get("step_id", "")),
                )
            )

        return Budget(
            max_cost=max_cost,
            max_tokens=max_tokens,
            step_prices={sid: meter.price_of_step(sid) for sid in meter.step_engines},
            hourly_cost=hourly_cost,
            on_stop=on_stop,
        )

    def _start_debug(self, state: RunState, engines: RunEngines, debug: Any, output: Any) -> Any:
        """Debug mode: a sampler in the run state and a subscriber that shows its events."""
        rows = debug_rows(debug)
        if not rows:
            return None
        secrets = []
        for name in self.chain.engine_names():
            cfg = engines.config(name)
            key = cfg.resolved_api_key() if cfg is not None else None
            if key:
                secrets.append(key)
        state.debug = DebugSampler(rows, self.bus.publish, secrets=secrets)
        show = output or print_sample
        return self.bus.subscribe(lambda event: show(event) if isinstance(event, StepDebug) else None)

    def _make_cache(self) -> Any:
        if self.cache_option is True:
            from chainette.io.item_cache import ItemCache

            return ItemCache()
        if self.cache_option in (False, None):
            return None
        return self.cache_option

    async def _drive(
        self,
        items: list,
        rows: Any,  # a plain or an async iterator
        make_row: Any,
        done: DoneSet,
        writer: Writer,
        state: RunState,
        result: RunResult,
        window: int,
        handle_signals: bool,
        on_rows: Any,
        *,
        last: bool,
        count_inputs: bool,
    ) -> None:
        """Stream ``rows`` through ``items`` (one stage) and commit them to ``writer``."""
        commits = CommitLoop(
            writer,
            self.bus,
            state.stats,
            batch_size=self.batch_size,
            commit_interval=self.commit_interval,
            on_rows=on_rows,
            costs=state.costs,
            before_commit=state.note_spent,
            metrics=state.metrics,
        )

        async def process(index: int, raw: Any) -> None:
            if raw is SKIPPED:  # a bad input the reader skipped: keeps its index, writes nothing
                await commits.add(RowRecords(index))
                return
            seq = state.stop.admit()
            row = make_row(index, raw, state)
            await self._run_row(row, items, state, last)
            if row.records.unfinished:
                return  # a budget stopped it before its last request: not committed, a resume runs it
            if row.records.errors:
                result.failed_rows += 1
            state.stop.note_row(seq, bool(row.records.errors))
            await commits.add(row.records)

        feed = InputFeed(rows, done, result if count_inputs else None)

        async def worker() -> None:
            # A fixed pool of `window` workers pulls rows: no task spawn and no loop turn per
            # row, and a slow row only holds its own worker.
            stop = state.stop
            while True:
                if stop.by is not None:
                    return  # the run is stopping (a cap, an engine fault, the error guard): read no more rows
                nxt = await feed.next()
                if nxt is None:
                    return
                await process(*nxt)

        stop_committer = anyio.Event()
        async with anyio.create_task_group() as outer:
            outer.start_soon(commits.run, stop_committer)
            rows_scope = anyio.CancelScope()
            if handle_signals:
                outer.start_soon(_watch_signals, rows_scope, result)
            try:
                with rows_scope:
                    async with anyio.create_task_group() as tg:
                        for _ in range(window):
                            tg.start_soon(worker)
            finally:
                with anyio.CancelScope(shield=True):
                    if rows_scope.cancel_called and not handle_signals:
                        result.interrupted = True
                    stop_committer.set()
                    commits.wake()
                    await commits.flush()
                    writer.note_rows_seen(result.rows_in)
                outer.cancel_scope.cancel()

    def _input_row(self, index: int, raw: Any, state: RunState) -> Row:
        """A chain input becomes a row (an invalid one becomes a row with only an error record)."""
        records = RowRecords(index)
        row_id = str(index)
        try:
            item = coerce(raw, self._input_model)
        except ValidationError as exc:
            _input_error(records, row_id, exc, state)
            return Row(row_id=row_id, item=None, history={}, records=records)
        return Row(row_id=row_id, item=item, history={INPUT_STEP: item}, records=records)

    def _models(self) -> list[type[BaseModel]]:
        models = []
        for node in iter_nodes(self.chain.items):
            for m in (node.input_model, node.output_model):
                if isinstance(m, type) and issubclass(m, BaseModel):
                    models.append(m)
        return models

    async def _run_row(self, row: Row, items: list, state: RunState, last: bool) -> None:
        records = row.records
        if records.errors and row.item is None:
            return  # the input itself was invalid
        try:
            finals = await run_from(items, 0, row, state)
        except (ConfigError, ServerStartError):
            raise
        except Exception as exc:  # a bug or an unexpected failure: record it, keep the run going
            records.errors.append(
                ErrorRecord(row.row_id, "<executor>", type(exc).__name__, str(exc) or repr(exc)).to_dict()
            )
            return
        for final in finals or ():
            if last:
                records.flats.append(flatten(final.row_id, final.history))
            else:
                records.spill.append(encode_row(final))


def _first_chainette_error(group: BaseExceptionGroup) -> BaseException | None:
    """The run-stopping error inside task-group wrapping (e.g. a server that failed to start)."""
    for exc in group.exceptions:
        if isinstance(exc, BaseExceptionGroup):
            found = _first_chainette_error(exc)
            if found is not None:
                return found
        elif isinstance(exc, (ConfigError, ServerStartError)):
            return exc
    return None


def _finish_run_files(metrics: RunMetrics, result: RunResult, report: bool) -> None:
    """End the session's metrics and (re)build ``report.html``; a failure here is a warning,
    never a failed run (``chainette report RUN_DIR`` builds the report again)."""
    import warnings

    try:
        metrics.finish("interrupted" if result.interrupted else "completed")
    except Exception as exc:  # noqa: BLE001 - the run's data is written; only its measurements are incomplete
        warnings.warn(
            f"the run metrics of {metrics.run_dir} were not finished: {type(exc).__name__}: {exc}",
            RuntimeWarning,
            stacklevel=1,
        )
    if report and metrics.run_dir is not None and (metrics.run_dir / "metadata.json").exists():
        from chainette.io.report import write_report_or_warn

        write_report_or_warn(metrics.run_dir)


def _spilled_row(decoder: RowDecoder) -> Any:
    def make(index: int, raw: Any, state: RunState) -> Row:
        return decoder.row(raw, index)

    return make


def _input_error(records: RowRecords, row_id: str, exc: ValidationError, state: RunState) -> None:
    records.errors.append(
        ErrorRecord(row_id, INPUT_STEP, "InputValidationError", describe_validation_error(exc)).to_dict()
    )
    state.stats.setdefault(INPUT_STEP, StepStats()).errors += 1


async def _watch_signals(scope: anyio.CancelScope, result: RunResult) -> None:
    sigs = [signal.SIGINT] + ([signal.SIGTERM] if sys.platform != "win32" else [])
    with anyio.open_signal_receiver(*sigs) as received:
        async for _ in received:
            result.interrupted = True
            scope.cancel()
            return
