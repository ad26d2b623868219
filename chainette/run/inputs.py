"""The input side of a run: peeking at the first rows, fingerprints, and the feed of rows.

``InputFeed`` hands ``(index, raw)`` pairs to the row workers, skipping the indices the
journal marks as committed (resume). Inputs may be plain or async iterables.
"""

from __future__ import annotations

import itertools
from collections.abc import AsyncIterable, AsyncIterator, Iterable
from typing import Any

import anyio

from chainette.core.result import RunResult
from chainette.io.journal import DoneSet
from chainette.utils.canonical import canonical_hash


class InputFeed:
    """Hands out ``(index, raw)`` pairs to workers, skipping committed indices (resume)."""

    def __init__(self, rows: Any, done: DoneSet, result: RunResult | None) -> None:
        self._async = hasattr(rows, "__anext__")
        self._rows = rows
        self._done = done
        self._result = result  # counts rows_in when given (first stage only)
        self._index = -1
        self._lock = anyio.Lock()

    async def next(self) -> tuple[int, Any] | None:
        """The next row to process, or ``None`` at the end of the input."""
        if self._async:  # one reader at a time: an async generator cannot be re-entered
            async with self._lock:
                while True:
                    try:
                        raw = await self._rows.__anext__()
                    except StopAsyncIteration:
                        return None
                    if (pair := self._admit(raw)) is not None:
                        return pair
        for raw in self._rows:
            if (pair := self._admit(raw)) is not None:
                return pair
        return None

    def _admit(self, raw: Any) -> tuple[int, Any] | None:
        self._index += 1
        if self._result is not None:
            self._result.rows_in = self._index + 1
        return None if self._index in self._done else (self._index, raw)


async def peek(inputs: Iterable[Any] | AsyncIterable[Any], n: int) -> tuple[list[Any], Any]:
    """Take up to ``n`` items from the front (for the input fingerprint) without losing them."""
    head: list[Any] = []
    if hasattr(inputs, "__aiter__"):
        it = inputs.__aiter__()  # type: ignore[union-attr]
        try:
            while len(head) < n:
                head.append(await it.__anext__())
        except StopAsyncIteration:
            pass
        return head, it
    it2 = iter(inputs)  # type: ignore[arg-type]
    for item in it2:
        head.append(item)
        if len(head) >= n:
            break
    return head, it2


def rejoin(head: list[Any], rest: Any) -> Any:
    """The peeked head followed by the rest: a plain iterator for sync inputs (cheapest)."""
    if not hasattr(rest, "__anext__"):
        return itertools.chain(head, rest)

    async def chained() -> AsyncIterator[Any]:
        for item in head:
            yield item
        async for item in rest:
            yield item

    return chained()


def inputs_fingerprint(head: list[Any]) -> str:
    """A short hash of the first input rows (detects a changed input on resume)."""
    return canonical_hash(head, length=16)


def graph_fingerprint(graph: dict[str, Any]) -> str:
    """A short hash of a chain's graph description (detects a changed chain on resume)."""
    return canonical_hash(graph, length=16)
