"""How a node's declared ``input_model`` relates to what reaches it, statically and at run time.

A step (or apply) that declares ``input_model=In`` receives the previous node's output
validated into ``In``. When the previous output is another model:

* it is **fine** when that model is ``In`` or a subclass of it;
* it is a **warning** when the data can still be validated into ``In`` at run time: every
  required field of ``In`` is there and no field is of a plainly different kind; or when it
  cannot, but an earlier value of the row *is* an ``In`` (the chain input, an earlier step,
  a join alias): the runtime then takes the latest such value (:func:`resolve_input`);
* it is an **error** otherwise: every row would fail at that node.

``Chain(..., strict_input_models=True)`` makes every mismatch an error (and turns off the
fallback to an earlier value), for chains whose declared models are meant as contracts.

Pure: no I/O, imports nothing above the core.
"""

from __future__ import annotations

import typing
import warnings
from collections.abc import Mapping
from typing import Any

from pydantic import BaseModel, ValidationError

from chainette.core.context import coerce
from chainette.errors import Problem

__all__ = ["check_input", "fits", "resolve_input", "validate_chain_io"]

_SEQ = (list, tuple, set, frozenset)
_SCALARS = (str, int, float, bool)


def _kind(annotation: Any) -> str | None:
    """``"seq"``, ``"map"``, ``"scalar"`` or ``None`` (unknown: a union, Any, a Literal...)."""
    origin = typing.get_origin(annotation) or annotation
    if not isinstance(origin, type):
        return None
    if issubclass(origin, _SEQ):
        return "seq"
    if issubclass(origin, (dict, BaseModel)):
        return "map"
    if issubclass(origin, _SCALARS):
        return "scalar"
    return None


def fits(have: type[BaseModel], want: type[BaseModel]) -> tuple[bool, str]:
    """Whether instances of ``have`` can be validated into ``want``, and why not.

    Conservative in one direction only: ``False`` means it surely fails (a required field is
    missing, or a field is a list on one side and a number on the other); ``True`` means it
    may work, which is checked row by row at run time.
    """
    if issubclass(have, want):
        return True, ""
    have_fields = have.model_fields
    missing = [n for n, f in want.model_fields.items() if f.is_required() and n not in have_fields]
    if missing:
        return False, f"lacks required field(s): {', '.join(missing)}"
    for name, field in want.model_fields.items():
        if name not in have_fields:
            continue
        a, b = _kind(have_fields[name].annotation), _kind(field.annotation)
        if a and b and a != b:
            return False, (
                f"has field '{name}' of another kind ({_show(have_fields[name].annotation)} "
                f"vs {_show(field.annotation)})"
            )
    return True, ""


def _show(annotation: Any) -> str:
    return getattr(annotation, "__name__", None) or str(annotation).replace("typing.", "")


def check_input(
    node: Any,
    have: Any,
    have_from: str,
    scope: Mapping[str, Any],
    *,
    strict: bool = False,
) -> Problem | None:
    """The problem (error or warning) of ``node`` receiving ``have`` from ``have_from``, if any.

    ``scope`` maps the names visible at the node (``chain_input``, earlier steps, join
    aliases) to their models, in the order they were produced.
    """
    want = getattr(node, "input_model", None)
    if not (isinstance(want, type) and issubclass(want, BaseModel)):
        return None
    if not (isinstance(have, type) and issubclass(have, BaseModel)) or issubclass(have, want):
        return None
    head = f"expects input {want.__name__} but receives {have.__name__} from '{have_from}'"
    if strict:
        return Problem(
            node.id, f"{head} (strict input models: the previous output must be a {want.__name__} or a subclass of it)"
        )
    ok, why = fits(have, want)
    if ok:
        return Problem(
            node.id,
            f"{head}; it is validated into {want.__name__} at run time (rows that do not fit fail at this node)",
            severity="warning",
        )
    earlier = [
        name
        for name, model in scope.items()
        if name != have_from and isinstance(model, type) and issubclass(model, want)
    ]
    if earlier:
        return Problem(
            node.id,
            f"{head}, which {why}; at run time the input is the latest earlier value "
            f"that is a {want.__name__}: '{earlier[-1]}'",
            severity="warning",
        )
    return Problem(node.id, f"{head}, which {why}")


def resolve_input(item: Any, history: Mapping[str, Any], model: type[BaseModel] | None) -> Any:
    """The value a node declaring ``model`` works on (see the module docstring).

    ``item`` (the previous output) validated into ``model``; when it does not fit, the latest
    value of the row's ``history`` that is a ``model``; otherwise the validation error.
    """
    if model is None or isinstance(item, model):
        return item
    try:
        return coerce(item, model)
    except ValidationError:
        for value in reversed(list(history.values())):
            if isinstance(value, model):
                return value
        raise


def validate_chain_io(chain: Any) -> list[tuple[str, Any, Any]]:
    """Deprecated (from the original Chainette): ``(node id, previous output, declared input)``
    for every node whose declared ``input_model`` differs from the previous output model.

    Use ``chain.problems()`` (errors) and ``chain.warnings()`` instead: they say which
    mismatches still work at run time.
    """
    warnings.warn(
        "validate_chain_io() is deprecated; use chain.problems() and chain.warnings() (see docs/migrating.md)",
        DeprecationWarning,
        stacklevel=2,
    )
    from chainette.core.branch import Parallel

    out: list[tuple[str, Any, Any]] = []

    def walk(items: list[Any], prev: Any) -> Any:
        for item in items:
            if isinstance(item, Parallel):
                for branch in item.branches:
                    walk(branch.steps, prev)
                continue
            declared = getattr(item, "input_model", None)
            if prev is not None and declared is not None and prev is not declared:
                out.append((item.id, prev, declared))
            prev = getattr(item, "output_model", None)
        return prev

    walk(list(chain.items), None)
    return out
