"""Checks of a chain against the engines it will use, run before any request is sent.

Registered in :data:`chainette.core.extensions.CHAIN_CHECKS`, so ``Chain.validate()``,
``chainette inspect`` and every run report them with the structural problems.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, Mapping

from chainette.core.validation import iter_steps
from chainette.engine.registry import has_engine
from chainette.errors import Problem

if TYPE_CHECKING:
    from chainette.core.chain import Chain


def engine_problems(chain: "Chain", engines: Mapping[str, Any]) -> list[Problem]:
    """Steps whose engine is neither registered nor passed in ``engines``."""
    return [
        Problem(step.id, f"unknown engine '{step.engine_name}': register it with register_engine() "
                         "or list it in an engines.yml passed with --engines")
        for step in iter_steps(chain.items)
        if step.engine_name not in engines and not has_engine(step.engine_name)
    ]
