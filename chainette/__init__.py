"""Chainette: typed, reproducible LLM pipelines.

Everything public is importable from here; names are loaded on first use so that
``import chainette`` stays fast (heavy libraries load only when a feature needs them).
"""

from __future__ import annotations

from importlib import import_module
from typing import TYPE_CHECKING, Any

from chainette._version import __version__ as __version__

_EXPORTS: dict[str, str] = {
    "ApplyError": "chainette.errors",
    "ApplyNode": "chainette.core.apply",
    "AsyncExecutor": "chainette.run.async_executor",
    "BatchNode": "chainette.core.batch",
    "BatchRow": "chainette.core.batch",
    "Branch": "chainette.core.branch",
    "Chain": "chainette.core.chain",
    "ChainValidationError": "chainette.errors",
    "ChainetteError": "chainette.errors",
    "Completion": "chainette.engine.protocol",
    "CompletionRequest": "chainette.engine.protocol",
    "ConfigError": "chainette.errors",
    "DefinitionError": "chainette.errors",
    "DefinitionTypeError": "chainette.errors",
    "EmptyCompletionError": "chainette.errors",
    "Engine": "chainette.engine.protocol",
    "EngineBroker": "chainette.engine.broker",
    "EngineConfig": "chainette.engine.registry",
    "EngineConnectionError": "chainette.errors",
    "EngineError": "chainette.errors",
    "EngineHTTPError": "chainette.errors",
    "EngineStoppedError": "chainette.errors",
    "EngineTimeoutError": "chainette.errors",
    "EventBus": "chainette.events",
    "HTTPProtocolError": "chainette.errors",
    "Executor": "chainette.run.executor",
    "FakeEngine": "chainette.engine.fake",
    "Graph": "chainette.core.graph",
    "InputError": "chainette.errors",
    "JoinBranch": "chainette.core.branch",
    "MalformedResponseError": "chainette.errors",
    "ModelDownloadError": "chainette.errors",
    "ModelError": "chainette.errors",
    "Node": "chainette.core.node",
    "OutputValidationError": "chainette.errors",
    "RateLimitError": "chainette.errors",
    "RecordWriter": "chainette.io.record_writer",
    "RefusalError": "chainette.errors",
    "Result": "chainette.core.result",
    "ResumeError": "chainette.errors",
    "RunResult": "chainette.core.result",
    "RunWriter": "chainette.io.writer",
    "SamplingParams": "chainette.engine.protocol",
    "ServerDisconnectedError": "chainette.errors",
    "ServerStartError": "chainette.errors",
    "Step": "chainette.core.step",
    "StreamWriter": "chainette.io.stream_writer",
    "TruncatedCompletionError": "chainette.errors",
    "UnknownEngineError": "chainette.errors",
    "Usage": "chainette.engine.protocol",
    "apply": "chainette.core.apply",
    "batch_apply": "chainette.core.batch",
    "get_engine_config": "chainette.engine.registry",
    "load_engines_file": "chainette.engine.registry",
    "register_engine": "chainette.engine.registry",
}

__all__ = [
    "ApplyError",
    "ApplyNode",
    "AsyncExecutor",
    "BatchNode",
    "BatchRow",
    "Branch",
    "Chain",
    "ChainValidationError",
    "ChainetteError",
    "Completion",
    "CompletionRequest",
    "ConfigError",
    "DefinitionError",
    "DefinitionTypeError",
    "EmptyCompletionError",
    "Engine",
    "EngineBroker",
    "EngineConfig",
    "EngineConnectionError",
    "EngineError",
    "EngineHTTPError",
    "EngineStoppedError",
    "EngineTimeoutError",
    "EventBus",
    "Executor",
    "FakeEngine",
    "Graph",
    "HTTPProtocolError",
    "InputError",
    "JoinBranch",
    "MalformedResponseError",
    "ModelDownloadError",
    "ModelError",
    "Node",
    "OutputValidationError",
    "RateLimitError",
    "RecordWriter",
    "RefusalError",
    "Result",
    "ResumeError",
    "RunResult",
    "RunWriter",
    "SamplingParams",
    "ServerDisconnectedError",
    "ServerStartError",
    "Step",
    "StreamWriter",
    "TruncatedCompletionError",
    "UnknownEngineError",
    "Usage",
    "apply",
    "batch_apply",
    "get_engine_config",
    "load_engines_file",
    "register_engine",
]

_DEPRECATED: dict[str, tuple[str, str, str]] = {
    # the original Chainette's top-level names: (module, attribute, what to use instead)
    "Apply": ("chainette.core.apply", "ApplyNode", "chainette.ApplyNode"),
    "load_engines_from_yaml": ("chainette.engine.registry", "load_engines_from_yaml", "chainette.load_engines_file"),
    "new_run_id": ("chainette.utils.ids", "new_run_id", "chainette.utils.ids.new_run_id"),
    "render": ("chainette.core.legacy", "render", "a Step's templates (or chainette.core.templates)"),
    "snake_case": ("chainette.utils.ids", "snake_case", "chainette.utils.ids.snake_case"),
}
"""Names kept for code written for the original Chainette; each warns once used (docs/migrating.md)."""


def __getattr__(name: str) -> Any:
    module = _EXPORTS.get(name)
    if module is None and name in _DEPRECATED:
        import warnings

        module, attr, instead = _DEPRECATED[name]
        warnings.warn(
            f"chainette.{name} is deprecated; use {instead} (see docs/migrating.md)", DeprecationWarning, stacklevel=2
        )
        return getattr(import_module(module), attr)
    if module is None:
        raise AttributeError(f"module 'chainette' has no attribute {name!r}")
    value = getattr(import_module(module), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(__all__))


if TYPE_CHECKING:  # pragma: no cover - for type checkers and IDEs
    from chainette.core.apply import ApplyNode, apply
    from chainette.core.branch import Branch, JoinBranch
    from chainette.core.chain import Chain
    from chainette.core.graph import Graph
    from chainette.core.node import Node
    from chainette.core.result import Result, RunResult
    from chainette.core.step import Step
    from chainette.engine.broker import EngineBroker
    from chainette.engine.fake import FakeEngine
    from chainette.engine.protocol import Completion, CompletionRequest, Engine, SamplingParams, Usage
    from chainette.engine.registry import EngineConfig, get_engine_config, load_engines_file, register_engine
    from chainette.errors import (
        ApplyError,
        ChainetteError,
        ChainValidationError,
        ConfigError,
        DefinitionError,
        DefinitionTypeError,
        EmptyCompletionError,
        EngineConnectionError,
        EngineError,
        EngineHTTPError,
        EngineStoppedError,
        EngineTimeoutError,
        HTTPProtocolError,
        InputError,
        MalformedResponseError,
        ModelDownloadError,
        ModelError,
        OutputValidationError,
        RateLimitError,
        RefusalError,
        ResumeError,
        ServerDisconnectedError,
        ServerStartError,
        TruncatedCompletionError,
        UnknownEngineError,
    )
    from chainette.events import EventBus
    from chainette.io.stream_writer import StreamWriter
    from chainette.io.writer import RunWriter
    from chainette.run.async_executor import AsyncExecutor
    from chainette.run.executor import Executor
