"""``CommitLoop``: hands finished rows to the writer in order, in groups, and reports progress.

Row workers ``add`` finished rows; the loop's task commits them when a group of
``batch_size`` is ready, when ``commit_interval`` seconds have passed, or at the end
(``flush``). One writer call runs at a time, in a worker thread. After each commit the
per-step counters are published as progress events (``StepTotalItems``, ``BatchFinished``,
with the cost of the new tokens when a ``CostMeter`` is given); ``before_commit`` runs before
each writer call (the executor records there what the run has spent, for resume). With a
``RunMetrics`` (``io/metrics.py``), the loop adds the counters' gains to its time windows a few
times a second and has ``metrics.json`` replaced after a commit at most once a second.
When ``max_pending`` rows wait (a slow disk), ``add`` blocks until the next commit.
"""

from __future__ import annotations

import time
from collections.abc import Awaitable, Callable
from typing import Any

import anyio

from chainette.core.result import StepStats
from chainette.core.row import RowRecords
from chainette.events import BatchFinished, EventBus, StepTotalItems
from chainette.io.base_writer import Writer

OnRows = Callable[[list[RowRecords]], Awaitable[Any]]


class CommitLoop:
    """The commit side of one stage of a run."""

    def __init__(
        self,
        writer: Writer,
        bus: EventBus,
        stats: dict[str, StepStats],
        *,
        batch_size: int,
        commit_interval: float = 1.0,
        on_rows: OnRows | None = None,
        costs: Any = None,
        before_commit: Callable[[], Any] | None = None,
        metrics: Any = None,
    ) -> None:
        self.writer = writer
        self.bus = bus
        self.stats = stats
        self.batch_size = batch_size
        self.commit_interval = commit_interval
        self.max_pending = max(4 * batch_size, 4096)
        self.on_rows = on_rows
        self._pending: list[RowRecords] = []
        self._wake = anyio.Event()
        self._committed = anyio.Event()
        self._last = time.monotonic()
        self._lock = anyio.Lock()
        self._reached: dict[str, int] = {}
        self._counts: dict[str, tuple[int, int, int, int]] = {}
        self.costs = costs  # run.costs.CostMeter | None
        self.before_commit = before_commit
        self._costs: dict[str, float] = {}
        self.metrics = metrics  # io.metrics.RunMetrics | None

    async def add(self, records: RowRecords) -> None:
        """Queue a finished row; wake the loop when a group is ready; wait if too many queue."""
        self._pending.append(records)
        if len(self._pending) >= self.batch_size:
            self._wake.set()
        if len(self._pending) >= self.max_pending:  # back-pressure on a slow disk
            await self._committed.wait()

    async def run(self, stop: anyio.Event) -> None:
        """The loop's task: commit whenever a group is ready or the interval has passed."""
        while not stop.is_set():
            with anyio.move_on_after(0.25):
                await self._wake.wait()
            self._wake = anyio.Event()
            pending = len(self._pending)
            due = pending and time.monotonic() - self._last >= self.commit_interval
            if pending >= self.batch_size or due:
                await self.flush()
            else:
                self.publish_progress()
                if self.metrics is not None:
                    self.metrics.sample()

    def wake(self) -> None:
        self._wake.set()

    async def flush(self) -> None:
        """Commit everything queued now (one writer call at a time, in order)."""
        async with self._lock:
            batch, self._pending = self._pending, []
            self._last = time.monotonic()
            if batch:
                if self.before_commit is not None:
                    self.before_commit()
                await anyio.to_thread.run_sync(self.writer.write_rows, batch)
                if self.on_rows is not None:
                    await self.on_rows(batch)
            if self.metrics is not None:
                self.metrics.sample(len(batch))
                document = self.metrics.due() if batch else None
                if document is not None:
                    await anyio.to_thread.run_sync(self.metrics.write, document)
            self.publish_progress()
            self._committed.set()
            self._committed = anyio.Event()

    def publish_progress(self) -> None:
        """Publish what changed in the per-step counters since the last call."""
        if not self.bus:
            return
        for sid, st in self.stats.items():
            if self._reached.get(sid) != st.reached:
                self._reached[sid] = st.reached
                self.bus.publish(StepTotalItems(sid, st.reached))
            prev = self._counts.get(sid, (0, 0, 0, 0))
            now = (st.done, st.errors, st.prompt_tokens, st.completion_tokens)
            if now != prev:
                self._counts[sid] = now
                cost: float | None = 0.0
                if self.costs is not None and (now[2] != prev[2] or now[3] != prev[3]):
                    total = self.costs.step_cost(sid, st)
                    if total is None:
                        cost = None
                    else:
                        cost, self._costs[sid] = total - self._costs.get(sid, 0.0), total
                engine = self.costs.step_engines.get(sid) if self.costs is not None else None
                self.bus.publish(
                    BatchFinished(
                        sid,
                        now[0] + now[1] - prev[0] - prev[1],
                        now[1] - prev[1],
                        now[2] - prev[2],
                        now[3] - prev[3],
                        cost,
                        engine,
                    )
                )
