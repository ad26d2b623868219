"""``Executor``: the blocking facade over :class:`AsyncExecutor`.

It runs the async executor on its own event loop: in the calling thread when no loop is
running there (with Ctrl+C / SIGTERM handling in the main thread), otherwise in a helper
thread (so ``chain.run`` works inside Jupyter too).
"""

from __future__ import annotations

import queue
import threading
from collections.abc import Iterable, Iterator
from functools import partial
from pathlib import Path
from typing import Any

import anyio

from chainette.core.chain import Chain
from chainette.core.result import RunResult
from chainette.core.row import RowRecords
from chainette.run.async_executor import AsyncExecutor


def _loop_running() -> bool:
    try:
        import asyncio

        asyncio.get_running_loop()
        return True
    except RuntimeError:
        return False


class Executor:
    """Run a chain and block until it finishes. Options as for :class:`AsyncExecutor`."""

    def __init__(self, chain: Chain, **options: Any) -> None:
        self._async = AsyncExecutor(chain, **options)

    @property
    def batch_size(self) -> int:
        """Rows per commit to the writer (and per progress update)."""
        return self._async.batch_size

    def run(self, inputs: Iterable[Any], output_dir: str | Path | None = None, **options: Any) -> RunResult:
        """Run the chain on ``inputs`` and block until it finishes; options as for :meth:`AsyncExecutor.run`."""
        in_main = threading.current_thread() is threading.main_thread()
        if not _loop_running():
            options.setdefault("handle_signals", in_main)
            return anyio.run(partial(self._async.run, inputs, output_dir, **options))
        box: dict[str, Any] = {}

        def target() -> None:
            try:
                box["result"] = anyio.run(partial(self._async.run, inputs, output_dir, **options))
            except BaseException as exc:  # re-raised in the caller's thread
                box["error"] = exc

        t = threading.Thread(target=target, name="chainette-run")
        t.start()
        t.join()
        if "error" in box:
            raise box["error"]
        return box["result"]

    def run_iter(
        self, inputs: Iterable[Any], output_dir: str | Path | None = None, **options: Any
    ) -> Iterator[list[RowRecords]]:
        """Yield finished rows in committed groups while the run goes on in a helper thread."""
        q: queue.Queue[Any] = queue.Queue(maxsize=4)
        done = object()

        async def main() -> None:
            async def push(batch: list[RowRecords]) -> None:
                await anyio.to_thread.run_sync(q.put, batch)

            await self._async.run(inputs, output_dir, on_rows=push, **options)

        def target() -> None:
            try:
                anyio.run(main)
                q.put(done)
            except BaseException as exc:
                q.put(exc)

        t = threading.Thread(target=target, name="chainette-run-iter", daemon=True)
        t.start()
        while True:
            item = q.get()
            if item is done:
                break
            if isinstance(item, BaseException):
                raise item
            yield item
        t.join()
