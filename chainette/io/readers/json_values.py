"""Turning JSON text into one input row, or saying exactly why it cannot be one.

Besides syntax, a row is refused when it is nested deeper than ``ReadLimits.max_depth`` (deep
nesting would overflow the stack later, when the row is validated or written) or holds a lone
UTF-16 surrogate (``"\\ud800"`` is valid JSON but cannot be written back as UTF-8).
"""

from __future__ import annotations

import json
import re
from typing import Any

__all__ = ["check_text", "json_type", "may_need_walk", "parse_object", "value_error", "value_problem"]

_SURROGATE_ESCAPE = re.compile(r"\\u[dD][89abcdefABCDEF]")


def json_type(value: Any) -> str:
    """The JSON name of a parsed value's type."""
    if isinstance(value, dict):
        return "an object"
    if isinstance(value, list):
        return "an array"
    if isinstance(value, str):
        return "a string"
    if isinstance(value, bool):
        return "true" if value else "false"
    if value is None:
        return "null"
    return "a number"


def _has_surrogate(text: str) -> bool:
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return True
    return False


def value_problem(value: Any, max_depth: int, *, deep: bool = True, surrogates: bool = True) -> str | None:
    """What makes ``value`` unusable as row data, or ``None``. ``deep``/``surrogates`` say which
    checks can possibly fail (callers pre-filter on the raw text, so most rows skip the walk)."""
    if not (deep or surrogates):
        return None
    stack: list[tuple[Any, int]] = [(value, 1)]
    while stack:
        node, depth = stack.pop()
        if isinstance(node, dict):
            if depth > max_depth:
                return f"nested more than {max_depth} levels deep (ReadLimits.max_depth)"
            for k, v in node.items():
                if surrogates and _has_surrogate(k):
                    return "a key holds a lone UTF-16 surrogate (\\ud800-\\udfff), which is not valid text"
                stack.append((v, depth + 1))
        elif isinstance(node, list):
            if depth > max_depth:
                return f"nested more than {max_depth} levels deep (ReadLimits.max_depth)"
            stack.extend((v, depth + 1) for v in node)
        elif surrogates and isinstance(node, str) and _has_surrogate(node):
            return "a string holds a lone UTF-16 surrogate (\\ud800-\\udfff), which is not valid text"
    return None


def may_need_walk(text: str, max_depth: int) -> tuple[bool, bool]:
    """Whether a value parsed from ``text`` can be too deep, and can hold a lone surrogate."""
    deep = text.count("[") + text.count("{") > max_depth
    surrogates = "\\u" in text and _SURROGATE_ESCAPE.search(text) is not None
    return deep, surrogates


def check_text(value: Any, text: str, max_depth: int) -> str | None:
    """:func:`value_problem` for a value parsed from ``text``, walking it only when needed."""
    deep, surrogates = may_need_walk(text, max_depth)
    return value_problem(value, max_depth, deep=deep, surrogates=surrogates)


def value_error(exc: ValueError) -> str:
    text = str(exc)
    if "digits" in text and "integer" in text:
        return "a number has more digits than Python converts (see sys.get_int_max_str_digits())"
    return text.splitlines()[0][:300] if text else type(exc).__name__


def parse_object(text: str, max_depth: int) -> tuple[dict[str, Any] | None, str | None]:
    """Parse one JSON object: ``(object, None)`` or ``(None, what is wrong)``."""
    try:
        value = json.loads(text)
    except json.JSONDecodeError as exc:
        return None, f"malformed JSON: {exc.msg} at column {exc.colno}"
    except RecursionError:
        return None, f"nested more than {max_depth} levels deep (ReadLimits.max_depth)"
    except ValueError as exc:  # e.g. an integer with more digits than Python converts
        return None, f"malformed JSON: {value_error(exc)}"
    if not isinstance(value, dict):
        return None, f"expected a JSON object, got {json_type(value)}"
    problem = check_text(value, text, max_depth)
    if problem:
        return None, problem
    return value, None
