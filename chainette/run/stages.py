"""Stage planning (pure): when engines must take turns, run the chain stage by stage.

A *managed, lazy* engine is one whose server Chainette starts itself (``vllm_api`` without
an endpoint, ``local``) and may stop when no longer needed. Two such engines often cannot
run at once (one GPU, several models). The plan cuts the chain's top-level items into
stages so that each stage uses at most one of them; every row finishes a stage before the
next begins, rows in between are spilled to disk, and each server is started once and
stopped after its last stage. Unmanaged engines (OpenAI, an endpoint) never force a cut.
"""

from __future__ import annotations

from collections.abc import Callable

from chainette.core.branch import ChainItem
from chainette.core.validation import iter_steps


def item_engines(item: ChainItem) -> set[str]:
    """Engine names used anywhere inside one top-level item."""
    return {s.engine_name for s in iter_steps([item])}


def plan_stages(items: list[ChainItem], exclusive: Callable[[str], bool]) -> list[list[ChainItem]]:
    """Split ``items`` into stages using at most one exclusive engine each (where possible).

    An item that itself needs two exclusive engines (a parallel group whose branches use
    different ones) cannot be split: its stage holds both.
    """
    stages: list[list[ChainItem]] = []
    current: list[ChainItem] = []
    current_engines: set[str] = set()
    for item in items:
        needed = {e for e in item_engines(item) if exclusive(e)}
        if current and needed and current_engines and not needed <= current_engines:
            stages.append(current)
            current, current_engines = [], set()
        current.append(item)
        current_engines |= needed
    if current:
        stages.append(current)
    return stages


def stage_engines(stage: list[ChainItem]) -> set[str]:
    out: set[str] = set()
    for item in stage:
        out |= item_engines(item)
    return out
