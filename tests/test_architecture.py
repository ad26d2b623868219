"""The package's layers: imports only point down, and no module imports itself in a cycle.

Layer order, highest first (a module may import its own group and any lower layer, never a
higher one; io sits above engine because the item cache stores engine completions):

    public door (chainette/__init__)
    cli (cli, cli_support, __main__)
    authoring tools over the model (dsl, dag, yaml_loader)
    run (the runtime: executors, row runners, engines of a run, stages)
    io (readers, writers, journal, item cache)
    engine (backends, servers, registry)
    core (the pure model)
    helpers (utils, events)
    errors

Every import counts: module level, inside functions, and under ``TYPE_CHECKING``. The
only exceptions are the compatibility modules that keep the spec's import paths working
(they re-export a higher layer and contain nothing else) - listed in COMPAT_PATHS.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

import chainette

ROOT = Path(chainette.__file__).parent

LAYERS: dict[str, tuple[str, int]] = {
    # module or package prefix: (group, layer)
    "chainette.errors": ("errors", 0),
    "chainette.utils": ("helpers", 1),
    "chainette.events": ("helpers", 1),
    "chainette._version": ("helpers", 1),
    "chainette.core": ("core", 2),
    "chainette.engine": ("engine", 3),
    "chainette.io": ("io", 4),
    "chainette.run": ("run", 5),
    "chainette.dsl": ("authoring", 6),
    "chainette.dag": ("authoring", 6),
    "chainette.yaml_loader": ("authoring", 6),
    "chainette.cli_support": ("cli", 7),
    "chainette.cli": ("cli", 7),
    "chainette.__main__": ("cli", 7),
    "chainette": ("public", 8),
}

COMPAT_PATHS = {
    "chainette.core.executor",
    "chainette.core.async_executor",
    "chainette.utils.validate",
    "chainette.utils.templates",
    "chainette.utils.dag",
    "chainette.utils.events",
}


def _module_name(path: Path) -> str:
    rel = path.relative_to(ROOT.parent).with_suffix("")
    parts = list(rel.parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def _imports(path: Path, name: str) -> set[str]:
    tree = ast.parse(path.read_text(encoding="utf-8"))
    is_pkg = path.name == "__init__.py"
    found: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found |= {a.name for a in node.names if a.name.split(".")[0] == "chainette"}
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = name.split(".") if is_pkg else name.split(".")[:-1]
                base = base[: len(base) - node.level + 1]
                target = ".".join(base + ([node.module] if node.module else []))
            else:
                target = node.module or ""
            if target.split(".")[0] != "chainette":
                continue
            for alias in node.names:  # `from chainette.core import extensions` imports a module
                sub = f"{target}.{alias.name}"
                if (ROOT.parent / (sub.replace(".", "/") + ".py")).exists() or (
                    ROOT.parent / sub.replace(".", "/")
                ).is_dir():
                    found.add(sub)
                else:
                    found.add(target)
    return found


def _graph() -> dict[str, set[str]]:
    modules = {_module_name(p): p for p in ROOT.rglob("*.py")}
    return {
        name: {t for t in _imports(path, name) if t in modules or t == "chainette"} for name, path in modules.items()
    }


def _layer(module: str) -> tuple[str, int]:
    best = max((k for k in LAYERS if module == k or module.startswith(k + ".")), key=len)
    return LAYERS[best]


def test_every_module_has_a_layer():
    for module in _graph():
        assert _layer(module), module


def test_imports_point_down_the_layers():
    bad = []
    for module, targets in _graph().items():
        if module in COMPAT_PATHS:
            continue
        group, rank = _layer(module)
        for target in targets:
            tgroup, trank = _layer(target)
            if tgroup == group:
                continue
            if trank >= rank:
                bad.append(f"{module} ({group}, layer {rank}) imports {target} ({tgroup}, layer {trank})")
    assert not bad, "imports against the layer order:\n" + "\n".join(sorted(bad))


def test_compat_paths_only_reexport():
    for module in COMPAT_PATHS:
        path = ROOT.parent / (module.replace(".", "/") + ".py")
        tree = ast.parse(path.read_text(encoding="utf-8"))
        kinds = {type(n).__name__ for n in tree.body}
        assert kinds <= {"Expr", "ImportFrom", "Assign"}, f"{module} should only re-export, has {kinds}"


def test_no_import_cycles():
    graph = _graph()
    # package __init__ files are entered on the way to any submodule; do not count that edge
    edges = {m: {t for t in ts if t != m} for m, ts in graph.items()}
    state: dict[str, int] = {}
    stack: list[str] = []
    cycles: list[list[str]] = []

    def visit(m: str) -> None:
        state[m] = 1
        stack.append(m)
        for t in sorted(edges.get(m, ())):
            if state.get(t) == 1:
                cycles.append(stack[stack.index(t) :] + [t])
            elif t not in state:
                visit(t)
        stack.pop()
        state[m] = 2

    for m in sorted(edges):
        if m not in state:
            visit(m)
    assert not cycles, "import cycles:\n" + "\n".join(" -> ".join(c) for c in cycles)


@pytest.mark.parametrize("module", sorted(COMPAT_PATHS))
def test_compat_paths_import(module):
    __import__(module)
