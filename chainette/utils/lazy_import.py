"""A module imported on its first attribute access.

``jinja2 = lazy_module("jinja2")`` binds a stand-in; ``jinja2.UndefinedError`` imports jinja2
then. An ``except jinja2.UndefinedError:`` clause evaluates its expression only when an
exception reaches it, so a run whose templates never need jinja2 never loads it (~1.7 MB and
~15 ms of start-up: see ``chainette/core/templates.py``).
"""

from __future__ import annotations

import importlib
from typing import Any


class LazyModule:
    """Stands for module ``name`` until an attribute is read; then imports it."""

    __slots__ = ("_name",)

    def __init__(self, name: str) -> None:
        self._name = name

    def __getattr__(self, attr: str) -> Any:
        return getattr(importlib.import_module(self._name), attr)

    def __repr__(self) -> str:
        return f"<lazy module {self._name!r}>"


def lazy_module(name: str) -> Any:
    return LazyModule(name)
