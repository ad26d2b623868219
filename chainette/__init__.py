"""Chainette: typed, reproducible LLM pipelines.

Everything public is importable from here; names are loaded on first use so that
``import chainette`` stays fast (heavy libraries load only when a feature needs them).
"""

from __future__ import annotations

from importlib import import_module
from typing import TYPE_CHECKING, Any

from chainette._version import __version__

_EXPORTS: dict[str, str] = {
    "ApplyNode": "chainette.core.apply",
    "AsyncExecutor": "chainette.run.async_executor",
    "Branch": "chainette.core.branch",
    "Chain": "chainette.core.chain",
    "ChainetteError": "chainette.errors",
    "EngineBroker": "chainette.engine.broker",
    "EngineConfig": "chainette.engine.registry",
    "EventBus": "chainette.events",
    "Executor": "chainette.run.executor",
    "FakeEngine": "chainette.engine.fake",
    "Graph": "chainette.core.graph",
    "JoinBranch": "chainette.core.branch",
    "Node": "chainette.core.node",
    "Result": "chainette.core.result",
    "RunResult": "chainette.core.result",
    "RunWriter": "chainette.io.writer",
    "SamplingParams": "chainette.engine.protocol",
    "Step": "chainette.core.step",
    "StreamWriter": "chainette.io.stream_writer",
    "apply": "chainette.core.apply",
    "get_engine_config": "chainette.engine.registry",
    "load_engines_file": "chainette.engine.registry",
    "register_engine": "chainette.engine.registry",
}

__all__ = [
    "ApplyNode",
    "AsyncExecutor",
    "Branch",
    "Chain",
    "ChainetteError",
    "EngineBroker",
    "EngineConfig",
    "EventBus",
    "Executor",
    "FakeEngine",
    "Graph",
    "JoinBranch",
    "Node",
    "Result",
    "RunResult",
    "RunWriter",
    "SamplingParams",
    "Step",
    "StreamWriter",
    "apply",
    "get_engine_config",
    "load_engines_file",
    "register_engine",
]


def __getattr__(name: str) -> Any:
    module = _EXPORTS.get(name)
    if module is None:
        raise AttributeError(f"module 'chainette' has no attribute {name!r}")
    value = getattr(import_module(module), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(__all__))


if TYPE_CHECKING:  # pragma: no cover - for type checkers and IDEs
    from chainette.core.apply import ApplyNode, apply
    from chainette.run.async_executor import AsyncExecutor
    from chainette.core.branch import Branch, JoinBranch
    from chainette.core.chain import Chain
    from chainette.run.executor import Executor
    from chainette.core.graph import Graph
    from chainette.core.node import Node
    from chainette.core.result import Result, RunResult
    from chainette.core.step import Step
    from chainette.engine.broker import EngineBroker
    from chainette.engine.fake import FakeEngine
    from chainette.engine.protocol import SamplingParams
    from chainette.engine.registry import EngineConfig, get_engine_config, load_engines_file, register_engine
    from chainette.errors import ChainetteError
    from chainette.io.stream_writer import StreamWriter
    from chainette.io.writer import RunWriter
    from chainette.events import EventBus
