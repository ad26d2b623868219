"""Nodes written for the original Chainette's ``execute`` contract, run as batch nodes.

The original Chainette ran every node through
``execute(inputs, item_histories, writer, debug, batch_size) -> (outputs, histories)``, and
custom nodes (an ``ApplyNode`` subclass that uploads rows, for example) overrode it. This
Chainette runs rows one by one and calls no ``execute``; the extension point for a node that
works on many rows at once is :class:`~chainette.core.batch.BatchNode`.

So that such nodes keep working, ``Chain`` wraps each one in a :class:`LegacyExecuteNode`
when it is built (with a ``DeprecationWarning``): its ``execute`` receives a batch of rows'
items and histories (``writer=None``) and must return one output per input, in order; the
outputs become the node's records. A node whose ``execute`` drops or adds rows cannot keep
row identity: those rows get an error record saying to write a ``BatchNode``.
"""

from __future__ import annotations

import warnings
from typing import Any

from chainette.core.batch import BatchNode, BatchRow
from chainette.core.node import Node, Parallel
from chainette.errors import ApplyError

__all__ = ["LegacyExecuteNode", "adapt_legacy_nodes", "has_legacy_execute", "render"]

MIGRATE_HINT = "subclass chainette.BatchNode and define process(rows) instead (see docs/migrating.md, 'Custom nodes')"


def has_legacy_execute(node: Any) -> bool:
    """Whether ``node`` defines the original Chainette's ``execute`` method."""
    return isinstance(node, Node) and not isinstance(node, BatchNode) and callable(getattr(type(node), "execute", None))


class LegacyExecuteNode(BatchNode):
    """Runs a node with the original ``execute(inputs, item_histories, ...)`` contract."""

    def __init__(self, legacy: Any) -> None:
        self.legacy = legacy
        super().__init__(
            getattr(legacy, "id", None) or type(legacy).__name__.lower(),
            input_model=getattr(legacy, "input_model", None),
            output_model=getattr(legacy, "output_model", None),
            batch_size=int(getattr(legacy, "batch_size", 0) or 64),
            blocking=True,  # legacy nodes are synchronous and often do I/O
            name=getattr(legacy, "name", None),
            emoji=getattr(legacy, "emoji", "") or "",
        )

    def process(self, rows: list[BatchRow]) -> Any:
        outputs, _histories = self.legacy.execute(
            [r.item for r in rows], [dict(r.history) for r in rows], None, False, len(rows)
        )
        outputs = list(outputs)
        if len(outputs) != len(rows):
            msg = (
                f"node '{self.id}' ({type(self.legacy).__name__}.execute) returned {len(outputs)} outputs "
                f"for {len(rows)} inputs, so rows cannot be matched to their outputs; {MIGRATE_HINT}"
            )
            return [ApplyError(msg, node_id=self.id, row_id=r.row_id) for r in rows]
        return outputs

    def describe(self) -> dict[str, Any]:
        d = super().describe()
        d["function"] = f"{type(self.legacy).__module__}:{type(self.legacy).__qualname__}.execute"
        d["legacy_execute"] = True
        return d


def adapt_legacy_nodes(items: list[Any]) -> list[Any]:
    """``items`` with every node defining ``execute`` wrapped in a :class:`LegacyExecuteNode`
    (also inside branches; branch step lists are updated in place)."""
    out: list[Any] = []
    for item in items:
        if isinstance(item, Parallel):
            for branch in item.branches:
                branch.steps[:] = adapt_legacy_nodes(branch.steps)
            out.append(item)
        elif has_legacy_execute(item):
            warnings.warn(
                f"node '{getattr(item, 'id', item)}' ({type(item).__name__}) overrides execute(), the "
                f"original Chainette's node contract; it runs in batches of rows, but {MIGRATE_HINT}",
                DeprecationWarning,
                stacklevel=3,
            )
            out.append(LegacyExecuteNode(item))
        else:
            out.append(item)
    return out


def render(template: str, context: dict[str, Any]) -> str:
    """The original ``chainette.render(template, context)``: a template rendered with the same
    (sandboxed, strict) environment steps use."""
    from chainette.core.templates import compile_template

    return compile_template(template).render(**context)
