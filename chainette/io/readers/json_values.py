"""Turning JSON text into one input row, or saying exactly why it cannot be one.

Besides syntax, a row is refused when it is nested deeper than ``ReadLimits.max_depth`` (deep
nesting would overflow the stack later, when the row is validated or written), holds a lone
UTF-16 surrogate (``"\\ud800"`` is valid JSON but cannot be written back as UTF-8), or has an
object that repeats a key (``json.loads`` would silently keep only the last value).
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from typing import Any

__all__ = ["Parsed", "decode_error", "json_type", "loads", "parse_object", "value_error", "value_problem"]

_SURROGATE_ESCAPE = re.compile(r"\\u[dD][89abcdefABCDEF]")


class _Repeated(dict):  # type: ignore[type-arg]
    """An object whose JSON text repeated a key (``key`` names the first one)."""

    key: str = ""


@dataclass(slots=True)
class Parsed:
    """A parsed JSON value and which checks of :func:`value_problem` can possibly fail for it."""

    value: Any
    deep: bool
    surrogates: bool
    repeated: bool


def loads(text: str, max_depth: int) -> Parsed:
    """``json.loads`` that marks objects repeating a key and notes which checks are needed
    (the text is scanned cheaply, so most rows are never walked). Raises ``ValueError``."""
    repeats: list[str] = []

    def pairs_hook(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
        obj = dict(pairs)
        if len(obj) == len(pairs):
            return obj
        seen: set[str] = set()
        marked = _Repeated(obj)
        marked.key = next(k for k, _ in pairs if k in seen or seen.add(k))  # type: ignore[func-returns-value]
        repeats.append(marked.key)
        return marked

    value = json.loads(text, object_pairs_hook=pairs_hook)
    deep = text.count("[") + text.count("{") > max_depth
    surrogates = "\\u" in text and _SURROGATE_ESCAPE.search(text) is not None
    return Parsed(value, deep, surrogates, bool(repeats))


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


def value_problem(value: Any, max_depth: int, parsed: Parsed) -> str | None:
    """What makes ``value`` (``parsed.value`` or a part of it) unusable as row data, or ``None``."""
    if not (parsed.deep or parsed.surrogates or parsed.repeated):
        return None
    stack: list[tuple[Any, int]] = [(value, 1)]
    while stack:
        node, depth = stack.pop()
        if isinstance(node, (dict, list)) and depth > max_depth:
            return f"nested more than {max_depth} levels deep (ReadLimits.max_depth)"
        if isinstance(node, _Repeated):
            return f"an object repeats the key {node.key!r} (only one of its values would be kept)"
        if isinstance(node, dict):
            for k, v in node.items():
                if parsed.surrogates and _has_surrogate(k):
                    return "a key holds a lone UTF-16 surrogate (\\ud800-\\udfff), which is not valid text"
                stack.append((v, depth + 1))
        elif isinstance(node, list):
            stack.extend((v, depth + 1) for v in node)
        elif parsed.surrogates and isinstance(node, str) and _has_surrogate(node):
            return "a string holds a lone UTF-16 surrogate (\\ud800-\\udfff), which is not valid text"
    return None


def decode_error(exc: json.JSONDecodeError) -> str:
    """``exc`` as ``<what> at column N`` (the column of the line, counted from 1)."""
    return f"{exc.msg.removesuffix(' at')} at column {exc.colno}"


def value_error(exc: ValueError) -> str:
    """A ``ValueError`` from :func:`loads` that is not a syntax error, for a message."""
    text = str(exc)
    if "digits" in text and "integer" in text:
        return "a number has more digits than Python converts (see sys.get_int_max_str_digits())"
    return text.splitlines()[0][:300] if text else type(exc).__name__


def parse_object(text: str, max_depth: int) -> tuple[dict[str, Any] | None, str | None]:
    """Parse one JSON object: ``(object, None)`` or ``(None, what is wrong)``."""
    try:
        parsed = loads(text, max_depth)
    except json.JSONDecodeError as exc:
        return None, f"malformed JSON: {decode_error(exc)}"
    except RecursionError:
        return None, f"nested more than {max_depth} levels deep (ReadLimits.max_depth)"
    except ValueError as exc:  # e.g. an integer with more digits than Python converts
        return None, f"malformed JSON: {value_error(exc)}"
    if not isinstance(parsed.value, dict):
        return None, f"expected a JSON object, got {json_type(parsed.value)}"
    problem = value_problem(parsed.value, max_depth, parsed)
    if problem:
        return None, problem
    return parsed.value, None
