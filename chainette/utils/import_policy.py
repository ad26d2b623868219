"""Which modules a YAML chain may import (see docs/security.md, "YAML chains are code").

A YAML chain names Python objects (``output_model: models:Answer``, ``function: pkg.mod:fn``)
and loading it imports their modules, which runs their code. A chain file from elsewhere may
therefore import only:

* modules and ``.py`` files in the YAML file's own directory (and its subdirectories),
* the modules passed with ``--symbols`` (``symbols=[...]``),
* the modules, ``.py`` files or directories allowed with ``--allow-import`` (``allow_imports=[...]``);
  a module name allows its submodules too.

Anything else (``function: os:system``, ``../elsewhere/x.py:f``) is refused *before* it is
imported, with a :class:`ConfigError` naming the module and the option that allows it.
"""

from __future__ import annotations

import importlib.util
import os
import sys
from collections.abc import Iterable
from pathlib import Path
from types import ModuleType
from typing import Any

from chainette.errors import ConfigError
from chainette.utils.symbols import split_reference

__all__ = ["ImportPolicy"]


def _is_path(module: str) -> bool:
    return module.endswith(".py") or "/" in module or "\\" in module


def _within(root: Path, path: Path) -> bool:
    return path == root or root in path.parents


class ImportPolicy:
    """The import allow-list of one YAML chain (``base_dir``: the YAML file's directory, if any)."""

    def __init__(
        self,
        base_dir: str | Path | None,
        *,
        symbols: Iterable[str | ModuleType] = (),
        allow_imports: Iterable[str | ModuleType] = (),
    ) -> None:
        self.base_dir = Path(os.path.realpath(base_dir)) if base_dir is not None else None
        self.names: set[str] = set()
        self.paths: list[Path] = []
        for entry in [*symbols, *allow_imports]:
            if isinstance(entry, ModuleType):
                self.names.add(entry.__name__)
                file = getattr(entry, "__file__", None)
                if file:
                    self.paths.append(Path(os.path.realpath(file)))
            elif _is_path(str(entry)):
                self.paths.append(self._path(str(entry), prefer_cwd=True))
            else:
                self.names.add(str(entry).strip())

    def _path(self, module: str, *, prefer_cwd: bool = False) -> Path:
        p = Path(module).expanduser()
        if not p.is_absolute():
            if self.base_dir is not None and not (prefer_cwd and p.exists()):
                p = self.base_dir / p
        return Path(os.path.realpath(p))

    def check(self, ref: str) -> str:
        """Return the reference to resolve (a ``.py`` path made absolute, so it is the file that
        was checked), or raise :class:`ConfigError` when its module is not allowed."""
        ref = ref.strip()
        if ":" not in ref or (len(ref) > 1 and ref[1] == ":" and ref.count(":") == 1):
            return ref  # a bare name: looked up in the --symbols modules only
        try:
            module, attr = split_reference(ref)
        except ConfigError:
            return ref  # malformed: resolve_symbol says how to write it
        if _is_path(module):
            path = self._path(module)
            if (self.base_dir is not None and _within(self.base_dir, path)) or any(
                _within(allowed, path) for allowed in self.paths
            ):
                return f"{path}:{attr}"
            raise self._refused(f"file '{module}' (resolved to '{path}')", str(path))
        if any(module == n or module.startswith(n + ".") for n in self.names):
            return ref
        top = module.split(".", 1)[0]
        if self.base_dir is not None and module == top and (self.base_dir / f"{top}.py").is_file():
            # a module file beside the YAML file: load that very file, whatever else is called so
            return f"{self.base_dir / (top + '.py')}:{attr}"
        if self.base_dir is not None and self._local(top):
            return ref
        raise self._refused(f"module '{module}'", top)

    def _local(self, top: str) -> bool:
        """Whether the top-level package ``top`` is in the YAML directory and an import finds it there."""
        base = self.base_dir
        assert base is not None
        if not ((base / f"{top}.py").is_file() or (base / top).is_dir()):
            return False
        # make the YAML directory importable, in front of the current directory (which
        # resolve_symbol puts on sys.path), then check that an import finds this very module
        cwd = str(Path.cwd())
        if cwd not in sys.path:
            sys.path.insert(0, cwd)
        if str(base) not in sys.path:
            sys.path.insert(0, str(base))
        try:
            spec = importlib.util.find_spec(top)
        except (ImportError, ValueError):
            return False
        if spec is None:
            return False
        places: list[Any] = [spec.origin] if spec.origin else []
        places += list(spec.submodule_search_locations or [])
        resolved = [Path(os.path.realpath(p)) for p in places if p and p not in ("built-in", "frozen")]
        if resolved and all(_within(base, p) for p in resolved):
            return True
        raise ConfigError(
            f"module '{top}' exists in the YAML file's directory {base}, but importing '{top}' finds "
            f"{resolved[0] if resolved else 'another module'} (already imported, or earlier on sys.path); "
            f"rename one of them or write the reference as a file path ('{top}.py:Name')"
        )

    def _refused(self, what: str, allow: str) -> ConfigError:
        where = f"its own directory ({self.base_dir})" if self.base_dir is not None else "no directory (no YAML file)"
        return ConfigError(
            f"import of {what} refused: a YAML chain may import only from {where}, the modules passed "
            f"with --symbols and those allowed with --allow-import. If you trust it, pass "
            f"--allow-import {allow} (Python: allow_imports=[{allow!r}])"
        )
