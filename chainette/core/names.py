"""The rule for node ids and join aliases: names usable in templates (and as folder names).

A step id is a template variable (``{{ extract.answer }}``), a folder of the run directory
(``<run>/extract/000.jsonl``) and a column prefix of the flattened records; a join alias is
a template variable. So every id and alias must be a plain name::

    a letter or '_', then letters, digits or '_' (ASCII), at most 64 characters,
    and not a template keyword (and, else, false, if, in, is, none, not, or, self, true)

Checked where ids are declared (``Step``, ``ApplyNode``, ``Branch``, ``JoinBranch``, the DSL,
the YAML schema) and again by chain validation, which also refuses the names the run
directory uses for its own folders (see :data:`RUN_DIR_NAMES`).
"""

from __future__ import annotations

import re
from typing import Any

from chainette.errors import DefinitionError

__all__ = ["MAX_NAME_LENGTH", "NAME_PATTERN", "NAME_RULE", "RUN_DIR_NAMES", "check_name", "name_problem"]

MAX_NAME_LENGTH = 64
NAME_PATTERN = r"^(?!(?:and|else|false|if|in|is|none|not|or|self|true|False|None|True)$)[A-Za-z_][A-Za-z0-9_]{0,63}$"
"""The rule as a regular expression (also used by ``yaml_schema.json``; a test keeps them equal)."""

_TEMPLATE_KEYWORDS = frozenset(
    ["and", "else", "false", "if", "in", "is", "none", "not", "or", "self", "true", "False", "None", "True"]
)
_NAME_RE = re.compile(r"[A-Za-z_][A-Za-z0-9_]*\Z")

NAME_RULE = (
    "ids and aliases must be names usable in templates: ASCII letters, digits and '_', not starting "
    f"with a digit, at most {MAX_NAME_LENGTH} characters, not a template keyword "
    "(and, else, false, if, in, is, none, not, or, self, true)"
)

RUN_DIR_NAMES = ("datasets", "errors", "flattened", "servers")
"""Folders the run directory uses itself: a step or apply id must not take one of them."""


def name_problem(value: Any) -> str | None:
    """Why ``value`` is not a valid id or alias, or ``None`` when it is."""
    if not isinstance(value, str):
        return f"expected a string, got {type(value).__name__}"
    if not value:
        return "it is empty"
    if len(value) > MAX_NAME_LENGTH:
        return f"it has {len(value)} characters (at most {MAX_NAME_LENGTH})"
    if not _NAME_RE.match(value):
        bad = sorted({c for c in value if not (c == "_" or (c.isascii() and c.isalnum()))})
        if bad:
            return "it contains " + ", ".join(repr(c) for c in bad)
        return "it starts with a digit"
    if value in _TEMPLATE_KEYWORDS:
        return "it is a template keyword"
    return None


def check_name(value: Any, what: str, *, hint: str = "") -> str:
    """Return ``value`` if it is a valid name; raise :class:`DefinitionError` (a ``ConfigError``
    and a ``ValueError``) naming it and the rule."""
    problem = name_problem(value)
    if problem is None:
        return value
    raise DefinitionError(f"{what} {value!r} is not a valid name ({problem}): {NAME_RULE}{hint}", node_id=str(value))
