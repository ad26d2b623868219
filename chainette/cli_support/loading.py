"""Load what a command works on: an engines file, and a chain from a reference or YAML file."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

from chainette.errors import ConfigError

YAML_SUFFIXES = (".yml", ".yaml")


def load_engines(path: str | Path | None) -> list[Any]:
    """Register the engines of an ``engines.yml`` file (no-op for ``None``)."""
    if path is None:
        return []
    from chainette.engine.registry import load_engines_file

    return load_engines_file(path)


def load_chain(
    target: str, *, symbols: Sequence[str] = (), check_engines: bool = False, allow_imports: Sequence[str] = ()
) -> Any:
    """A ``Chain`` from ``file.py:attr``, ``module:attr`` or a YAML chain file (which may import
    only from its directory, ``symbols`` and ``allow_imports``)."""
    from chainette.core.chain import Chain

    if target.lower().endswith(YAML_SUFFIXES):
        from chainette.yaml_loader import load_chain as load_yaml

        return load_yaml(target, symbols=list(symbols), check_engines=check_engines, allow_imports=list(allow_imports))
    if ":" not in target:
        hint = ""
        if target.endswith(".py"):
            hint = f" (for example '{target}:chain')"
        raise ConfigError(
            f"'{target}' does not name a chain: write FILE.py:ATTR or MODULE:ATTR{hint}, or pass a .yml chain file"
        )
    from chainette.utils.symbols import resolve_symbol

    obj = resolve_symbol(target, symbols=symbols, what="chain")
    if isinstance(obj, Chain):
        return obj
    from chainette.core.branch import Parallel
    from chainette.core.branch import Sequence as Seq
    from chainette.core.node import Node

    if isinstance(obj, (Node, Parallel, Seq)):
        return Chain(name=target.rpartition(":")[2], steps=obj)
    if callable(obj) and not isinstance(obj, type):
        try:
            built = obj()
        except TypeError:
            built = None
        if isinstance(built, Chain):
            return built
    raise ConfigError(
        f"'{target}' is a {type(obj).__name__}, not a Chain; point at a chainette.Chain object "
        "(or a function returning one)"
    )
