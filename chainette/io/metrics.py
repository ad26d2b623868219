"""``RunMetrics``: what a run measured over time, kept small, written to ``metrics.json``.

Two kinds of numbers, both of fixed size whatever the number of rows:

* **Per step, a latency histogram and a completion-token histogram** (``utils/histogram.py``:
  log-spaced buckets), filled by the row runner for every request an engine answered
  (``observe``: one logarithm, one ``bit_length``, two integer increments). The report reads
  p50/p95/p99 from them without any latency being stored.
* **Per time window, counters** (rows committed; per step: rows finished, errors, requests,
  tokens, milliseconds of latency), filled by the commit loop from the steps' ``StepStats``
  (``sample``: a few integer subtractions per step, at most a few times a second). Windows
  start 0.5 s wide; when a session reaches ``max_windows`` they double in width (pairs are
  added up), so a day-long session still has at most ``max_windows`` of them.

The file (``metrics.json`` in the run directory) holds one entry per session of the run: a
resumed run keeps its earlier sessions and appends its own, so the report covers them all.
It is replaced atomically at most once per ``save_interval`` seconds after a commit, and at
the end of the session::

    {"version": 1, "latency_buckets": {"per_doubling": 8, "min_s": 0.0001, "count": 217},
     "token_buckets": {"count": 33},
     "sessions": [{"run_id", "started_at", "ended_at" (epoch seconds), "status", "window_s",
                   "rows": [committed rows per window],
                   "steps": {step: {"done", "errors", "requests", "tokens", "latency_ms": [per window]}},
                   "totals": {step: {reached, done, errors, outputs, cached, requests, prompt_tokens,
                                     completion_tokens, latency_s, cost}},
                   "latency": {step: [[bucket, count], ...]},
                   "completion_tokens": {step: [[bucket, count], ...]}}]}

A session's ``status`` is ``running`` until it ends (``completed``, ``interrupted``); a
session found still ``running`` when the run is resumed ended without closing (a killed
process) and is marked ``killed``.
"""

from __future__ import annotations

import json
import math
import time
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

from chainette.io.journal import write_atomic
from chainette.utils.histogram import (
    LATENCY_BUCKETS,
    MIN_S,
    PER_DOUBLING,
    TOKEN_BUCKETS,
    latency_bounds,
    to_sparse,
)
from chainette.utils.paths import confined

_log2 = math.log2
_SCALE = 1.0 / MIN_S
_MAX_S = latency_bounds(LATENCY_BUCKETS - 1)[0]
_LAST_LATENCY = LATENCY_BUCKETS - 1
_LAST_TOKEN = TOKEN_BUCKETS - 1

METRICS_FILE = "metrics.json"
VERSION = 1
SERIES = ("done", "errors", "requests", "tokens", "latency_ms")
"""per-step counters kept per time window"""
TOTALS = ("reached", "done", "errors", "outputs", "cached", "requests", "prompt_tokens", "completion_tokens")


class RunMetrics:
    """One session's metrics, plus the earlier sessions of the same run directory.

    ``stats`` is the run's ``{step_id: StepStats}`` (read, never written); ``costs`` anything
    with ``step_cost(step_id, stats) -> float | None`` (the run's cost meter) or ``None``.
    """

    def __init__(
        self,
        run_dir: str | Path | None,
        stats: Mapping[str, Any],
        *,
        run_id: str = "",
        previous: list[dict[str, Any]] | None = None,
        costs: Any = None,
        save_interval: float = 1.0,
        max_windows: int = 240,
        clock: Callable[[], float] = time.monotonic,
        wall: Callable[[], float] = time.time,
    ) -> None:
        self.run_dir = Path(run_dir) if run_dir is not None else None
        self.stats = stats
        self.run_id = run_id
        self.previous = [dict(s) for s in previous or []]
        self.costs = costs
        self.save_interval = save_interval
        self.max_windows = max(2, max_windows)
        self._clock = clock
        self._wall = wall
        self._t0 = clock()
        self.started_at = wall()
        self.window_s = 0.5
        self.status = "running"
        self.rows: list[int] = []
        self.series: dict[str, dict[str, list[int]]] = {}
        self.latency: dict[str, list[int]] = {}
        self.tokens: dict[str, list[int]] = {}
        self._prev: dict[str, tuple[int, int, int, int, float]] = {}
        self._saved = float("-inf")
        for sid in stats:
            self._histograms(sid)

    # -- recording (the hot path) ------------------------------------------------------------
    def observe(self, step_id: str, seconds: float, completion_tokens: int) -> None:
        """One request answered by an engine: its latency and completion tokens (the bucket
        rules of ``latency_bucket`` and ``token_bucket``, inlined: this runs per request)."""
        lat = self.latency.get(step_id)
        if lat is None:
            lat = self._histograms(step_id)
        if seconds > MIN_S:
            lat[int(_log2(seconds * _SCALE) * PER_DOUBLING) + 1 if seconds < _MAX_S else _LAST_LATENCY] += 1
        else:
            lat[0] += 1
        k = completion_tokens.bit_length() if completion_tokens > 0 else 0
        self.tokens[step_id][k if k < TOKEN_BUCKETS else _LAST_TOKEN] += 1

    def _histograms(self, step_id: str) -> list[int]:
        self.tokens[step_id] = [0] * TOKEN_BUCKETS
        lat = self.latency[step_id] = [0] * LATENCY_BUCKETS
        return lat

    def sample(self, rows: int = 0, now: float | None = None) -> None:
        """Add what the step counters gained since the last call (and ``rows`` committed
        rows) to the current time window."""
        idx = self._window(self._clock() if now is None else now)
        if rows:
            _add(self.rows, idx, rows)
        for sid, st in self.stats.items():
            cur = (st.done, st.errors, st.requests, st.prompt_tokens + st.completion_tokens, st.latency_s)
            prev = self._prev.get(sid)
            if prev == cur:
                continue
            self._prev[sid] = cur
            if prev is None:
                prev = (0, 0, 0, 0, 0.0)
            series = self.series.get(sid)
            if series is None:
                series = self.series[sid] = {k: [] for k in SERIES}
            for key, new, old in zip(SERIES[:4], cur[:4], prev[:4], strict=False):
                if new != old:
                    _add(series[key], idx, new - old)
            ms = round((cur[4] - prev[4]) * 1000)
            if ms:
                _add(series["latency_ms"], idx, ms)

    def _window(self, now: float) -> int:
        elapsed = max(0.0, now - self._t0)
        idx = int(elapsed / self.window_s)
        while idx >= self.max_windows:  # a long session: halve the resolution, keep the size
            self.window_s *= 2
            self.rows = _halve(self.rows)
            for series in self.series.values():
                for key in SERIES:
                    series[key] = _halve(series[key])
            idx = int(elapsed / self.window_s)
        return idx

    # -- reading and saving --------------------------------------------------------------
    def session(self) -> dict[str, Any]:
        """This session as kept in the file (plain, copied data: safe to serialise elsewhere)."""
        totals: dict[str, dict[str, Any]] = {}
        for sid, st in self.stats.items():
            t: dict[str, Any] = {k: int(getattr(st, k, 0)) for k in TOTALS}
            t["latency_s"] = round(float(getattr(st, "latency_s", 0.0)), 3)
            if self.costs is not None:
                try:
                    cost = self.costs.step_cost(sid, st)
                except Exception:  # a price that cannot be applied: unknown, never a failed run
                    cost = None
                t["cost"] = None if cost is None else round(cost, 8)
            totals[sid] = t
        return {
            "run_id": self.run_id,
            "started_at": round(self.started_at, 3),
            "ended_at": round(self._wall(), 3),
            "status": self.status,
            "window_s": self.window_s,
            "rows": list(self.rows),
            "steps": {sid: {k: list(v) for k, v in s.items()} for sid, s in self.series.items()},
            "totals": totals,
            "latency": {sid: to_sparse(h) for sid, h in self.latency.items() if any(h)},
            "completion_tokens": {sid: to_sparse(h) for sid, h in self.tokens.items() if any(h)},
        }

    def document(self) -> dict[str, Any]:
        """The whole file: earlier sessions, then this one."""
        return {
            "version": VERSION,
            "latency_buckets": {"per_doubling": PER_DOUBLING, "min_s": MIN_S, "count": LATENCY_BUCKETS},
            "token_buckets": {"count": TOKEN_BUCKETS},
            "sessions": [*self.previous, self.session()],
        }

    def due(self, now: float | None = None) -> dict[str, Any] | None:
        """The document to save if ``save_interval`` has passed since the last save, else ``None``."""
        now = self._clock() if now is None else now
        if now - self._saved < self.save_interval:
            return None
        self._saved = now
        return self.document()

    def write(self, document: dict[str, Any]) -> None:
        """Replace ``metrics.json`` with ``document`` (atomically; nothing without a run directory)."""
        if self.run_dir is None:
            return
        write_atomic(
            confined(self.run_dir, METRICS_FILE),
            json.dumps(document, separators=(",", ":"), allow_nan=False),
            durable=False,
        )

    def finish(self, status: str) -> None:
        """End the session: take a last sample, set its status and save."""
        self.sample()
        self.status = status
        self._saved = self._clock()
        self.write(self.document())


def load_metrics(run_dir: str | Path) -> dict[str, Any] | None:
    """The run directory's ``metrics.json``, or ``None`` when it is missing or unreadable."""
    path = Path(run_dir) / METRICS_FILE
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    if not isinstance(data, dict) or data.get("version") != VERSION or not isinstance(data.get("sessions"), list):
        return None
    data["sessions"] = [s for s in data["sessions"] if isinstance(s, dict)]
    return data


def earlier_sessions(run_dir: str | Path) -> list[dict[str, Any]]:
    """The sessions a resumed run keeps: those of ``metrics.json``, a session that never
    closed (its process was killed) marked ``killed``."""
    data = load_metrics(run_dir)
    if data is None:
        return []
    sessions = []
    for s in data["sessions"]:
        s = dict(s)
        if s.get("status") == "running":
            s["status"] = "killed"
        sessions.append(s)
    return sessions


def _add(values: list[int], idx: int, n: int) -> None:
    if len(values) <= idx:
        values.extend([0] * (idx + 1 - len(values)))
    values[idx] += n


def _halve(values: list[int]) -> list[int]:
    return [values[i] + (values[i + 1] if i + 1 < len(values) else 0) for i in range(0, len(values), 2)]
