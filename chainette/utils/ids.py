"""Naming helpers and row ids."""

from __future__ import annotations

import re
import secrets
import time

_CAMEL = re.compile(r"(?<!^)(?=[A-Z])")
_NON_WORD = re.compile(r"[^0-9a-zA-Z]+")


def snake_case(name: str) -> str:
    """``"Translate FR"`` -> ``"translate_fr"``; ``"MyStep"`` -> ``"my_step"``."""
    s = _CAMEL.sub("_", name.strip()) if not name.isupper() else name
    return _NON_WORD.sub("_", s).strip("_").lower()


def new_run_id() -> str:
    """A sortable, unique run id: ``20261122-031500-ab12cd``."""
    return time.strftime("%Y%m%d-%H%M%S", time.gmtime()) + "-" + secrets.token_hex(3)


def child_row_id(parent: str, index: int) -> str:
    """The id of the ``index``-th child of a fan-out: ``"12" -> "12.0", "12.1"``."""
    return f"{parent}.{index}"
