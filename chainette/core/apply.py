"""``ApplyNode`` / ``apply``: a Python function between LLM steps (map, filter, fan-out)."""

from __future__ import annotations

import inspect
from collections.abc import Callable
from typing import Any

from pydantic import BaseModel

from chainette.core.names import check_name
from chainette.core.node import Node
from chainette.errors import DefinitionTypeError


class ApplyNode(Node):
    """Wrap ``fn(item) -> list[item]``.

    An empty list filters the row out, one item maps it (the row keeps its id), several
    items fan it out (children get ids ``<parent>.0``, ``<parent>.1``, ... and inherit the
    parent's history). ``fn`` may be ``async``. Set ``blocking=True`` for functions that do
    I/O or heavy CPU work: they then run in a worker thread.
    """

    kind = "apply"

    def __init__(
        self,
        fn: Callable[[Any], Any],
        *,
        id: str | None = None,
        name: str | None = None,
        input_model: type[BaseModel] | None = None,
        output_model: type[BaseModel] | None = None,
        blocking: bool = False,
        emoji: str = "",
    ) -> None:
        super().__init__()
        if not callable(fn):
            raise DefinitionTypeError(f"ApplyNode needs a callable, got {type(fn).__name__}")
        self.fn = fn
        if id is None:
            self.id = check_name(
                getattr(fn, "__name__", "apply"),
                "apply id",
                hint=" (the id defaults to the function's name; pass id='...')",
            )
        else:
            self.id = check_name(id, "apply id")
        self.name = name or self.id
        self.input_model = input_model or _param_model(fn)
        self.output_model = output_model or _return_model(fn)
        self.is_async = inspect.iscoroutinefunction(fn)
        self.blocking = blocking
        self.emoji = emoji

    def describe(self) -> dict[str, Any]:
        d = super().describe()
        d["function"] = f"{getattr(self.fn, '__module__', '?')}:{getattr(self.fn, '__qualname__', repr(self.fn))}"
        return d


def apply(
    fn: Callable[[Any], Any] | None = None,
    *,
    id: str | None = None,
    name: str | None = None,
    input_model: type[BaseModel] | None = None,
    output_model: type[BaseModel] | None = None,
    blocking: bool = False,
) -> Any:
    """Build an :class:`ApplyNode`; usable as ``apply(fn)`` or as a decorator ``@apply(id=...)``."""

    def build(f: Callable[[Any], Any]) -> ApplyNode:
        return ApplyNode(f, id=id, name=name, input_model=input_model, output_model=output_model, blocking=blocking)

    return build if fn is None else build(fn)


def _param_model(fn: Callable[[Any], Any]) -> type[BaseModel] | None:
    """``def f(x: In) -> ...`` declares ``In`` as the input model."""
    try:
        params = list(inspect.signature(fn).parameters.values())
        hints = inspect.get_annotations(fn, eval_str=True)
    except Exception:
        return None
    ann = hints.get(params[0].name) if params else None
    return ann if isinstance(ann, type) and issubclass(ann, BaseModel) else None


def _return_model(fn: Callable[[Any], Any]) -> type[BaseModel] | None:
    """``def f(x) -> list[Out]`` declares ``Out`` as the output model."""
    try:
        hints = inspect.get_annotations(fn, eval_str=True)
    except Exception:
        return None
    ret = hints.get("return")
    args = getattr(ret, "__args__", None)
    if args and isinstance(args[0], type) and issubclass(args[0], BaseModel):
        return args[0]
    return None
