"""Encoding of in-flight rows for staged runs: a row's item and history as JSON and back.

Models are written as ``{"$model": "module:QualName", "data": {...}}``; decoding looks the
class up among the chain's own models first (so classes defined in a script work), then
imports it by its path.
"""

from __future__ import annotations

import importlib
from typing import Any

from pydantic import BaseModel

from chainette.core.row import Row, RowRecords


def _path(cls: type) -> str:
    return f"{cls.__module__}:{cls.__qualname__}"


def encode_value(value: Any) -> Any:
    if isinstance(value, BaseModel):
        return {"$model": _path(type(value)), "data": value.model_dump(mode="json")}
    if isinstance(value, list):
        return [encode_value(v) for v in value]
    return value


def encode_row(row: Row) -> dict[str, Any]:
    return {
        "row_id": row.row_id,
        "order": row.records.order,
        "item": encode_value(row.item),
        "history": {k: encode_value(v) for k, v in row.history.items()},
    }


class RowDecoder:
    """Turns spilled rows back into :class:`Row` objects."""

    def __init__(self, models: list[type[BaseModel]]) -> None:
        self._models = {_path(m): m for m in models}

    def _cls(self, path: str) -> type[BaseModel]:
        cls = self._models.get(path)
        if cls is None:
            module, _, qual = path.partition(":")
            obj: Any = importlib.import_module(module)
            for part in qual.split("."):
                obj = getattr(obj, part)
            cls = self._models[path] = obj
        return cls

    def value(self, data: Any) -> Any:
        if isinstance(data, dict) and "$model" in data:
            return self._cls(data["$model"]).model_validate(data["data"])
        if isinstance(data, list):
            return [self.value(v) for v in data]
        return data

    def row(self, data: dict[str, Any], position: int) -> Row:
        return Row(
            row_id=data["row_id"],
            item=self.value(data["item"]),
            history={k: self.value(v) for k, v in data["history"].items()},
            records=RowRecords(position, order=data.get("order", position)),
        )
