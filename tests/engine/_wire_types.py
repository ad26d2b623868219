"""Check a request body against a provider's published request type, unknown keys forbidden.

``conform(value, tp)`` walks a ``TypedDict`` (the ``openai`` package's request params) or a
Pydantic model (the ``ollama`` package's requests) and returns every mismatch: a key the
type does not declare (at any depth), a missing required key, a value of the wrong type
or outside a ``Literal``. Pydantic's ``TypeAdapter`` cannot forbid extra keys in a
``TypedDict`` it does not own (and leaves ``Iterable`` fields unvalidated), hence this walk.
"""

from __future__ import annotations

import collections.abc as abc
import types
import typing
from typing import Any

from pydantic import BaseModel
from typing_extensions import is_typeddict

_ANY_DICT = (dict, abc.Mapping, abc.MutableMapping)
_ANY_LIST = (list, abc.Iterable, abc.Sequence, abc.Collection, abc.MutableSequence, tuple)


def conform(value: Any, tp: Any, where: str = "body") -> list[str]:
    """Every way ``value`` does not fit ``tp`` (``[]`` when it fits)."""
    origin = typing.get_origin(tp)
    args = typing.get_args(tp)
    name = getattr(tp, "__name__", str(tp))
    if tp is Any or tp is object:
        return []
    if origin in (typing.Annotated,) or name in ("Required", "NotRequired", "ReadOnly"):
        return conform(value, args[0], where)
    if origin is typing.Union or origin is types.UnionType:
        results = [conform(value, arm, where) for arm in args]
        if any(not r for r in results):
            return []
        return [f"{where}: fits none of {tp}: " + " | ".join(r[0] for r in results if r)]
    if origin is typing.Literal:
        return [] if value in args else [f"{where}: {value!r} is not one of {args}"]
    if tp is type(None):
        return [] if value is None else [f"{where}: expected null"]
    if isinstance(tp, typing.TypeAliasType if hasattr(typing, "TypeAliasType") else ()):  # pragma: no cover
        return conform(value, tp.__value__, where)
    if is_typeddict(tp):
        return _typeddict(value, tp, where)
    if isinstance(tp, type) and issubclass(tp, BaseModel):
        return _model(value, tp, where)
    if origin in _ANY_DICT or tp in (dict,):
        if not isinstance(value, dict):
            return [f"{where}: expected an object"]
        out: list[str] = []
        if args:
            for k, v in value.items():
                out += conform(k, args[0], f"{where} key {k!r}") + conform(v, args[1], f"{where}[{k!r}]")
        return out
    if origin in _ANY_LIST or name == "SequenceNotStr":
        if not isinstance(value, list):
            return [f"{where}: expected an array"]
        out = []
        for i, item in enumerate(value):
            out += conform(item, args[0] if args else Any, f"{where}[{i}]")
        return out
    if tp is bool:
        return [] if isinstance(value, bool) else [f"{where}: expected a boolean"]
    if tp is int:
        return [] if isinstance(value, int) and not isinstance(value, bool) else [f"{where}: expected an integer"]
    if tp is float:
        return (
            [] if isinstance(value, (int, float)) and not isinstance(value, bool) else [f"{where}: expected a number"]
        )
    if tp is str:
        return [] if isinstance(value, str) else [f"{where}: expected a string"]
    if isinstance(tp, typing.TypeVar) or isinstance(tp, typing.ForwardRef):
        return []
    raise TypeError(f"{where}: no rule for {tp!r}")


def _typeddict(value: Any, tp: Any, where: str) -> list[str]:
    if not isinstance(value, dict):
        return [f"{where}: expected an object ({tp.__name__})"]
    hints = typing.get_type_hints(tp, include_extras=True)
    out = [f"{where}.{k}: not a field of {tp.__name__}" for k in value if k not in hints]
    out += [f"{where}.{k}: required by {tp.__name__}" for k in tp.__required_keys__ if k not in value]
    for key, sub in value.items():
        if key in hints:
            out += conform(sub, hints[key], f"{where}.{key}")
    return out


def _model(value: Any, tp: type[BaseModel], where: str) -> list[str]:
    if not isinstance(value, dict):
        return [f"{where}: expected an object ({tp.__name__})"]
    fields = {f.alias or n: f for n, f in tp.model_fields.items()}
    out = [f"{where}.{k}: not a field of {tp.__name__}" for k in value if k not in fields]
    out += [f"{where}.{k}: required by {tp.__name__}" for k, f in fields.items() if f.is_required() and k not in value]
    for key, sub in value.items():
        if key in fields:
            out += conform(sub, fields[key].annotation, f"{where}.{key}")
    if not out:
        try:
            tp.model_validate(value)
        except Exception as exc:  # the model's own validators (e.g. min_length)
            out.append(f"{where}: {exc}")
    return out
