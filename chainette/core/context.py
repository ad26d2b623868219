"""Pure helpers that turn a row into a template context and coerce items between models."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from pydantic import BaseModel

RESERVED_NAMES = ("chain_input", "row_id")


def item_fields(item: Any) -> dict[str, Any]:
    """A new dict of the current item's fields, for top-level template access."""
    if isinstance(item, BaseModel):
        return dict(item.__dict__)
    if isinstance(item, dict):
        return dict(item)
    return {}


def build_context(row_id: str, item: Any, history: Mapping[str, Any]) -> dict[str, Any]:
    """Template context: the item's fields, then history names (which win), then ``row_id``."""
    ctx = item_fields(item)
    ctx.update(history)
    ctx["row_id"] = row_id
    return ctx


def coerce(item: Any, model: type[BaseModel] | None) -> Any:
    """Return ``item`` as an instance of ``model`` (no-op when it already is one)."""
    if model is None or isinstance(item, model):
        return item
    if isinstance(item, BaseModel):
        return model.model_validate(item.model_dump())
    return model.model_validate(item)


def dump(value: Any) -> Any:
    """JSON-ready form of a model, a list of models, or a plain value."""
    if isinstance(value, BaseModel):
        return value.model_dump(mode="json")
    if isinstance(value, list):
        return [dump(v) for v in value]
    return value
