"""What ``chainette run`` shows while a run goes on.

* :class:`RunProgress` subscribes to the event bus and only updates counters (cheap:
  the executor calls it inline); rich ``Live`` renders it about four times a second.
* :class:`JsonLogs` writes one JSON object per event per line (``--json-logs``).
* :func:`summary_table` / :func:`summary_dict` describe a finished ``RunResult``.
"""

from __future__ import annotations

import json
import sys
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TextIO

from rich.console import Group
from rich.progress_bar import ProgressBar
from rich.table import Table
from rich.text import Text

from chainette.engine.pricing import format_cost
from chainette.events import (
    BatchFinished,
    BatchProgress,
    BudgetReached,
    Event,
    ItemFailed,
    RunFinished,
    RunStarted,
    ServerReady,
    ServerStarting,
    ServerStopped,
    StepTotalItems,
)


@dataclass
class _Step:
    reached: int = 0
    finished: int = 0  # done + errors
    errors: int = 0
    prompt_tokens: int = 0
    completion_tokens: int = 0
    cost: float | None = 0.0  # None once a batch's cost was unknown (no price)
    first: float | None = None
    last: float | None = None


def _fmt_int(n: float) -> str:
    n = int(n)
    if n >= 10_000_000:
        return f"{n / 1_000_000:.1f}M"
    if n >= 100_000:
        return f"{n / 1000:.0f}k"
    return f"{n:,}"


def _fmt_cost(cost: float | None, tokens: int) -> str:
    """``$0.0123``; ``price unknown`` for tokens at an unknown price; ``-`` for no tokens."""
    if cost is None:
        return "price unknown" if tokens else "-"
    if not cost and not tokens:
        return "-"
    return format_cost(cost)


def _fmt_eta(seconds: float | None) -> str:
    if seconds is None or seconds != seconds or seconds < 0:
        return "-:--"
    seconds = int(seconds + 0.5)
    h, rem = divmod(seconds, 3600)
    m, s = divmod(rem, 60)
    return f"{h}:{m:02d}:{s:02d}" if h else f"{m}:{s:02d}"


@dataclass
class RunProgress:
    """Counters fed by events; a rich renderable (``__rich__``) for ``Live``."""

    total_inputs: int | None = None
    steps: dict[str, _Step] = field(default_factory=dict)
    started: float = field(default_factory=time.monotonic)
    finished: bool = False
    last_error: str | None = None
    servers: dict[str, str] = field(default_factory=dict)
    ended: float | None = None
    console: Any = None  # for one-off lines (server start) printed above the live area
    max_cost: float | None = None
    max_tokens: int | None = None
    budget_note: str | None = None
    batches: Any = None  # a cli_support.batches.BatchBoard once an engine in batch mode reports a batch

    def __call__(self, event: Event) -> None:
        now = time.monotonic()
        if isinstance(event, BatchProgress) or (self.batches is not None and isinstance(event, BatchFinished)):
            if self.batches is None:
                from chainette.cli_support.batches import BatchBoard

                self.batches = BatchBoard()
            self.batches.update(event)  # batches submitted / in progress / completed, rows validated
            if isinstance(event, BatchProgress):
                return
        if isinstance(event, BatchFinished):
            st = self.steps.setdefault(event.step_id, _Step())
            st.finished += event.count
            st.errors += event.errors
            st.prompt_tokens += event.prompt_tokens
            st.completion_tokens += event.completion_tokens
            if event.cost is None:
                st.cost = None
            elif st.cost is not None:
                st.cost += event.cost
            st.last = now
            if st.first is None:
                st.first = self.started
        elif isinstance(event, StepTotalItems):
            st = self.steps.setdefault(event.step_id, _Step())
            st.reached = event.total
            if st.first is None:
                st.first = now
        elif isinstance(event, ItemFailed):
            self.last_error = f"{event.step_id} row {event.row_id}: {event.error_type}: {event.message}"[:200]
        elif isinstance(event, RunStarted):
            self.total_inputs = event.total_inputs
            self.max_cost, self.max_tokens = event.max_cost, event.max_tokens
            self.started = now
            for sid in event.steps:
                self.steps.setdefault(sid, _Step())
        elif isinstance(event, RunFinished):
            self.finished = True
            self.ended = now
        elif isinstance(event, BudgetReached):
            flag = "--max-cost" if event.cap == "max_cost" else "--max-tokens"
            self.budget_note = f"{flag} reached: no new requests; finishing those in flight"
            if self.console is not None:
                self.console.print(f"[yellow]⚠ {self.budget_note}[/]")
        elif isinstance(event, ServerStarting):
            self.servers[event.engine] = f"starting {event.endpoint}"
            if self.console is not None:
                self.console.print(f"[dim]⏳ starting server for engine [bold]{event.engine}[/] at {event.endpoint}[/]")
        elif isinstance(event, ServerReady):
            self.servers[event.engine] = f"ready {event.endpoint}"
            if self.console is not None:
                how = "reusing" if event.reused else f"ready in {event.seconds:.1f}s"
                self.console.print(f"[green]✔[/] engine [bold]{event.engine}[/] {how} at {event.endpoint}")
        elif isinstance(event, ServerStopped):
            self.servers.pop(event.engine, None)

    # -- rendering -------------------------------------------------------------------
    def _row(self, sid: str, st: _Step, now: float) -> list[Any]:
        total = max(st.reached, self.total_inputs or 0) if not self.finished else max(st.reached, st.finished)
        elapsed = max(now - (st.first or self.started), 1e-6)
        rate = st.finished / elapsed if st.finished else 0.0
        eta = (total - st.finished) / rate if rate and total and not self.finished else None
        bar = ProgressBar(
            total=float(total or 1),
            completed=float(min(st.finished, total or 1)) if total else 0.0,
            width=28,
            pulse=not total and not self.finished,
        )
        tokens = st.prompt_tokens + st.completion_tokens
        return [
            Text(sid, style="cyan"),
            bar,
            Text(f"{_fmt_int(st.finished)}/{_fmt_int(total) if total else '?'}"),
            Text(_fmt_int(st.errors), style="red" if st.errors else "dim"),
            Text(f"{rate:,.1f}/s" if rate else "-"),
            Text(_fmt_eta(eta) if not self.finished else "done", style="dim"),
            Text(_fmt_int(tokens) if tokens else "-", style="dim"),
            Text(_fmt_cost(st.cost, tokens), style="dim"),
        ]

    def totals(self) -> tuple[int, float, bool]:
        """(tokens, cost of the priced steps, whether some tokens had no price)."""
        tokens, cost, unknown = 0, 0.0, False
        for st in self.steps.values():
            t = st.prompt_tokens + st.completion_tokens
            tokens += t
            if st.cost is None:
                unknown = unknown or bool(t)
            else:
                cost += st.cost
        return tokens, cost, unknown

    def __rich__(self) -> Any:
        now = time.monotonic()
        table = Table(box=None, pad_edge=False, show_edge=False, header_style="bold")
        for col, justify in (
            ("step", "left"),
            ("", "left"),
            ("done", "right"),
            ("err", "right"),
            ("items/s", "right"),
            ("ETA", "right"),
            ("tokens", "right"),
            ("cost", "right"),
        ):
            table.add_column(col, justify=justify, no_wrap=True)  # type: ignore[arg-type]
        for sid, st in list(self.steps.items()):
            table.add_row(*self._row(sid, st, now))
        parts: list[Any] = [table]
        if self.batches:
            parts.append(self.batches)
        footer = Text(f"elapsed {_fmt_eta((self.ended or now) - self.started)}", style="dim")
        tokens, cost, unknown = self.totals()
        if tokens:
            footer.append(
                f"  total {_fmt_int(tokens)} tokens, {format_cost(cost)}" + (" + price unknown" if unknown else ""),
                style="dim",
            )
        if self.max_cost is not None:
            footer.append(f"  budget {format_cost(cost)} of {format_cost(self.max_cost)}", style="dim")
        if self.max_tokens is not None:
            footer.append(f"  budget {_fmt_int(tokens)} of {_fmt_int(self.max_tokens)} tokens", style="dim")
        if self.budget_note:
            footer.append("  " + self.budget_note, style="yellow")
        if self.last_error:
            footer.append("  last error: ", style="dim")
            footer.append(self.last_error, style="red")
        parts.append(footer)
        return Group(*parts)


class JsonLogs:
    """Writes ``event.to_dict()`` as one JSON line per event (thread-safe, no colour)."""

    def __init__(self, stream: TextIO | None = None) -> None:
        self.stream = stream or sys.stdout
        self._lock = threading.Lock()

    def __call__(self, event: Event) -> None:
        self.write(event.to_dict())

    def write(self, obj: dict[str, Any]) -> None:
        line = json.dumps({"ts": round(time.time(), 3), **obj}, default=str, ensure_ascii=False)
        with self._lock:
            self.stream.write(line + "\n")
            self.stream.flush()


def summary_dict(result: Any, *, skipped: int = 0) -> dict[str, Any]:
    """The final summary as data (also what ``--json-logs`` prints last)."""
    d = result.summary()
    d["error_rate"] = round(result.error_rate, 6)
    d["skipped_inputs"] = skipped
    d["tokens"] = sum(s.prompt_tokens + s.completion_tokens for s in result.step_stats.values())
    total = (getattr(result, "cost", None) or {}).get("total") or {}
    d["total_cost"] = total.get("cost")
    d["cost_complete"] = total.get("cost_complete", True)
    return d


def summary_table(result: Any, *, skipped: int = 0) -> Any:
    """A rich renderable: rows in/out per step, errors, tokens, time and output path."""
    table = Table(title=f"Run {result.run_id} · {result.chain_name}", title_justify="left", header_style="bold")
    table.add_column("step", style="cyan", no_wrap=True)
    table.add_column("rows in", justify="right")
    table.add_column("rows out", justify="right")
    table.add_column("errors", justify="right")
    table.add_column("cached", justify="right")
    table.add_column("tokens in", justify="right")
    table.add_column("tokens out", justify="right")
    table.add_column("cost", justify="right")
    report = getattr(result, "cost", None) or {}
    cost_steps = report.get("steps", {})
    for sid, st in result.step_stats.items():
        c = cost_steps.get(sid)
        table.add_row(
            sid,
            f"{st.reached:,}",
            f"{st.outputs:,}",
            Text(f"{st.errors:,}", style="red" if st.errors else ""),
            f"{st.cached:,}",
            f"{st.prompt_tokens:,}",
            f"{st.completion_tokens:,}",
            _fmt_cost(c["cost"], c["tokens"]) if c else "-",
        )
    lines = Text()
    lines.append(
        f"rows in: {result.rows_in:,}   errors: {result.error_count:,} in "
        f"{result.failed_rows:,} row(s) ({result.error_rate:.1%})   "
        f"time: {result.seconds:.1f}s"
    )
    if skipped:
        lines.append(f"   skipped inputs: {skipped:,}", style="yellow")
    for line, style in cost_lines(report):
        lines.append("\n" + line, style=style)
    stopped_by = getattr(result, "stopped_by", None)
    if stopped_by:
        flag = "--max-cost" if stopped_by == "max_cost" else "--max-tokens"
        lines.append(
            f"\nstopped by {flag}: raise it and rerun the same command with --resume to continue", style="yellow"
        )
    elif getattr(result, "interrupted", False):
        lines.append("\ninterrupted: rerun the same command with --resume to continue", style="yellow")
    if result.output_dir:
        lines.append("\noutput: ")
        lines.append(str(result.output_dir), style="bold green")
        report_file = Path(result.output_dir) / "report.html"
        if report_file.is_file():
            lines.append("   report: ")
            lines.append(str(report_file), style="bold green")
    return Group(table, lines)


def cost_lines(report: dict[str, Any]) -> list[tuple[str, str]]:
    """The cost report as a few lines: total tokens and cost, engines without a price, the
    item cache's savings, and the run's total over earlier sessions."""
    if not report:
        return []
    total = report.get("total", {})
    out = []
    cost = total.get("cost")
    line = f"tokens: {total.get('tokens', 0):,}   cost: {format_cost(cost)}"
    if total.get("unpriced_engines"):
        line += f" + price unknown for {', '.join(total['unpriced_engines'])} (tokens shown, no cost)"
    out.append((line, ""))
    for name, e in report.get("engines", {}).items():
        if e.get("hour_cost"):
            out.append((f"  {name}: {format_cost(e['hour_cost'])} for {e['held_s'] / 3600:.2f} h held", "dim"))
    saved = report.get("cache_savings", {})
    if saved.get("hits"):
        out.append(
            (
                f"item cache: {saved['hits']:,} hit(s) saved {saved['tokens']:,} tokens, "
                f"{format_cost(saved.get('cost'))}",
                "dim",
            )
        )
    run_total = report.get("run_total")
    if run_total:
        out.append(
            (
                f"whole run (with earlier sessions): {run_total['tokens']:,} tokens, "
                f"{format_cost(run_total.get('cost'))}",
                "dim",
            )
        )
    return out
