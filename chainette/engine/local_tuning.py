"""Threads and parallel slots of the embedded llama.cpp server, chosen for this machine.

Measured with ``benchmarks/local_tuning.py`` on the 2-core reference machine (SmolLM2-135M
Q4_1, the sentiment example's request; numbers in ``docs/benchmarks.md``):

* **threads = cores - 1** (at least 1). With one llama.cpp thread per core the server went
  10-25x *slower* (0.05-0.14 rows/s against 0.9-3.7 with one thread): its threads meet at a
  barrier after every operation, and the Chainette process driving the requests (and anything
  else on the machine) keeps taking one of the cores, so a thread waits for a descheduled
  peer. Leaving one core free avoids that. Capped at :data:`MAX_THREADS`: a small model stops
  gaining from more threads long before that (not measured here: 2 cores).
* **n_parallel = 2 slots per thread**, capped at :data:`MAX_SLOTS`. On 1 thread, 1, 2 and 4
  slots were within the measurement noise of each other and 8 slots were about 30% slower;
  2 keeps one long reply from holding the queue alone.

``threads`` / ``n_parallel`` on the engine config, or ``CHAINETTE_LOCAL_THREADS`` /
``CHAINETTE_LOCAL_PARALLEL`` in the environment, override these.
"""

from __future__ import annotations

import os

MAX_THREADS = 8
SLOTS_PER_THREAD = 2
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
    threads = _env_int("CHAINETTE_LOCAL_THREADS") or max(1, min(MAX_THREADS, cpus - 1))
    slots = _env_int("CHAINETTE_LOCAL_PARALLEL") or min(MAX_SLOTS, SLOTS_PER_THREAD * threads)
    return threads, slots


def local_server_settings(threads: int | None, n_parallel: int | None, n_ctx: int | None) -> tuple[int, int, int]:
    """``(threads, n_parallel, n_ctx)`` for an engine config: its own values, else this machine's defaults."""
    d_threads, d_slots = local_defaults()
    slots = n_parallel or d_slots
    return threads or d_threads, slots, n_ctx or CTX_PER_SLOT * slots
