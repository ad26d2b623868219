"""The garbage collector while a run goes on: fewer and cheaper collections.

CPython's cyclic collector scans its youngest generation every 700 net container allocations.
A run allocates many short-lived containers per row (request bodies, replies, records) while
hundreds of rows are in flight, so every young pass re-scans the in-flight rows' objects and the
full passes traverse every module, model and template the process has loaded. Measured against a
fast mock server this was about a quarter of a run's CPU (``docs/benchmarks.md``, "The garbage
collector").

While at least one run is going on in the process: the objects that existed before the first
one (modules, the chain, engines) are frozen (:func:`gc.freeze`: never scanned again), and the
young generation's threshold is raised to :data:`YOUNG_THRESHOLD`. Objects without reference
cycles are still freed at once by reference counting; only cyclic garbage waits longer, for at
most that many allocations. The collector is restored when the last run ends. A process whose
collector is disabled, or already frozen by its owner, keeps its own settings for what it owns;
``CHAINETTE_GC=default`` leaves the collector alone altogether.
"""

from __future__ import annotations

import gc
import os
import threading
from collections.abc import Iterator
from contextlib import contextmanager

YOUNG_THRESHOLD = 50_000
"""Net container allocations between two young-generation collections during a run."""

_lock = threading.Lock()
_runs = 0
_saved: tuple[tuple[int, ...], bool] | None = None  # (thresholds, froze) of the first run


def tune_for_run() -> None:
    """A run starts: tune the collector unless another run of this process already did."""
    global _runs, _saved
    with _lock:
        _runs += 1
        if _runs > 1 or not gc.isenabled() or os.environ.get("CHAINETTE_GC", "").lower() == "default":
            return
        thresholds = gc.get_threshold()
        froze = gc.get_freeze_count() == 0  # the owner's own freeze is not ours to undo
        if froze:
            gc.freeze()
        gc.set_threshold(max(YOUNG_THRESHOLD, thresholds[0]), *thresholds[1:])
        _saved = (thresholds, froze)


def restore_after_run() -> None:
    """A run ends: the last one to end restores the collector as it was."""
    global _runs, _saved
    with _lock:
        _runs -= 1
        if _runs > 0 or _saved is None:
            return
        thresholds, froze = _saved
        _saved = None
        gc.set_threshold(*thresholds)
        if froze:
            gc.unfreeze()


@contextmanager
def collector_tuned_for_run() -> Iterator[None]:
    """Tune the collector for the duration of a run (nested and concurrent runs share it)."""
    tune_for_run()
    try:
        yield
    finally:
        restore_after_run()
