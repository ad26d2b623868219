"""Every public name has a docstring (issue #10 item 7).

"Public" is what a user reaches: every module of the package, every name in
``chainette.__all__``, and the public methods and properties those classes define.
"""

from __future__ import annotations

import ast
import inspect
from pathlib import Path

import chainette

ROOT = Path(chainette.__file__).parent


def test_every_module_has_a_docstring():
    missing = [
        str(p.relative_to(ROOT.parent))
        for p in sorted(ROOT.rglob("*.py"))
        if not ast.get_docstring(ast.parse(p.read_text(encoding="utf-8")))
    ]
    assert not missing, "modules without a docstring:\n" + "\n".join(missing)


def _own_members(cls: type):
    for name, value in vars(cls).items():
        if name.startswith("_"):
            continue
        if isinstance(value, (staticmethod, classmethod)):
            value = value.__func__
        if isinstance(value, property):
            value = value.fget
        if inspect.isfunction(value):
            yield name, value


def test_every_public_name_and_its_methods_have_docstrings():
    missing = []
    for name in chainette.__all__:
        obj = getattr(chainette, name)
        if not (inspect.isclass(obj) or inspect.isfunction(obj)):
            continue
        if not (obj.__doc__ or "").strip():
            missing.append(name)
        if inspect.isclass(obj):
            for member, fn in _own_members(obj):
                if not (fn.__doc__ or "").strip() and not _documented_in_base(obj, member):
                    missing.append(f"{name}.{member}")
    assert not missing, "public names without a docstring:\n" + "\n".join(missing)


def _documented_in_base(cls: type, member: str) -> bool:
    """An override inherits its meaning (and help()) from the base it overrides."""
    for base in cls.__mro__[1:]:
        fn = vars(base).get(member)
        if fn is not None and (getattr(fn, "__doc__", None) or "").strip():
            return True
    return False
