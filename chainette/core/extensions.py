"""Named extension points: how the pure core reaches the runtime without importing it.

``Chain.run`` needs a runner and ``Chain.problems`` needs checks that know the engines;
both live in higher layers (``chainette.run``). The core names them here as
``"module:attribute"`` references, resolved on first use the way package entry points
are, so ``chainette.core`` imports nothing above it and a new runner (a cluster runner,
a batch-API runner) is one more line in :data:`RUNNERS` or a call to
:func:`register_runner`.

A runner is an object with ``run(chain, inputs, output_dir, **options)`` and an awaitable
``run_async(...)`` of the same signature, both returning a ``RunResult``. A chain check is
a function ``(chain, engines) -> list[Problem]``.
"""

from __future__ import annotations

from importlib import import_module
from typing import Any

from chainette.errors import ConfigError

RUNNERS: dict[str, Any] = {
    "local": "chainette.run.local:LocalRunner",
    "batch": "chainette.run.batch_runner:BatchRunner",
    "ray": "chainette.run.ray_runner:RayRunner",
}
"""Runner name -> runner class, or a ``"module:Class"`` reference to one."""

CHAIN_CHECKS: list[Any] = [
    "chainette.run.preflight:engine_problems",  # unknown engines, missing API keys
    "chainette.engine.backends.checks:wire_problems",  # sampling fields / settings a backend cannot honour
    "chainette.engine.backends.checks:wire_warnings",  # schemas a backend enforces only in part
    "chainette.run.batch_mode:batch_problems",  # mode: batch on an engine with no batch API
]
"""Checks that ``Chain.problems`` runs after the structural validation."""


def register_runner(name: str, runner: Any) -> None:
    """Make ``chain.run(..., runner=name)`` use ``runner`` (a class or ``"module:Class"``)."""
    RUNNERS[name] = runner


def resolve(ref: Any) -> Any:
    """The object behind a ``"module:attribute"`` reference (other values are returned as-is)."""
    if not isinstance(ref, str):
        return ref
    module, _, attr = ref.partition(":")
    return getattr(import_module(module), attr)


def get_runner(name: str) -> Any:
    """A new runner for ``name``; a ``ConfigError`` listing the known runners otherwise."""
    ref = RUNNERS.get(name)
    if ref is None:
        raise ConfigError(f"unknown runner '{name}'; known runners: {', '.join(sorted(RUNNERS))}")
    return resolve(ref)()


def chain_checks() -> list[Any]:
    """The registered chain checks, resolved."""
    return [resolve(ref) for ref in CHAIN_CHECKS]
