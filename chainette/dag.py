"""Pure DAG renderers: a rich ``Tree``, plain text (Unicode or ASCII) and Mermaid.

The tree mirrors execution order: top-level items in order, a parallel group as a node
whose children are its branches, a branch's steps under it. Colours: Step cyan, Apply
yellow, Branch magenta, parallel group blue. Icons: 🤖 Step, 📄 Apply, 🪢 Branch,
🔀 parallel; ``icons=False`` uses ASCII tags and ASCII guide lines instead.

Nothing here does I/O; saving or printing the result is the caller's job.
"""

from __future__ import annotations

import io
from collections.abc import Iterable, Mapping
from typing import Any

from rich.console import Console
from rich.text import Text
from rich.tree import Tree

from chainette.errors import DefinitionError

__all__ = ["to_ascii", "to_mermaid", "to_rich_tree", "to_text"]

ICONS = {
    "step": "🤖",
    "apply": "📄",
    "batch": "📦",
    "branch": "🪢",
    "join_branch": "🪢",
    "parallel": "🔀",
    "chain": "🔗",
}
TAGS = {
    "step": "[step]",
    "apply": "[apply]",
    "batch": "[batch]",
    "branch": "[branch]",
    "join_branch": "[join]",
    "parallel": "[parallel]",
    "chain": "[chain]",
}
STYLES = {
    "step": "cyan",
    "apply": "yellow",
    "batch": "yellow",
    "branch": "magenta",
    "join_branch": "magenta",
    "parallel": "bold blue",
    "chain": "bold",
}


class _AsciiTree(Tree):
    """A ``Tree`` that always draws ASCII guide lines (``+--``, ``|``, ```--``)."""

    def __rich_console__(self, console: Any, options: Any) -> Any:
        opts = options.copy()
        opts.encoding = "ascii"
        return super().__rich_console__(console, opts)


def _items_of(chain: Any) -> list[Any]:
    if hasattr(chain, "items") and not isinstance(chain, Mapping):
        return list(chain.items)
    from chainette.core.branch import normalize_items

    return normalize_items(chain)


def _engine_label(step: Any, engines: Mapping[str, Any] | None, sep: str = " · ") -> tuple[str, bool]:
    """``"gpt4 · openai"`` and whether the engine is known."""
    name = getattr(step, "engine_name", None) or "?"
    cfg = None
    if engines is not None and name in engines:
        cfg = engines[name]
    else:
        from chainette.engine.registry import get_engine_config, has_engine

        if has_engine(name):
            cfg = get_engine_config(name)
    if cfg is None:
        return f"{name}{sep}unregistered", False
    backend = getattr(cfg, "backend", None) or type(cfg).__name__
    return f"{name}{sep}{backend}", True


def _label(node: Any, kind: str, icons: bool, engines: Mapping[str, Any] | None, extra: str = "") -> Text:
    text = Text()
    marker = ICONS.get(kind, "") if icons else TAGS.get(kind, f"[{kind}]")
    if marker:
        text.append(marker + " ")
    text.append(str(getattr(node, "id", node)), style=STYLES.get(kind, ""))
    if kind == "step":
        label, known = _engine_label(node, engines, " · " if icons else " | ")
        text.append(" ")
        text.append(f"[{label}]", style="dim" if known else "red")
    elif kind == "apply":
        text.append(" (python)", style="dim")
    elif kind == "batch":
        text.append(f" (python, batches of {node.batch_size})", style="dim")
    elif kind == "join_branch":
        text.append(f" {'⇢' if icons else '->'} join as '{node.alias}'", style="dim")
    if extra:
        text.append(extra, style="dim")
    return text


def _kind(node: Any) -> str:
    return getattr(node, "kind", type(node).__name__.lower())


def _add_items(
    parent: Tree, items: Iterable[Any], icons: bool, max_branches: int | None, engines: Mapping[str, Any] | None
) -> None:
    for item in items:
        kind = _kind(item)
        if kind == "parallel" and len(item.branches) == 1:  # a lone branch: nothing runs beside it
            item = item.branches[0]
            kind = _kind(item)
        if kind == "parallel":
            branches = list(item.branches)
            label = Text()
            label.append(
                (ICONS["parallel"] + " parallel" if icons else TAGS["parallel"]) + " ", style=STYLES["parallel"]
            )
            label.append(f"{len(branches)} branches", style=STYLES["parallel"])
            group = parent.add(label)
            shown = branches if max_branches is None or len(branches) <= max_branches else branches[:max_branches]
            for branch in shown:
                node = group.add(_label(branch, _kind(branch), icons, engines))
                _add_items(node, branch.steps, icons, max_branches, engines)
            hidden = len(branches) - len(shown)
            if hidden:
                group.add(
                    Text(
                        f"{'…' if icons else '...'} {hidden} more branch{'es' if hidden != 1 else ''}",
                        style="dim italic",
                    )
                )
        elif kind in ("branch", "join_branch"):
            node = parent.add(_label(item, kind, icons, engines))
            _add_items(node, item.steps, icons, max_branches, engines)
        else:
            parent.add(_label(item, kind, icons, engines))


def to_rich_tree(
    chain: Any, icons: bool = True, max_branches: int | None = None, *, engines: Mapping[str, Any] | None = None
) -> Tree:
    """A rich ``Tree`` of ``chain`` (a ``Chain`` or a list of chain items).

    ``max_branches`` collapses parallel groups larger than that into "… N more branches".
    ``engines`` maps engine names to configs for the backend label (default: the registry).
    """
    if max_branches is not None and max_branches < 1:
        raise DefinitionError(f"max_branches must be at least 1, got {max_branches}")
    root_label = Text()
    root_label.append((ICONS["chain"] if icons else TAGS["chain"]) + " ")
    root_label.append(str(getattr(chain, "name", "chain")), style=STYLES["chain"])
    tree_cls = Tree if icons else _AsciiTree
    tree = tree_cls(root_label, guide_style="dim")
    _add_items(tree, _items_of(chain), icons, max_branches, engines)
    return tree


def to_text(
    chain: Any,
    icons: bool = True,
    max_branches: int | None = None,
    *,
    engines: Mapping[str, Any] | None = None,
    width: int = 200,
) -> str:
    """The tree as plain text: Unicode guides and icons, or pure ASCII with ``icons=False``."""
    buf = io.StringIO()
    console = Console(
        file=buf,
        width=width,
        color_system=None,
        force_terminal=False,
        legacy_windows=False,
        emoji=False,
        highlight=False,
        soft_wrap=False,
    )
    console.print(to_rich_tree(chain, icons=icons, max_branches=max_branches, engines=engines))
    return "\n".join(line.rstrip() for line in buf.getvalue().splitlines()) + "\n"


def to_ascii(
    chain: Any, icons: bool = False, max_branches: int | None = None, *, engines: Mapping[str, Any] | None = None
) -> str:
    """Plain-text tree; pure ASCII unless ``icons=True`` (then Unicode guides and emoji)."""
    return to_text(chain, icons=icons, max_branches=max_branches, engines=engines)


# -- mermaid ---------------------------------------------------------------------------


def _mid(key: str, used: dict[str, str]) -> str:
    if key not in used:
        base = key.rsplit("#", 1)[0]
        safe = "".join(c if c.isalnum() or c == "_" else "_" for c in base) or "n"
        candidate, i = safe, 1
        while candidate in used.values():
            i += 1
            candidate = f"{safe}_{i}"
        used[key] = candidate
    return used[key]


def _esc(text: str) -> str:
    return text.replace('"', "#quot;")


def to_mermaid(chain: Any, *, engines: Mapping[str, Any] | None = None) -> str:
    """A Mermaid ``flowchart TD`` of the chain: steps as boxes, applies as rounded boxes,
    branches as subgraphs, joins as dotted edges labelled with the alias."""
    lines = ["flowchart TD"]
    used: dict[str, str] = {}
    classes: dict[str, list[str]] = {"step": [], "apply": []}
    counter = [0]

    def node_line(node: Any, indent: str) -> str:
        mid = _mid(f"{node.id}#{id(node)}", used)
        kind = _kind(node)
        if kind == "step":
            label, _ = _engine_label(node, engines)
            classes["step"].append(mid)
            return f'{indent}{mid}["{_esc(node.id)}<br/><small>{_esc(label)}</small>"]'
        classes["apply"].append(mid)
        return f'{indent}{mid}("{_esc(node.id)}")'

    def walk(items: list[Any], prev: list[str], indent: str) -> list[str]:
        """Emit nodes and edges for ``items`` after ``prev``; return the new frontier."""
        frontier = prev
        for item in items:
            kind = _kind(item)
            if kind == "parallel":
                joined: list[str] = []
                for branch in item.branches:
                    tail = walk_branch(branch, frontier, indent)
                    if _kind(branch) == "join_branch":
                        joined.extend(f"{t}|{branch.alias}" for t in tail)
                frontier = list(frontier) + joined
            elif kind in ("branch", "join_branch"):
                tail = walk_branch(item, frontier, indent)
                if kind == "join_branch":
                    frontier = list(frontier) + [f"{t}|{item.alias}" for t in tail]
            else:
                lines.append(node_line(item, indent))
                mid = used[f"{item.id}#{id(item)}"]
                for src in frontier:
                    if "|" in src:
                        s, alias = src.split("|", 1)
                        lines.append(f"{indent}{s} -. {alias} .-> {mid}")
                    else:
                        lines.append(f"{indent}{src} --> {mid}")
                frontier = [mid]
        return frontier

    def walk_branch(branch: Any, prev: list[str], indent: str) -> list[str]:
        counter[0] += 1
        sg = _mid(f"sg_{branch.id}#{id(branch)}", used)
        title = branch.name + (f" (join as {branch.alias})" if _kind(branch) == "join_branch" else "")
        lines.append(f'{indent}subgraph {sg}["{_esc(title)}"]')
        tail = walk(list(branch.steps), [], indent + "  ")
        lines.append(f"{indent}end")
        # connect the predecessors to the branch's first node
        first = _first_node_ids(branch.steps, used)
        edges = [f"{indent}{src.split('|', 1)[0]} --> {f}" for src in prev for f in first]
        lines.extend(edges)
        return tail

    walk(_items_of(chain), [], "  ")
    lines.append("  classDef step fill:#e0f7fa,stroke:#00838f")
    lines.append("  classDef apply fill:#fff8e1,stroke:#f9a825")
    for cls, ids in classes.items():
        if ids:
            lines.append(f"  class {','.join(ids)} {cls}")
    return "\n".join(lines) + "\n"


def _first_node_ids(items: list[Any], used: dict[str, str]) -> list[str]:
    if not items:
        return []
    first = items[0]
    kind = _kind(first)
    if kind == "parallel":
        out: list[str] = []
        for b in first.branches:
            out.extend(_first_node_ids(b.steps, used))
        return out
    if kind in ("branch", "join_branch"):
        return _first_node_ids(first.steps, used)
    key = f"{first.id}#{id(first)}"
    return [used[key]] if key in used else []
