"""The runtime of :class:`~chainette.core.batch.BatchNode`: gather rows, call ``process`` once
per batch, hand each row its own entry back.

Rows run as independent tasks (``row_runner``); at a batch node each row ``submit``\\ s itself
to the node's :class:`Batcher` and waits. The first row of a batch waits at most
``max_wait`` seconds for others; the row that fills the batch (``batch_size``) or the first
row's timeout sends it. So the last rows of a run, or rows arriving slowly, never wait
longer than ``max_wait``, and nothing needs a background task.
"""

from __future__ import annotations

from types import MappingProxyType
from typing import Any

import anyio

from chainette.core.batch import BatchNode, BatchRow
from chainette.errors import ApplyError

__all__ = ["Batcher"]


class _Slot:
    __slots__ = ("row", "done", "entry", "error")

    def __init__(self, row: BatchRow) -> None:
        self.row = row
        self.done = anyio.Event()
        self.entry: Any = None
        self.error: BaseException | None = None

    def settle(self, entry: Any = None, error: BaseException | None = None) -> None:
        self.entry, self.error = entry, error
        self.done.set()


class Batcher:
    """Collects the rows reaching one batch node during one run."""

    def __init__(self, node: BatchNode) -> None:
        self.node = node
        self.pending: list[_Slot] = []
        self.limit = anyio.CapacityLimiter(node.concurrency)
        self.batches = 0

    async def submit(self, row_id: str, item: Any, history: dict[str, Any]) -> Any:
        """Wait for this row's entry (what ``process`` returned for it); raise its error."""
        slot = _Slot(BatchRow(row_id, item, MappingProxyType(dict(history))))
        self.pending.append(slot)
        if len(self.pending) >= self.node.batch_size:
            await self._send()
        elif len(self.pending) == 1:  # first of a new batch: wait for company, at most max_wait
            with anyio.move_on_after(self.node.max_wait):
                await slot.done.wait()
            if not slot.done.is_set() and slot in self.pending:
                await self._send()
        await slot.done.wait()
        if slot.error is not None:
            raise slot.error
        return slot.entry

    async def _send(self) -> None:
        batch, self.pending = self.pending, []
        if not batch:
            return
        try:
            async with self.limit:
                self.batches += 1
                out = await self._call([s.row for s in batch])
            entries = _align(self.node, out, batch)
        except Exception as exc:  # process() raised: every row of the batch gets the error
            err = ApplyError.wrap(exc, node_id=self.node.id)
            for s in batch:
                s.settle(error=err)
            return
        except BaseException as exc:  # cancelled: release the waiting rows, then propagate
            for s in batch:
                if not s.done.is_set():
                    s.settle(error=exc)
            raise
        for s, entry in zip(batch, entries, strict=True):
            if isinstance(entry, BaseException):
                s.settle(
                    error=entry
                    if isinstance(entry, ApplyError)
                    else ApplyError.wrap(entry, node_id=self.node.id, row_id=s.row.row_id)
                )
            else:
                s.settle(entry)

    async def _call(self, rows: list[BatchRow]) -> Any:
        node = self.node
        if node.is_async:
            return await node.process(rows)
        if node.blocking:
            return await anyio.to_thread.run_sync(node.process, rows)
        return node.process(rows)


def _align(node: BatchNode, out: Any, batch: list[_Slot]) -> list[Any]:
    """One entry per slot, matched by position (a list) or by ``row_id`` (a dict)."""
    ids = [s.row.row_id for s in batch]
    if isinstance(out, dict):
        return [
            out[rid]
            if rid in out
            else ApplyError(
                f"batch node '{node.id}' returned no entry for row '{rid}' (process() returned a dict "
                "without this row_id)",
                node_id=node.id,
                row_id=rid,
            )
            for rid in ids
        ]
    if isinstance(out, (list, tuple)):
        if len(out) == len(ids):
            return list(out)
        msg = (
            f"batch node '{node.id}' returned {len(out)} entries for {len(ids)} rows; return one entry "
            "per row in order (a list: [] drops a row, several values fan it out) or a dict by row_id"
        )
    else:
        msg = (
            f"batch node '{node.id}' must return a list (one entry per row) or a dict by row_id, "
            f"got {type(out).__name__}"
        )
    return [ApplyError(msg, node_id=node.id, row_id=rid) for rid in ids]
