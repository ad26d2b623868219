"""Resolve ``module:attr`` and ``path/to/file.py:attr`` references to Python objects.

Used by the CLI (``chainette run examples/qa.py:chain``) and by the YAML loader
(``output_model: mypkg.models:Answer``). Nothing is ever resolved implicitly: a
reference names its module, or the caller passes explicit ``--symbols`` modules.

Every failure raises :class:`~chainette.errors.ConfigError` with a message that says
how to fix the reference.
"""

from __future__ import annotations

import hashlib
import importlib
import importlib.util
import sys
from collections.abc import Iterable
from pathlib import Path
from types import ModuleType
from typing import Any

from chainette.errors import ConfigError

__all__ = ["load_module", "resolve_symbol", "split_reference"]


def split_reference(ref: str) -> tuple[str, str]:
    """``"a/b.py:chain"`` -> ``("a/b.py", "chain")``; ``"pkg.mod:obj.attr"`` -> ``("pkg.mod", "obj.attr")``."""
    ref = ref.strip()
    module, sep, attr = ref.rpartition(":")
    # a Windows drive letter ("C:\\x.py") is not a separator
    if not sep or not module or not attr or (len(module) == 1 and attr.startswith(("\\", "/"))):
        raise ConfigError(
            f"'{ref}' is not a reference of the form 'module:attr' or 'path/to/file.py:attr' "
            "(for example 'examples/qa.py:chain' or 'mypkg.chains:chain')"
        )
    return module, attr


def _is_path(module: str) -> bool:
    return module.endswith(".py") or "/" in module or "\\" in module


def load_module(module: str, *, base_dir: str | Path | None = None) -> ModuleType:
    """Import ``module`` (a dotted name or a ``.py`` file path, relative to ``base_dir``)."""
    if _is_path(module):
        return _load_file(module, base_dir)
    try:
        # the current directory is importable, as with ``python -m``
        cwd = str(Path.cwd())
        if cwd not in sys.path:
            sys.path.insert(0, cwd)
        return importlib.import_module(module)
    except ModuleNotFoundError as exc:
        if exc.name and (module == exc.name or module.startswith(exc.name + ".")):
            raise ConfigError(
                f"cannot import module '{module}': no module named '{exc.name}'. Check the spelling, "
                "run from the project directory, or give a file path like 'path/to/file.py:attr'"
            ) from exc
        raise ConfigError(f"importing module '{module}' failed: {type(exc).__name__}: {exc}") from exc
    except ConfigError:
        raise
    except Exception as exc:  # an error inside the user's module
        raise ConfigError(
            f"importing module '{module}' failed: {type(exc).__name__}: {exc} (use --debug for the traceback)"
        ) from exc


def _load_file(module: str, base_dir: str | Path | None) -> ModuleType:
    path = Path(module).expanduser()
    if not path.is_absolute() and base_dir is not None and not path.exists():
        path = Path(base_dir) / path
    if not path.exists():
        raise ConfigError(f"file '{module}' not found (resolved to '{path.resolve()}')")
    if path.is_dir():
        raise ConfigError(f"'{module}' is a directory; name a Python file like '{module.rstrip('/')}/chain.py:chain'")
    if path.suffix != ".py":
        raise ConfigError(f"'{module}' is not a Python file (expected a .py file)")
    path = path.resolve()
    name = "_chainette_user_" + path.stem + "_" + hashlib.blake2b(str(path).encode(), digest_size=4).hexdigest()
    if name in sys.modules:
        return sys.modules[name]
    for mod in list(sys.modules.values()):  # already imported under its module name
        f = getattr(mod, "__file__", None)
        if f and f.endswith(path.name):
            try:
                if Path(f).resolve() == path:
                    return mod
            except OSError:  # pragma: no cover
                continue
    # sibling imports inside the user's file work as when running it as a script
    parent = str(path.parent)
    if parent not in sys.path:
        sys.path.insert(0, parent)
    if path.stem.isidentifier():
        # importable under its own name: import it so that 'file.py:X' and 'file:X' are one object
        try:
            found = importlib.util.find_spec(path.stem)
        except (ImportError, ValueError):
            found = None
        if found is not None and found.origin and Path(found.origin).resolve() == path:
            return load_module(path.stem)
    spec = importlib.util.spec_from_file_location(name, path)
    if spec is None or spec.loader is None:  # pragma: no cover - defensive
        raise ConfigError(f"cannot load '{path}' as a Python module")
    mod = importlib.util.module_from_spec(spec)
    sys.modules[name] = mod
    try:
        spec.loader.exec_module(mod)
    except ConfigError:
        sys.modules.pop(name, None)
        raise
    except BaseException as exc:
        sys.modules.pop(name, None)
        if isinstance(exc, (KeyboardInterrupt, SystemExit)):
            raise
        raise ConfigError(
            f"running '{module}' failed: {type(exc).__name__}: {exc} (use --debug for the traceback)"
        ) from exc
    return mod


def _getattr_path(obj: Any, attr: str, where: str) -> Any:
    current = obj
    for part in attr.split("."):
        try:
            current = getattr(current, part)
        except AttributeError:
            names = [n for n in dir(current) if not n.startswith("_")]
            hint = f"; available: {', '.join(names[:20])}" + (" ..." if len(names) > 20 else "") if names else ""
            raise ConfigError(f"'{where}' has no attribute '{part}'{hint}") from None
    return current


def resolve_symbol(
    ref: str,
    *,
    symbols: Iterable[str | ModuleType] = (),
    base_dir: str | Path | None = None,
    what: str = "object",
) -> Any:
    """Return the object ``ref`` names.

    ``ref`` is ``module:attr``, ``path/to/file.py:attr`` or, when ``symbols`` modules are
    given, a bare ``Name`` looked up in them (first match wins).
    """
    if not isinstance(ref, str) or not ref.strip():
        raise ConfigError(f"expected a {what} reference like 'module:attr', got {ref!r}")
    ref = ref.strip()
    if ":" not in ref or (len(ref) > 1 and ref[1] == ":" and ref.count(":") == 1):
        mods = [load_module(m, base_dir=base_dir) if isinstance(m, str) else m for m in symbols]
        for mod in mods:
            head = ref.split(".", 1)[0]
            if hasattr(mod, head):
                return _getattr_path(mod, ref, mod.__name__)
        if mods:
            names = ", ".join(getattr(m, "__name__", "?") for m in mods)
            raise ConfigError(
                f"{what} '{ref}' not found in the --symbols module(s) {names}; "
                "define it there or write it as 'module:attr'"
            )
        raise ConfigError(
            f"{what} '{ref}' must be written as 'module:attr' or 'path/to/file.py:attr' "
            "(or pass --symbols MODULE to look up bare names)"
        )
    module, attr = split_reference(ref)
    mod = load_module(module, base_dir=base_dir)
    return _getattr_path(mod, attr, module)
