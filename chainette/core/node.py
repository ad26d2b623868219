"""``Node``: the base of every chain element, with ``.connect()`` and the ``>>`` / ``|`` DSL.

Nodes are pure declarations: they hold ids, models and prompts, never connections to
servers. The executor (``core/run/``) gives them behaviour.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, Iterable

from pydantic import BaseModel

if TYPE_CHECKING:
    from chainette.core.branch import JoinBranch, Parallel, Sequence


class Node:
    """Base class of Step, ApplyNode, Branch and JoinBranch."""

    kind: str = "node"
    id: str
    name: str
    input_model: type[BaseModel] | None = None
    output_model: type[BaseModel] | None = None
    emoji: str = ""

    def __init__(self) -> None:
        self.next: list[Node] = []

    # -- explicit graph building ------------------------------------------
    def connect(self, *others: "Node") -> "Node":
        """Add edges ``self -> other`` and return the last node (``a.connect(b).connect(c)``)."""
        for other in others:
            if not isinstance(other, Node):
                raise TypeError(f"connect() expects Node objects, got {type(other).__name__}")
            if other not in self.next:
                self.next.append(other)
        return others[-1] if others else self

    # -- DSL ------------------------------------------------------------------
    def __rshift__(self, other: Any) -> "Sequence":
        from chainette.core.branch import Sequence

        return Sequence([self]) >> other

    def __rrshift__(self, other: Any) -> "Sequence":
        from chainette.core.branch import Sequence

        return Sequence.coerce(other) >> self

    def __or__(self, other: Any) -> "Parallel":
        from chainette.core.branch import Parallel

        return Parallel([self]) | other

    def join(self, alias: str) -> "JoinBranch":
        """Run this node as a branch and merge its output into the parent under ``alias``."""
        from chainette.core.branch import JoinBranch

        return JoinBranch(name=self.id, steps=[self], alias=alias)

    # -- introspection ----------------------------------------------------------
    def describe(self) -> dict[str, Any]:
        """A JSON-ready description for ``graph.json``."""
        return {
            "id": self.id,
            "name": self.name,
            "type": self.kind,
            "input_model": _model_name(self.input_model),
            "output_model": _model_name(self.output_model),
            "input_schema": _schema(self.input_model),
            "output_schema": _schema(self.output_model),
        }

    def __repr__(self) -> str:
        return f"{type(self).__name__}(id={self.id!r})"


def _model_name(model: type[BaseModel] | None) -> str | None:
    return None if model is None else model.__name__


def _schema(model: type[BaseModel] | None) -> dict[str, Any] | None:
    return None if model is None else model.model_json_schema()


def iter_ids(nodes: Iterable[Node]) -> list[str]:
    return [n.id for n in nodes]
