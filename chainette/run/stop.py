"""Stopping a run early, resumable: who asked, why, and the error-rate guard.

A run stops reading new rows when one of these asks (the first reason is kept):

* ``engine`` — an engine hit a systemic fault (see :mod:`chainette.engine.health`);
* ``error_guard`` — the failure rate over the finished rows is overwhelming (below);
* ``max_cost`` / ``max_tokens`` — a budget cap (see :mod:`chainette.run.budget`).

Rows that were stopped before they finished are not committed, so ``--resume`` runs them;
the rows already committed stay. Rows waiting on a submitted batch stop waiting at once (the
batch goes on at the provider and ``--resume`` collects it). ``RunResult.stopped_by`` / ``stop_reason`` say what happened.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

from chainette.errors import ConfigError


@dataclass(frozen=True)
class ErrorGuard:
    """Stop a run once ``max_failure_rate`` of its first ``min_rows`` rows failed.

    The first rows are the first ``min_rows`` the run admits (in input order), judged once
    all of them have finished: failing rows often finish sooner than good ones, so the first
    rows to *finish* would overstate the failure rate. The default (90% of 50 rows) lets a run
    with some bad rows go on and stops one where nearly everything fails (a wrong prompt, a
    model that cannot follow the schema) after about ``min_rows`` rows plus the rows in
    flight, instead of the whole input. ``error_guard=None`` (CLI ``--error-guard off``)
    disables it.
    """

    min_rows: int = 50
    max_failure_rate: float = 0.9

    def verdict(self, finished: int, failed: int) -> str | None:
        """Why the run should stop, given the outcomes of its first ``finished`` rows, or ``None``."""
        if finished < self.min_rows or failed < self.max_failure_rate * finished:
            return None
        return (
            f"{failed} of the first {finished} rows failed (error guard: stop at "
            f"{self.max_failure_rate:.0%} of at least {self.min_rows} rows); see errors/ for why, fix the "
            "chain or engine, then rerun with --resume (or --resume --retry-errors to redo the failed rows)"
        )

    @classmethod
    def parse(cls, text: str) -> ErrorGuard | None:
        """``"off"``, ``"RATE"`` or ``"RATE:MIN_ROWS"`` (e.g. ``0.9:50``), as the CLI takes it."""
        if text.strip().lower() in ("off", "none", "0"):
            return None
        rate, _, rows = text.partition(":")
        try:
            guard = cls(min_rows=int(rows) if rows else cls.min_rows, max_failure_rate=float(rate))
        except ValueError:
            guard = None
        if guard is None or not 0 < guard.max_failure_rate <= 1 or guard.min_rows < 1:
            raise ConfigError(
                f"--error-guard {text!r}: expected RATE or RATE:ROWS with 0 < RATE <= 1 and "
                "ROWS >= 1 (e.g. 0.9:50), or 'off'"
            )
        return guard


@dataclass
class RunStop:
    """The run's stop request (the first one wins), and the error guard that may make one."""

    guard: ErrorGuard | None = None
    by: str | None = None
    reason: str = ""
    admitted: int = 0
    finished: int = 0  # of the first guard.min_rows rows admitted
    failed: int = 0
    listeners: list[Callable[[str, str], None]] = field(default_factory=list)
    """called once with ``(by, reason)`` when the first stop is asked (e.g. to stop rows waiting
    on a batch: they would keep the run alive for hours)"""

    def request(self, by: str, reason: str) -> None:
        """Ask the run to stop reading rows (ignored when a stop was already asked)."""
        if self.by is None:
            self.by, self.reason = by, reason
            for listener in self.listeners:
                listener(by, reason)

    def admit(self) -> int:
        """Number the next row the run starts (0, 1, ...), for :meth:`note_row`."""
        self.admitted += 1
        return self.admitted - 1

    def note_row(self, seq: int, failed: bool) -> None:
        """Count the outcome of the ``seq``-th admitted row; ask to stop when the guard says so."""
        if self.guard is None or seq >= self.guard.min_rows:
            return
        self.finished += 1
        self.failed += failed
        if verdict := self.guard.verdict(self.finished, self.failed):
            self.request("error_guard", verdict)
