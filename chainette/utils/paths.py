"""Paths inside a run directory, confined to it.

Everything a run writes goes through :func:`confined`: the path is resolved (symbolic links
followed) and must stay inside the resolved run directory. A bad id, a tampered journal or
a symbolic link planted in a run directory therefore raises a :class:`ConfigError` instead
of writing (or truncating, or deleting) a file elsewhere.
"""

from __future__ import annotations

import os
from pathlib import Path

from chainette.errors import ConfigError

__all__ = ["confined", "ensure_within", "is_within"]


def is_within(root: str | Path, path: str | Path) -> bool:
    """Whether ``path``, resolved, is ``root`` or lies below it (``root`` resolved too)."""
    base = Path(os.path.realpath(root))
    target = Path(os.path.realpath(path))
    return target == base or base in target.parents


def ensure_within(root: str | Path, path: str | Path) -> Path:
    """Return ``path`` unchanged when it resolves inside ``root``; raise :class:`ConfigError` otherwise."""
    if not is_within(root, path):
        raise ConfigError(
            f"refusing to write '{path}': it resolves to '{os.path.realpath(path)}', outside the run "
            f"directory '{os.path.realpath(root)}' (check the step ids and that no symbolic link in the "
            "run directory points elsewhere)"
        )
    return Path(path)


def confined(root: str | Path, *parts: str | Path) -> Path:
    """``root / part / ...``, checked to resolve inside ``root`` (see the module docstring)."""
    return ensure_within(root, Path(root).joinpath(*parts))
