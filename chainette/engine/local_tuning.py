"""Threads and parallel slots of the embedded llama.cpp server, chosen for this machine.

Measured with ``benchmarks/local_tuning.py`` (SmolLM2-135M Q4_1, the sentiment example's
request, 2 cores; numbers in ``docs/benchmarks.md``): the server is fastest with one
llama.cpp thread per core, and continuous batching over a few slots beats one slot at a
time. More slots than that add latency per request without adding rows per second, and
every slot reserves its share of the context. ``threads`` / ``n_parallel`` on the engine
config (or ``CHAINETTE_LOCAL_THREADS`` / ``CHAINETTE_LOCAL_PARALLEL``) override these.
"""

from __future__ import annotations

import os

SLOTS_PER_CORE = 2
MAX_SLOTS = 16
CTX_PER_SLOT = 1024


def cpu_count() -> int:
    """Cores this process may run on (the affinity mask, so a container's limit counts)."""
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except (AttributeError, OSError):
        return max(1, os.cpu_count() or 1)


def _env_int(name: str) -> int | None:
    value = os.environ.get(name, "").strip()
    return int(value) if value.isdigit() and int(value) > 0 else None


def local_defaults(cpus: int | None = None) -> tuple[int, int]:
    """``(threads, n_parallel)`` for the local server on a machine with ``cpus`` cores."""
    cpus = cpus or cpu_count()
    threads = _env_int("CHAINETTE_LOCAL_THREADS") or cpus
    slots = _env_int("CHAINETTE_LOCAL_PARALLEL") or min(MAX_SLOTS, max(2, SLOTS_PER_CORE * cpus))
    return threads, slots


def local_server_settings(threads: int | None, n_parallel: int | None, n_ctx: int | None) -> tuple[int, int, int]:
    """``(threads, n_parallel, n_ctx)`` for an engine config: its own values, else this machine's defaults."""
    d_threads, d_slots = local_defaults()
    slots = n_parallel or d_slots
    return threads or d_threads, slots, n_ctx or CTX_PER_SLOT * slots
