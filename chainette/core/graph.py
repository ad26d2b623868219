"""``Graph``: nodes and edges, topological order, cycle detection, and the chain-item view.

A graph is built either from ``.connect()`` edges (``Graph(roots=[a])``) or from a chain's
items (``Graph.from_items``). ``to_items()`` turns a connect-built DAG into chain items: a
node with several successors starts parallel branches, several roots start the chain with
branches. A node with several predecessors is rejected: merge with ``Branch.join(alias)``.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

from chainette.core.branch import Branch, ChainItem, JoinBranch, Parallel
from chainette.core.node import Node
from chainette.errors import ChainValidationError, Problem


@dataclass(frozen=True)
class Edge:
    source: str
    target: str
    label: str = ""


class Graph:
    """A DAG of nodes. ``Graph(roots=[a])`` follows ``a.next`` edges."""

    def __init__(self, roots: Iterable[Node] | Node | None = None) -> None:
        if isinstance(roots, Node):
            roots = [roots]
        self.roots: list[Node] = list(roots or [])
        self.nodes: dict[str, Node] = {}
        self.edges: list[Edge] = []
        for root in self.roots:
            self._collect(root)
        self._check_acyclic()

    def _collect(self, node: Node) -> None:
        stack = [node]
        while stack:
            n = stack.pop()
            if n.id in self.nodes:
                continue
            self.nodes[n.id] = n
            for child in n.next:
                self.edges.append(Edge(n.id, child.id))
                stack.append(child)

    # -- ordering ---------------------------------------------------------------
    def _check_acyclic(self) -> None:
        WHITE, GREY, BLACK = 0, 1, 2
        color = {nid: WHITE for nid in self.nodes}
        succ = self.successors()

        def visit(nid: str, path: list[str]) -> None:
            color[nid] = GREY
            for child in succ.get(nid, []):
                if color[child] == GREY:
                    cycle = path[path.index(child) :] + [child] if child in path else [nid, child]
                    raise ChainValidationError(
                        [Problem("graph", "cycle detected: " + " -> ".join(cycle) + "; chains must be acyclic")]
                    )
                if color[child] == WHITE:
                    visit(child, path + [child])
            color[nid] = BLACK

        for nid in list(self.nodes):
            if color[nid] == WHITE:
                visit(nid, [nid])

    def successors(self) -> dict[str, list[str]]:
        """The nodes ``node`` has edges to."""
        out: dict[str, list[str]] = {nid: [] for nid in self.nodes}
        for e in self.edges:
            out.setdefault(e.source, []).append(e.target)
        return out

    def predecessors(self) -> dict[str, list[str]]:
        """The nodes with an edge to ``node``."""
        out: dict[str, list[str]] = {nid: [] for nid in self.nodes}
        for e in self.edges:
            out.setdefault(e.target, []).append(e.source)
        return out

    def topological_order(self) -> list[str]:
        """Node ids in dependency order (Kahn's algorithm, stable by insertion order)."""
        preds = {k: len(v) for k, v in self.predecessors().items()}
        succ = self.successors()
        ready = [nid for nid in self.nodes if preds[nid] == 0]
        order: list[str] = []
        while ready:
            nid = ready.pop(0)
            order.append(nid)
            for child in succ.get(nid, []):
                preds[child] -= 1
                if preds[child] == 0:
                    ready.append(child)
        return order

    # -- conversion -------------------------------------------------------------
    def to_items(self) -> list[ChainItem]:
        """Chain items equivalent to this connect-built graph."""
        preds = self.predecessors()
        merged = [nid for nid, p in preds.items() if len(p) > 1]
        if merged:
            raise ChainValidationError(
                [
                    Problem(nid, "has several predecessors; merge branches with Branch(...).join(alias) instead")
                    for nid in merged
                ]
            )
        if len(self.roots) == 1:
            return self._path(self.roots[0])
        return [Parallel([Branch(name=r.id, steps=self._path(r)) for r in self.roots])]

    def _path(self, node: Node) -> list[ChainItem]:
        items: list[ChainItem] = []
        current: Node | None = node
        while current is not None:
            items.append(current)
            if len(current.next) == 1:
                current = current.next[0]
            else:
                if current.next:
                    items.append(Parallel([Branch(name=c.id, steps=self._path(c)) for c in current.next]))
                current = None
        return items

    @classmethod
    def from_items(cls, items: list[ChainItem]) -> Graph:
        """The graph of a chain's items: every node (branches and steps) and every edge."""
        g = cls()
        _add_items(g, items, prev=[])
        return g

    def to_dict(self) -> dict[str, Any]:
        """A JSON-ready description (nodes and edges), as written to ``graph.json``."""
        return {
            "nodes": [n.describe() for n in self.nodes.values()],
            "edges": [
                {"source": e.source, "target": e.target, **({"label": e.label} if e.label else {})} for e in self.edges
            ],
            "order": self.topological_order(),
        }


def _add_items(g: Graph, items: list[ChainItem], prev: list[tuple[str, str]]) -> list[tuple[str, str]]:
    """Add ``items`` after the ``prev`` frontier; return the new frontier of (node id, label)."""
    frontier = prev
    for item in items:
        if isinstance(item, Parallel):
            joined: list[tuple[str, str]] = []
            for branch in item.branches:
                g.nodes[branch.id] = branch
                for src, label in frontier:
                    g.edges.append(Edge(src, branch.id, label))
                tail = _add_items(g, branch.steps, [(branch.id, "")])
                if isinstance(branch, JoinBranch):
                    joined.extend((src, f"join:{branch.alias}") for src, _ in tail)
            # the main line continues from the node before the group, plus the joins
            frontier = [(src, "") for src, _ in frontier] + joined
        else:
            g.nodes[item.id] = item
            for src, label in frontier:
                g.edges.append(Edge(src, item.id, label))
            frontier = [(item.id, "")]
    return frontier
