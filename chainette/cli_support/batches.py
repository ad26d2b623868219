"""``chainette batches RUN_DIR``: the batches of a run in batch mode, as a table or JSON;
and :class:`BatchBoard`, the batch lines of the live display of ``chainette run``."""

from __future__ import annotations

import json
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from rich.table import Table
from rich.text import Text

from chainette.events import BatchFinished, BatchProgress

__all__ = ["BatchBoard", "batches_command", "batches_table"]

_QUEUED = ("prepared", "uploaded")
_RUNNING = ("validating", "in_progress", "finalizing", "cancelling")


def _when(ts: float | None) -> str:
    return time.strftime("%H:%M:%S", time.localtime(ts)) if ts else "-"


def batches_table(records: list[Any], problems: dict[str, str] | None = None) -> Table:
    """One line per batch: key, engine, provider id, state, the provider's counts, last change."""
    problems = problems or {}
    table = Table(header_style="bold", box=None, pad_edge=False)
    for col, justify in (
        ("batch", "left"),
        ("engine", "left"),
        ("provider id", "left"),
        ("state", "left"),
        ("done/total", "right"),
        ("failed", "right"),
        ("updated", "left"),
    ):
        table.add_column(col, justify=justify, overflow="fold")  # type: ignore[arg-type]  # ids never cut
    for rec in records:
        c = rec.request_counts
        style = {"completed": "green", "failed": "red", "expired": "yellow", "cancelled": "yellow"}.get(rec.state, "")
        state = Text(rec.state + (" ✔" if rec.collected else ""), style=style)
        if rec.key in problems:
            state.append(f" ({problems[rec.key]})", style="red")
        table.add_row(
            rec.key,
            rec.engine,
            rec.batch_id or "-",
            state,
            f"{c.get('completed', 0):,}/{rec.requests:,}",
            f"{c.get('failed', 0):,}",
            _when(rec.updated_at),
        )
    return table


def batches_command(run_dir: Path, *, cancel: bool, refresh: bool, as_json: bool, console: Any) -> None:
    """List (after ``refresh`` or ``cancel`` at the provider) and print the run's batches."""
    import anyio

    from chainette.run.batch_admin import cancel_batches, list_batches, refresh_batches

    problems: dict[str, str] = {}
    asked: dict[str, Any] = {}
    if cancel or refresh:
        for rec, problem in anyio.run(cancel_batches if cancel else refresh_batches, run_dir):
            asked[rec.key] = rec
            if problem:
                problems[rec.key] = problem
    records = [asked.get(r.key, r) for r in list_batches(run_dir)]
    if as_json:
        console.print_json(
            json.dumps(
                {"run_dir": str(run_dir), "batches": [{**r.to_dict(), "problem": problems.get(r.key)} for r in records]}
            )
        )
        return
    console.print(batches_table(records, problems))
    live = [r for r in records if not r.collected and r.state not in ("completed", "failed", "expired", "cancelled")]
    if cancel:
        n = len([k for k in asked if k not in problems])
        console.print(
            f"cancelled {n} batch(es); the run stops resumable. `chainette run ... --resume` sends "
            "their unfinished rows again."
        )
    elif live:
        console.print(
            f"{len(live)} batch(es) not finished: `chainette run ... --resume` waits for them "
            "(never creates them again); `--cancel` cancels them."
        )


@dataclass
class _Batch:
    engine: str
    status: str
    requests: int
    completed: int = 0
    failed: int = 0
    collected: bool = False


@dataclass
class BatchBoard:
    """Counts fed by :class:`BatchProgress` (and :class:`BatchFinished` for rows validated);
    renders one line per engine in batch mode."""

    batches: dict[str, _Batch] = field(default_factory=dict)
    validated: dict[str, int] = field(default_factory=dict)

    def __bool__(self) -> bool:
        return bool(self.batches)

    def update(self, event: Any) -> None:
        if isinstance(event, BatchProgress):
            self.batches[event.key] = _Batch(
                event.engine, event.status, event.requests, event.completed, event.failed, event.collected
            )
        elif isinstance(event, BatchFinished) and event.engine:
            self.validated[event.engine] = self.validated.get(event.engine, 0) + event.count - event.errors

    def lines(self) -> list[str]:
        out = []
        for engine in sorted({b.engine for b in self.batches.values()}):
            mine = [b for b in self.batches.values() if b.engine == engine]
            queued = sum(b.status in _QUEUED for b in mine)
            running = sum(b.status in _RUNNING for b in mine)
            done = sum(b.collected for b in mine)
            reqs = sum(b.requests for b in mine)
            completed = sum(b.completed for b in mine)
            failed = sum(b.failed for b in mine)
            out.append(
                f"batches {engine}: {len(mine)} submitted ({queued} queued, {running} in progress, "
                f"{done} completed) · provider: {completed:,}/{reqs:,} requests done, {failed:,} failed · "
                f"rows validated {self.validated.get(engine, 0):,}"
            )
        return out

    def __rich__(self) -> Any:
        return Text("\n".join(self.lines()), style="dim")
