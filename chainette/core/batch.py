"""``BatchNode``: a node that processes a batch of rows itself (uploads, batch services).

Steps and applies see one row at a time. Some work is done better in groups: pushing rows
to a database or a dataset hub, calling a service that takes many items per request. A
batch node collects the rows that reach it (up to ``batch_size``, or whatever arrived
within ``max_wait`` seconds) and hands them to :meth:`BatchNode.process` in one call::

    class Upload(BatchNode):
        def process(self, rows):
            ids = my_store.insert_many([r.item.model_dump() for r in rows])
            return [r.item for r in rows]          # one entry per row, same order

    chain = Chain("c", steps=[classify, Upload("upload", batch_size=100)])

or, for a function, ``batch_apply(fn, id="upload", batch_size=100)``.

**Row identity is kept.** ``process`` receives :class:`BatchRow` objects (``row_id``,
``item``: the row's input validated into ``input_model``, ``history``: what templates see)
and returns either a list with one entry per row, in the same order, or a dict keyed by
``row_id``. Each entry is what an apply function returns for one row: a value (the row's
output), a list (``[]`` drops the row, several values fan it out), ``None`` (drops it),
or an ``Exception`` instance: that row alone gets an error record, the others go on. A row
missing from a dict, or a list of the wrong length, is an error record for the rows
concerned; an exception raised by ``process`` is an error record for every row of the batch.

``process`` may be ``async``; with ``blocking=True`` a plain one runs in a worker thread
(use it for I/O). Batches of one node never overlap unless ``concurrency`` > 1.

Nodes are declarations: the runtime that batches rows is :mod:`chainette.run.batching`.
"""

from __future__ import annotations

import inspect
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from pydantic import BaseModel

from chainette.core.names import check_name
from chainette.core.node import Node
from chainette.errors import DefinitionError, DefinitionTypeError

__all__ = ["BatchNode", "BatchRow", "batch_apply"]


@dataclass(frozen=True, slots=True)
class BatchRow:
    """One row handed to :meth:`BatchNode.process`."""

    row_id: str
    """the row's stable id (``"12"``, ``"12.0"`` after a fan-out)"""
    item: Any
    """the row's current value, validated into the node's ``input_model`` when it declares one"""
    history: Mapping[str, Any]
    """read-only: ``chain_input``, every earlier step's output and join alias, by name"""


class BatchNode(Node):
    """A node whose :meth:`process` receives many rows at once (see the module docstring)."""

    kind = "batch"

    def __init__(
        self,
        id: str | None = None,
        *,
        fn: Callable[[list[BatchRow]], Any] | None = None,
        input_model: type[BaseModel] | None = None,
        output_model: type[BaseModel] | None = None,
        batch_size: int = 64,
        max_wait: float = 0.5,
        concurrency: int = 1,
        blocking: bool = False,
        name: str | None = None,
        emoji: str = "",
    ) -> None:
        super().__init__()
        if fn is not None:
            if not callable(fn):
                raise DefinitionTypeError(f"BatchNode fn must be callable, got {type(fn).__name__}")
            self.fn = fn
        elif type(self).process is BatchNode.process:
            raise DefinitionError("a BatchNode needs fn=... or a subclass that defines process(rows)")
        if id is None:
            id = getattr(fn, "__name__", None) or _snake(type(self).__name__)
        self.id = check_name(id, "batch node id")
        self.name = name or self.id
        self.input_model = input_model
        self.output_model = output_model
        if batch_size < 1:
            raise DefinitionError(f"batch node '{self.id}': batch_size must be at least 1, got {batch_size}")
        if max_wait < 0:
            raise DefinitionError(f"batch node '{self.id}': max_wait must be >= 0, got {max_wait}")
        if concurrency < 1:
            raise DefinitionError(f"batch node '{self.id}': concurrency must be at least 1, got {concurrency}")
        self.batch_size = batch_size
        self.max_wait = max_wait
        self.concurrency = concurrency
        self.blocking = blocking
        self.emoji = emoji

    def process(self, rows: list[BatchRow]) -> Any:
        """Process a batch: one entry per row (a list in order, or a dict by ``row_id``)."""
        return self.fn(rows)

    @property
    def is_async(self) -> bool:
        """True when the node's function is a coroutine function (awaited on the event loop)."""
        target = self.fn if type(self).process is BatchNode.process else self.process
        return inspect.iscoroutinefunction(target)

    def describe(self) -> dict[str, Any]:
        d = super().describe()
        target = getattr(self, "fn", None) or type(self)
        d["function"] = f"{getattr(target, '__module__', '?')}:{getattr(target, '__qualname__', repr(target))}"
        d["batch_size"] = self.batch_size
        return d


def batch_apply(
    fn: Callable[[list[BatchRow]], Any] | None = None,
    *,
    id: str | None = None,
    input_model: type[BaseModel] | None = None,
    output_model: type[BaseModel] | None = None,
    batch_size: int = 64,
    max_wait: float = 0.5,
    concurrency: int = 1,
    blocking: bool = False,
) -> Any:
    """A :class:`BatchNode` from ``fn(rows) -> entries``; usable as a decorator too."""

    def build(f: Callable[[list[BatchRow]], Any]) -> BatchNode:
        return BatchNode(
            id,
            fn=f,
            input_model=input_model,
            output_model=output_model,
            batch_size=batch_size,
            max_wait=max_wait,
            concurrency=concurrency,
            blocking=blocking,
        )

    return build if fn is None else build(fn)


def _snake(name: str) -> str:
    out = "".join("_" + c.lower() if c.isupper() else c for c in name).lstrip("_")
    return out or "batch"
