"""Run a run's set-up and close-down steps side by side instead of one after another.

A short run pays fixed costs before its first request (opening the run directory and the item
cache, creating the engines' sessions and asking a server its version) and after its last
reply (closing the engines, the cache and the writer, building the report). Most of them wait
on the disk or the network, so they overlap well: :func:`alongside` awaits one main job while
others run, and lets errors out as they are (not wrapped in an exception group), so callers
handle them exactly as when the steps ran one by one.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import TypeVar

import anyio

T = TypeVar("T")


async def alongside(
    work: Callable[[], Awaitable[T]],
    *background: Callable[[], Awaitable[object]],
    cancel_on_error: bool = False,
) -> T:
    """Await ``work()`` while every ``background()`` job runs; return ``work``'s value once all
    have finished. The first error raised is re-raised as it is: ``work``'s, else the first
    failing background job's. ``cancel_on_error=True`` cancels the background jobs when
    ``work`` fails (a job in a worker thread still runs to its end: anyio waits for it);
    otherwise they finish (a close-down step must not be cut short by another one's error)."""
    errors: list[Exception] = []

    async def guarded(job: Callable[[], Awaitable[object]]) -> None:
        try:
            await job()
        except Exception as exc:  # noqa: BLE001 - re-raised below, after the other jobs
            errors.append(exc)

    value: T
    async with anyio.create_task_group() as tg:
        for job in background:
            tg.start_soon(guarded, job)
        try:
            value = await work()
        except Exception as exc:
            errors.insert(0, exc)
            if cancel_on_error:
                tg.cancel_scope.cancel()
    if errors:
        raise errors[0]
    return value
