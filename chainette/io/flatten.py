"""Pure flattening of a row's history into one record: ``<step_id>.<field>`` columns."""

from __future__ import annotations

from typing import Any

from chainette.core.context import dump


def flatten(row_id: str, history: dict[str, Any]) -> dict[str, Any]:
    """One flat record: ``row_id`` then ``<name>.<field>`` for every history entry, in order.

    Entries that are not objects (a fan-out join's list, ``None`` for a filtered join)
    appear under their bare name.
    """
    out: dict[str, Any] = {"row_id": row_id}
    for key, value in history.items():
        data = dump(value)
        if isinstance(data, dict):
            for field, v in data.items():
                out[f"{key}.{field}"] = v
        else:
            out[key] = data
    return out
