"""Checks of a chain against the engines it will use, run before any request is sent.

Registered in :data:`chainette.core.extensions.CHAIN_CHECKS`, so ``Chain.validate()``,
``chainette inspect`` and every run report them with the structural problems: a step whose
engine is unknown, and an engine whose API key cannot be found (a run would otherwise send
every row without credentials and pay a 401 for each).
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any
from urllib.parse import urlparse

from chainette.core.validation import iter_steps
from chainette.engine.backend_registry import backend_of
from chainette.engine.registry import EngineConfig, get_engine_config, has_engine
from chainette.errors import Problem

if TYPE_CHECKING:
    from chainette.core.chain import Chain

KEY_REQUIRED_HOSTS = ("api.openai.com",)
"""Hosted APIs that refuse every request without a key."""


def engine_problems(chain: Chain, engines: Mapping[str, Any]) -> list[Problem]:
    """Unknown engines, then engines whose API key is missing (never printing a value)."""
    problems: list[Problem] = []
    used: dict[str, EngineConfig] = {}
    for step in iter_steps(chain.items):
        name = step.engine_name
        override = engines.get(name)
        if override is not None:
            if isinstance(override, EngineConfig):
                used.setdefault(name, override)
            continue  # an engine instance passed by the caller brings its own credentials
        if not has_engine(name):
            problems.append(
                Problem(
                    step.id,
                    f"unknown engine '{name}': register it with register_engine() "
                    "or list it in an engines.yml passed with --engines",
                )
            )
            continue
        used.setdefault(name, get_engine_config(name))
    for cfg in used.values():
        message = missing_key_message(cfg)
        if message:
            problems.append(Problem(f"engine '{cfg.name}'", message))
    return problems


def missing_key_message(cfg: EngineConfig) -> str | None:
    """Why ``cfg`` has no usable API key, or ``None`` when it has one or needs none."""
    if cfg.api_key is not None:
        return None
    if cfg.api_key_env:
        if os.environ.get(cfg.api_key_env):
            return None
        return (
            f"api_key_env is {cfg.api_key_env}, but that environment variable is not set (or empty); "
            f"export {cfg.api_key_env}=... before running, or remove api_key_env if the server needs no key"
        )
    default_env = backend_of(cfg).api_key_env
    if default_env and not os.environ.get(default_env) and _needs_key(cfg):
        return (
            f"backend '{cfg.backend}' at {cfg.resolved_endpoint()} needs an API key: export {default_env}=..., "
            "or set api_key_env to the variable that holds it"
        )
    return None


def _needs_key(cfg: EngineConfig) -> bool:
    host = urlparse(cfg.resolved_endpoint() or "").hostname or ""
    return host in KEY_REQUIRED_HOSTS
