"""The chain's DAG as inline SVG: a layered (Sugiyama-style) layout of ``graph.json``.

Nodes go to layers by longest path from the inputs; an edge that spans several layers gets
a hidden waypoint in each layer between, so it bends around the nodes instead of crossing
them; within a layer nodes are ordered by the mean position of their parents (a few
sweeps). Pure: ``graph.json`` data in, SVG text out (every text escaped).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from html import escape
from typing import Any

INPUT_NODE = "__inputs__"
NODE_H = 58
LAYER_GAP = 44
NODE_GAP = 22
MARGIN = 16
KIND_STYLE = {  # fill, stroke, label
    "step": ("#e8f1fd", "#2f6fd0", "LLM step"),
    "apply": ("#fdf5e3", "#c48a0b", "python"),
    "batch": ("#fdf5e3", "#c48a0b", "batch"),
    "branch": ("#f6ecfb", "#8a3fb8", "branch"),
    "join_branch": ("#f6ecfb", "#8a3fb8", "branch, joined"),
    "input": ("#eef4ee", "#3b8a3e", "inputs"),
}


@dataclass
class _Node:
    id: str
    label: str
    kind: str
    lines: list[str] = field(default_factory=list)
    error: bool = False
    dummy: bool = False
    layer: int = 0
    width: float = 0.0
    x: float = 0.0
    y: float = 0.0


def dag_svg(
    graph: Mapping[str, Any], stats: Mapping[str, Mapping[str, Any]] | None = None, *, rows_in: int | None = None
) -> str:
    """SVG of the chain's DAG; ``stats`` (step id -> ``{"rows_out", "errors", "engine"}``)
    annotates the nodes."""
    stats = stats or {}
    raw_nodes = [n for n in graph.get("nodes", []) if isinstance(n, dict) and n.get("id")]
    if not raw_nodes:
        return '<p class="muted">graph.json holds no nodes.</p>'
    order = {nid: k for k, nid in enumerate(graph.get("order") or [n["id"] for n in raw_nodes])}
    nodes: dict[str, _Node] = {}
    inputs_label = "inputs" + (f" · {rows_in:,} rows" if rows_in is not None else "")
    nodes[INPUT_NODE] = _Node(INPUT_NODE, "chain input", "input", [inputs_label])
    for n in raw_nodes:
        kind = str(n.get("type", "step"))
        st = stats.get(n["id"], {})
        sub = KIND_STYLE.get(kind, ("", "", kind))[2]
        engine = n.get("engine") or st.get("engine")
        if kind == "step" and engine:
            sub = f"LLM · {engine}"
        if kind == "join_branch" and n.get("alias"):
            sub = f"branch → joined as {n['alias']}"
        lines = [sub]
        error = False
        if "rows_out" in st:
            lines.append(f"{st['rows_out']:,} out · {st.get('errors', 0):,} errors")
            error = bool(st.get("errors"))
        nodes[n["id"]] = _Node(str(n["id"]), str(n["id"]), kind, lines, error)
    edges: list[tuple[str, str, str]] = []
    targets = set()
    for e in graph.get("edges", []):
        s, t = e.get("source"), e.get("target")
        if s in nodes and t in nodes and s != t:
            edges.append((s, t, str(e.get("label") or "")))
            targets.add(t)
    for nid in nodes:
        if nid != INPUT_NODE and nid not in targets:
            edges.append((INPUT_NODE, nid, ""))
    _assign_layers(nodes, edges)
    layers, chains = _add_waypoints(nodes, edges)
    _order_layers(layers, nodes, edges, chains, order)
    width, height = _place(layers, nodes)
    return _draw(nodes, edges, chains, width, height)


def _assign_layers(nodes: dict[str, _Node], edges: list[tuple[str, str, str]]) -> None:
    """Longest path from the inputs (a cycle, which graph.json never holds, is broken)."""
    parents: dict[str, list[str]] = {n: [] for n in nodes}
    for s, t, _ in edges:
        parents[t].append(s)
    state: dict[str, int] = {}

    def depth(nid: str) -> int:
        if state.get(nid) == -1:  # on the stack: a cycle
            return 0
        if nid in state:
            return state[nid]
        state[nid] = -1
        d = max((depth(p) + 1 for p in parents[nid]), default=0)
        state[nid] = d
        return d

    for nid in nodes:
        nodes[nid].layer = depth(nid)


def _add_waypoints(
    nodes: dict[str, _Node], edges: list[tuple[str, str, str]]
) -> tuple[list[list[str]], dict[int, list[str]]]:
    """Layers of node ids, with a hidden waypoint per layer crossed by a long edge;
    ``chains[k]`` is edge ``k``'s path of ids from source to target."""
    chains: dict[int, list[str]] = {}
    for k, (s, t, _) in enumerate(edges):
        path = [s]
        for layer in range(nodes[s].layer + 1, nodes[t].layer):
            wid = f"__w{k}_{layer}"
            nodes[wid] = _Node(wid, "", "dummy", dummy=True, layer=layer)
            path.append(wid)
        path.append(t)
        chains[k] = path
    depth = max(n.layer for n in nodes.values()) + 1
    layers: list[list[str]] = [[] for _ in range(depth)]
    for nid, n in nodes.items():
        layers[n.layer].append(nid)
    return layers, chains


def _order_layers(
    layers: list[list[str]],
    nodes: dict[str, _Node],
    edges: list[tuple[str, str, str]],
    chains: dict[int, list[str]],
    order: Mapping[str, int],
) -> None:
    ups: dict[str, list[str]] = {n: [] for n in nodes}
    for path in chains.values():
        for a, b in zip(path, path[1:], strict=False):
            ups[b].append(a)

    def first_key(nid: str) -> float:
        n = nodes[nid]
        if n.dummy:
            return float(order.get(ups[nid][0], 0)) if ups[nid] else 0.0
        return float(order.get(nid, len(order)))

    for layer in layers:
        layer.sort(key=first_key)
    for _ in range(4):  # barycenter sweeps: a node under the mean position of its parents
        for k in range(1, len(layers)):
            pos = {nid: i for i, nid in enumerate(layers[k - 1])}
            current = {nid: i for i, nid in enumerate(layers[k])}

            layers[k].sort(key=lambda nid: (_bary(ups[nid], pos, current[nid]), current[nid]))


def _bary(parents: list[str], pos: Mapping[str, int], default: int) -> float:
    """The mean position of ``parents`` in the layer above (``default`` without any)."""
    ps = [pos[p] for p in parents if p in pos]
    return sum(ps) / len(ps) if ps else float(default)


def _place(layers: list[list[str]], nodes: dict[str, _Node]) -> tuple[float, float]:
    for n in nodes.values():
        if n.dummy:
            n.width = 10.0
        else:
            longest = max([len(n.label) * 8.2] + [len(line) * 6.6 for line in n.lines])
            n.width = max(130.0, longest + 28)
    widths = [sum(nodes[i].width for i in layer) + NODE_GAP * (len(layer) - 1) for layer in layers]
    total_w = max(widths) + 2 * MARGIN
    for k, layer in enumerate(layers):
        x = (total_w - widths[k]) / 2
        for nid in layer:
            n = nodes[nid]
            n.x = x
            n.y = MARGIN + k * (NODE_H + LAYER_GAP)
            x += n.width + NODE_GAP
    total_h = MARGIN * 2 + len(layers) * NODE_H + (len(layers) - 1) * LAYER_GAP
    return total_w, total_h


def _draw(
    nodes: dict[str, _Node],
    edges: list[tuple[str, str, str]],
    chains: dict[int, list[str]],
    width: float,
    height: float,
) -> str:
    out = [
        f'<svg class="dag" xmlns="http://www.w3.org/2000/svg" viewBox="0 0 {width:.0f} {height:.0f}" '
        f'width="{width:.0f}" height="{height:.0f}" role="img" aria-label="the chain as a graph">',
        '<defs><marker id="arrow" viewBox="0 0 10 10" refX="9" refY="5" markerWidth="7" markerHeight="7" '
        'orient="auto-start-reverse"><path d="M0,0 L10,5 L0,10 z" fill="#7a8494"/></marker></defs>',
    ]
    for k, (s, t, label) in enumerate(edges):
        pts = []
        for nid in chains[k]:
            n = nodes[nid]
            cx = n.x + n.width / 2
            if nid == s:
                pts.append((cx, n.y + NODE_H))
            elif nid == t:
                pts.append((cx, n.y))
            else:
                pts.append((cx, n.y))
                pts.append((cx, n.y + NODE_H))
        d = f"M{pts[0][0]:.1f},{pts[0][1]:.1f}"
        for (x0, y0), (x1, y1) in zip(pts, pts[1:], strict=False):
            my = (y0 + y1) / 2
            d += f" C{x0:.1f},{my:.1f} {x1:.1f},{my:.1f} {x1:.1f},{y1:.1f}"
        dashed = ' stroke-dasharray="5 4"' if label else ""
        out.append(
            f'<path class="edge" d="{d}" fill="none" stroke="#7a8494" stroke-width="1.6"{dashed} '
            f'marker-end="url(#arrow)"><title>{escape(s)} → {escape(t)}{escape(" (" + label + ")" if label else "")}'
            "</title></path>"
        )
        if label:  # beside the edge's start: two joins into one node keep their labels apart
            x, y = pts[0]
            out.append(
                f'<text class="edge-label" x="{x + 6:.1f}" y="{y + 14:.1f}" font-size="11" '
                f'fill="#5b6575">{escape(label)}</text>'
            )
    for n in nodes.values():
        if n.dummy:
            continue
        fill, stroke, _ = KIND_STYLE.get(n.kind, ("#f3f4f6", "#6b7280", n.kind))
        if n.error:
            stroke = "#c62828"
        dash = ' stroke-dasharray="6 3"' if n.kind in ("branch", "join_branch") else ""
        cx = n.x + n.width / 2
        out.append(
            f'<g class="dag-node" data-node="{escape(n.id)}" data-kind="{escape(n.kind)}">'
            f'<rect x="{n.x:.1f}" y="{n.y:.1f}" width="{n.width:.1f}" height="{NODE_H}" rx="9" '
            f'fill="{fill}" stroke="{stroke}" stroke-width="1.8"{dash}/>'
            f'<text x="{cx:.1f}" y="{n.y + 19:.1f}" text-anchor="middle" font-size="14" '
            f'font-weight="600" fill="#1f2933">{escape(n.label)}</text>'
        )
        for j, line in enumerate(n.lines[:2]):
            colour = "#c62828" if (n.error and j == 1) else "#52606d"
            out.append(
                f'<text x="{cx:.1f}" y="{n.y + 35 + 14 * j:.1f}" text-anchor="middle" font-size="11" '
                f'fill="{colour}">{escape(line)}</text>'
            )
        out.append("</g>")
    out.append("</svg>")
    return "".join(out)
