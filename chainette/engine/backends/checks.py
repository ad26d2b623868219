"""What a step asks of its engine's wire, checked before any request is sent.

A step's sampling fields, its output schema and its engine's settings are checked against
the engine object its config builds (construction does no I/O), so validation asks the
same code that later builds the request bodies:

* :func:`step_wire_problems` - errors: a sampling field the server cannot honour (OpenAI
  has no ``top_k``), a ``reasoning_effort`` it does not accept, an output model that
  ``strict_schema: always`` cannot send strictly. Sending them would fail every row.
* :func:`schema_warnings` - warnings: the output model goes out under a weaker mechanism
  (OpenAI non-strict JSON schema), so replies are validated but not constrained.

:func:`wire_problems` and :func:`wire_warnings` apply them to a whole chain;
``wire_problems`` has the chain-check signature ``(chain, engines) -> list[Problem]``.
Engine instances passed in ``engines`` are asked directly when they offer the same
methods (an HTTP client does; a ``FakeEngine`` honours everything).
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from typing import TYPE_CHECKING, Any

from chainette.errors import ChainetteError, Problem

if TYPE_CHECKING:
    from chainette.core.chain import Chain

_PLACEHOLDER_ENDPOINT = "http://127.0.0.1:9/v1"  # a managed server's address is only known once started


def engine_for_checks(engine: Any) -> Any:
    """The engine object to ask: ``engine`` itself, or the client an ``EngineConfig`` builds."""
    from chainette.engine.registry import EngineConfig

    if not isinstance(engine, EngineConfig):
        return engine
    from chainette.engine.factory import create_engine

    try:
        endpoint = None if engine.resolved_endpoint() else _PLACEHOLDER_ENDPOINT
        return create_engine(engine, endpoint)
    except ChainetteError:
        return None  # an unusable config is reported by the engine checks


def step_wire_problems(step: Any, engine: Any) -> list[str]:
    """Why ``step``'s requests cannot be sent to ``engine`` (an Engine or an EngineConfig)."""
    client = engine_for_checks(engine)
    if client is None:
        return []
    out: list[str] = []
    sampling_problems = getattr(client, "sampling_problems", None)
    if sampling_problems is not None:
        out += sampling_problems(step.sampling)
    config_problems = getattr(client, "config_problems", None)
    if config_problems is not None:
        out += config_problems()
    schema_problems = getattr(client, "schema_problems", None)
    if schema_problems is not None and step.output_model is not None:
        out += schema_problems(_schema(step), step.output_model.__name__)
    return out


def schema_warnings(step: Any, engine: Any) -> list[str]:
    """How ``engine`` enforces ``step``'s output model less than fully (empty: fully)."""
    client = engine_for_checks(engine)
    warn = getattr(client, "schema_warnings", None)
    if warn is None or step.output_model is None:
        return []
    return warn(_schema(step), step.output_model.__name__)


def wire_problems(chain: Chain, engines: Mapping[str, Any]) -> list[Problem]:
    """:func:`step_wire_problems` for every step of ``chain`` (a chain check)."""
    return [
        Problem(step.id, msg)
        for step, engine in _steps_and_engines(chain, engines)
        for msg in step_wire_problems(step, engine)
    ]


def wire_warnings(chain: Chain, engines: Mapping[str, Any]) -> list[Problem]:
    """:func:`schema_warnings` for every step of ``chain`` (shown by validate/inspect/run start)."""
    return [
        Problem(step.id, msg, severity="warning")
        for step, engine in _steps_and_engines(chain, engines)
        for msg in schema_warnings(step, engine)
    ]


def _schema(step: Any) -> dict[str, Any]:
    from chainette.utils.json_schema import model_schema

    return model_schema(step.output_model)


def _steps_and_engines(chain: Chain, engines: Mapping[str, Any]) -> Iterator[tuple[Any, Any]]:
    from chainette.core.validation import iter_steps
    from chainette.engine.registry import get_engine_config, has_engine

    resolved: dict[str, Any] = {}
    for step in iter_steps(chain.items):
        name = step.engine_name
        if name not in resolved:
            engine = engines.get(name)
            if engine is None and has_engine(name):
                engine = get_engine_config(name)
            resolved[name] = engine_for_checks(engine) if engine is not None else None
        if resolved[name] is not None:
            yield step, resolved[name]
