"""``Node``, the base of every chain element, and the shapes nodes compose into.

Nodes are pure declarations: they hold ids, models and prompts, never connections to
servers; the runtime (``chainette.run``) gives them behaviour. ``a >> b``, ``b | c`` and
``node.join(alias)`` build the composite shapes below, which are nodes themselves, so they
live in this one module:

* A ``Branch`` runs its steps on an isolated copy of each row's history; its outputs are
  written but not merged back.
* A ``JoinBranch`` (``Branch(...).join(alias)``) merges the branch's final output into the
  parent history under ``alias``, matched by row id.
* A ``Parallel`` group holds branches that run concurrently (a list in ``Chain.steps``,
  or ``b | c | d`` in the DSL).
* A ``Sequence`` is what ``a >> b`` builds: an ordered list of chain items.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any, Union

from pydantic import BaseModel

from chainette.core.names import check_name
from chainette.errors import DefinitionError, DefinitionTypeError


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
    def connect(self, *others: Node) -> Node:
        """Add edges ``self -> other`` and return the last node (``a.connect(b).connect(c)``)."""
        for other in others:
            if not isinstance(other, Node):
                raise DefinitionTypeError(f"connect() expects Node objects, got {type(other).__name__}")
            if other not in self.next:
                self.next.append(other)
        return others[-1] if others else self

    # -- DSL ------------------------------------------------------------------
    def __rshift__(self, other: Any) -> Sequence:
        return Sequence([self]) >> other

    def __rrshift__(self, other: Any) -> Sequence:
        return Sequence.coerce(other) >> self

    def __or__(self, other: Any) -> Parallel:
        return Parallel([self]) | other

    def join(self, alias: str) -> JoinBranch:
        """Run this node as a branch and merge its output into the parent under ``alias``."""
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


ChainItem = Union[Node, "Parallel"]


class Branch(Node):
    """A named sub-sequence executed on an isolated copy of each row's history."""

    kind = "branch"

    def __init__(self, name: str, steps: Iterable[Any] | Any, *, id: str | None = None, emoji: str = "") -> None:
        super().__init__()
        if not name:
            raise DefinitionError("Branch needs a name")
        self.name = name
        self.id = (
            check_name(id, "branch id")
            if id
            else check_name(name, "branch id", hint=" (the id defaults to the branch name; pass id='...')")
        )
        self.steps: list[ChainItem] = normalize_items(steps)
        if not self.steps:
            raise DefinitionError(f"Branch '{self.name}' has no steps")
        self.emoji = emoji
        last = self.steps[-1]
        self.output_model = getattr(last, "output_model", None)
        self.input_model = getattr(self.steps[0], "input_model", None)

    def join(self, alias: str) -> JoinBranch:
        """Merge this branch's final output into the parent history under ``alias``."""
        return JoinBranch(name=self.name, steps=self.steps, alias=alias, id=self.id, emoji=self.emoji)

    def describe(self) -> dict[str, Any]:
        d = super().describe()
        d["steps"] = [item.id for item in self.steps]
        return d


class JoinBranch(Branch):
    """A branch whose final output is merged into the parent history under ``alias``."""

    kind = "join_branch"

    def __init__(
        self, name: str, steps: Iterable[Any] | Any, alias: str, *, id: str | None = None, emoji: str = ""
    ) -> None:
        check_name(alias, "join alias")
        super().__init__(name, steps, id=id, emoji=emoji)
        self.alias = alias

    def describe(self) -> dict[str, Any]:
        d = super().describe()
        d["alias"] = self.alias
        return d


class Parallel(Node):
    """Branches that run concurrently on the same rows."""

    kind = "parallel"

    def __init__(self, branches: Iterable[Any]) -> None:
        super().__init__()
        self.branches: list[Branch] = [as_branch(b) for b in branches]
        self.id = "parallel(" + ",".join(b.id for b in self.branches) + ")"
        self.name = self.id

    def __or__(self, other: Any) -> Parallel:
        others = other.branches if isinstance(other, Parallel) else [other]
        return Parallel([*self.branches, *others])

    def __ror__(self, other: Any) -> Parallel:
        return Parallel([other, *self.branches])

    def describe(self) -> dict[str, Any]:
        return {"id": self.id, "name": self.name, "type": self.kind, "branches": [b.id for b in self.branches]}

    def to_chain(self, name: str, **kwargs: Any) -> Any:
        """Deprecated (the original Chainette's DSL): ``Chain(name, steps=[self])``."""
        return _to_chain([self], name, kwargs)


class Sequence(list):
    """An ordered list of chain items built with ``>>``; usable as ``Chain(steps=...)``."""

    @classmethod
    def coerce(cls, value: Any) -> Sequence:
        if isinstance(value, Sequence):
            return cls(value)
        if isinstance(value, (list, tuple)) and not all(isinstance(v, Branch) for v in value):
            return cls(value)
        return cls([value])

    def __rshift__(self, other: Any) -> Sequence:
        out = Sequence(self)
        if isinstance(other, Sequence):
            out.extend(other)
        else:
            out.append(other)
        return out

    def __or__(self, other: Any) -> Parallel:
        return Parallel([self]) | other

    def join(self, alias: str) -> JoinBranch:
        items = normalize_items(self)
        return JoinBranch(name=items[0].id, steps=items, alias=alias)

    def to_chain(self, name: str, **kwargs: Any) -> Any:
        """Deprecated (the original Chainette's DSL): ``Chain(name, steps=self)``."""
        return _to_chain(self, name, kwargs)


def _to_chain(steps: Any, name: str, kwargs: dict[str, Any]) -> Any:
    import warnings

    from chainette.core.extensions import resolve

    warnings.warn(
        ".to_chain(name) is deprecated; use Chain(name, steps=a >> b) or chainette.dsl.chain(name, a >> b) "
        "(see docs/migrating.md)",
        DeprecationWarning,
        stacklevel=3,
    )
    return resolve("chainette.core.chain:Chain")(name=name, steps=steps, **kwargs)  # by name: no import cycle


def as_branch(value: Any) -> Branch:
    """Wrap a bare node or sequence so it can sit in a parallel group."""
    if isinstance(value, Branch):
        return value
    if isinstance(value, Sequence):
        items = normalize_items(value)
        return Branch(name=items[0].id, steps=items)
    if isinstance(value, Node):
        return Branch(name=value.id, steps=[value])
    raise DefinitionTypeError(f"a parallel group holds branches or nodes, got {type(value).__name__}")


def normalize_items(items: Any) -> list[ChainItem]:
    """Turn user input (nodes, lists of branches, sequences, parallels) into chain items."""
    if isinstance(items, (Node, Parallel)):
        items = [items]
    out: list[ChainItem] = []
    for item in items:
        if isinstance(item, Sequence):
            out.extend(normalize_items(item))
        elif isinstance(item, (list, tuple)):
            out.append(Parallel(item))
        elif isinstance(item, Branch):
            out.append(Parallel([item]))  # a lone branch is a parallel group of one
        elif isinstance(item, Node):
            out.append(item)
        else:
            raise DefinitionTypeError(
                f"chain items must be Step, ApplyNode, Branch or a list of branches; got {type(item).__name__}"
            )
    return out
