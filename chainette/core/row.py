"""``Row``: one item flowing through the chain, with its identity and history."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any


class _Skipped:
    """Marker an input reader yields in place of a bad row it skipped (``--on-bad-input skip``),
    so that the rows after it keep ids equal to their position in the input."""

    def __repr__(self) -> str:
        return "SKIPPED"


SKIPPED = _Skipped()


@dataclass(slots=True)
class RowRecords:
    """Everything one input row produced; handed to the writer when the row is finished.

    Records are held until the whole input row is done so that a crash never leaves a
    half-processed row on disk (resume re-runs it; the item cache avoids re-sending).
    """

    index: int
    """the key the journal marks as done: the input index (or, in later stages, the spill position)"""
    order: int = -1
    """the input index the row came from (for ordering); defaults to ``index``"""
    outputs: list[tuple[str, str, Any, str | None]] = field(default_factory=list)
    """(step id, row id, output model or dict, reasoning)"""
    errors: list[dict[str, Any]] = field(default_factory=list)
    flats: list[dict[str, Any]] = field(default_factory=list)
    spill: list[dict[str, Any]] = field(default_factory=list)
    """rows handed to the next stage of a staged run (encoded by ``io.spill``)"""
    unfinished: bool = False
    """the run stopped (a budget) before this row was done: it is not committed, a resume runs it"""

    def __post_init__(self) -> None:
        if self.order < 0:
            self.order = self.index


@dataclass(slots=True)
class Row:
    """The unit of work: ``item`` is the current value, ``history`` what templates can see."""

    row_id: str
    item: Any
    history: dict[str, Any]
    records: RowRecords

    def fork(self, row_id: str | None = None, item: Any = None) -> Row:
        """A copy with an isolated history (for branches and fan-out children)."""
        return Row(
            row_id=self.row_id if row_id is None else row_id,
            item=self.item if item is None else item,
            history=dict(self.history),
            records=self.records,
        )
