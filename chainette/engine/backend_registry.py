"""Every backend Chainette knows, in one table: backend name -> :class:`BackendSpec`.

==============  ================  ==============  ===============================  =========
backend         engine object     managed server  endpoint when none is set        cacheable
==============  ================  ==============  ===============================  =========
``openai``      ``OpenAIClient``  -               ``$OPENAI_BASE_URL`` or OpenAI   yes
``vllm_api``    ``VLLMClient``    ``vllm serve``  (the managed server)             yes
``ollama_api``  ``OllamaClient``  -               ``http://localhost:11434``       yes
``local``       ``LocalClient``   llama.cpp       (the managed server)             yes
``fake``        ``FakeEngine``    -               none: answers in-process         no
==============  ================  ==============  ===============================  =========

Batch mode (``mode: batch``, :attr:`BackendSpec.batch`): ``openai`` through its Files and
Batches API, a managed ``vllm_api`` engine through ``vllm run-batch``; the others cannot.

This is the only place that tells backends apart: ``EngineConfig``, the engine factory,
the broker and the process manager ask :func:`backend_of` instead of comparing backend
names. A new backend, or a new kind of managed server (a
:class:`~chainette.engine.servers.base.ManagedServer` description), is one
:func:`register_backend` call.

Clients and servers are named by ``"module:attribute"`` paths (like entry points) and
imported on first use: reading an engine config imports no HTTP code, and this module
imports nothing from the engine package (``EngineConfig`` itself asks it questions).
Registrations may pass the objects themselves instead.
"""

from __future__ import annotations

import importlib
import os
from collections.abc import Callable
from dataclasses import dataclass
from functools import cache
from typing import Any, Protocol

from chainette.errors import ConfigError

OLLAMA_DEFAULT_ENDPOINT = "http://localhost:11434"
OPENAI_DEFAULT_ENDPOINT = "https://api.openai.com/v1"


class _Config(Protocol):
    """What the table reads from an engine config (an ``EngineConfig``)."""

    name: str
    backend: str
    endpoint: str | None


@dataclass(frozen=True)
class BackendSpec:
    """What one backend is: how to build its engine object and where its server comes from."""

    name: str
    client: str | Callable[..., Any]
    """``(cfg, endpoint) -> Engine``, or its ``"module:attribute"`` path; builds without I/O."""
    server: str | Any | None = None
    """The :class:`~chainette.engine.servers.base.ManagedServer` Chainette starts when the engine
    has no ``endpoint`` (an instance, or the ``"module:Class"`` path of one); ``None``: never started."""
    default_endpoint: Callable[[], str | None] | None = None
    """Where the server answers when the engine sets no ``endpoint`` and nothing is started."""
    api_key_env: str | None = None
    """The variable holding the API key when the engine sets neither ``api_key`` nor ``api_key_env``."""
    in_process: bool = False
    """Answers inside this process: no server, no endpoint, nothing to start or release."""
    cacheable: bool = True
    """Its answers may be stored in the item cache (``False`` for the fake)."""
    batch: str | None = None
    """How it runs in batch mode (``mode: batch``, docs/batch.md): ``"openai"`` (the Files and Batches
    API at its endpoint), ``"vllm-offline"`` (when managed: ``vllm run-batch``), or ``None`` (it cannot)."""

    def is_managed(self, cfg: _Config) -> bool:
        """True when Chainette starts and stops ``cfg``'s server itself."""
        return self.server is not None and not cfg.endpoint

    def create_client(self, cfg: _Config, endpoint: str | None) -> Any:
        """The engine object for ``cfg`` (an :class:`~chainette.engine.protocol.Engine`)."""
        factory = _load(self.client) if isinstance(self.client, str) else self.client
        return factory(cfg, endpoint)

    def managed_server(self) -> Any:
        """The server description (a ``ManagedServer``), or ``None`` for a backend that starts none."""
        return _server_instance(self.server) if isinstance(self.server, str) else self.server


_BACKENDS: dict[str, BackendSpec] = {}


def register_backend(spec: BackendSpec) -> BackendSpec:
    """Add ``spec`` to the table (replacing a backend of the same name) and return it."""
    _BACKENDS[spec.name] = spec
    return spec


def unregister_backend(name: str) -> None:
    """Remove backend ``name`` (for tests and plugins that registered their own)."""
    _BACKENDS.pop(name, None)


def backend_names() -> list[str]:
    """The registered backend names, sorted."""
    return sorted(_BACKENDS)


def backend_spec(name: str) -> BackendSpec:
    """The spec registered under ``name``; :class:`ConfigError` naming the known ones otherwise."""
    spec = _BACKENDS.get(name)
    if spec is None:
        raise ConfigError(
            f"unknown backend '{name}' (registered: {', '.join(backend_names())}); add one with "
            "chainette.engine.backend_registry.register_backend(BackendSpec(...))"
        )
    return spec


def backend_of(cfg: _Config) -> BackendSpec:
    """The spec of ``cfg``'s backend."""
    try:
        return backend_spec(cfg.backend)
    except ConfigError as exc:
        raise ConfigError(f"engine '{cfg.name}': {exc}", engine=cfg.name) from None


@cache
def _load(path: str) -> Any:
    module, _, attribute = path.partition(":")
    target: Any = importlib.import_module(module)
    for part in attribute.split("."):
        target = getattr(target, part)
    return target


@cache
def _server_instance(path: str) -> Any:
    return _load(path)()


# -- the built-in backends ------------------------------------------------------
def _openai_endpoint() -> str:
    return (os.environ.get("OPENAI_BASE_URL") or OPENAI_DEFAULT_ENDPOINT).rstrip("/")


for _spec in (
    BackendSpec(
        "openai",
        "chainette.engine.backends.openai:OpenAIClient",
        default_endpoint=_openai_endpoint,
        api_key_env="OPENAI_API_KEY",
        batch="openai",
    ),
    BackendSpec(
        "vllm_api",
        "chainette.engine.backends.vllm:VLLMClient",
        server="chainette.engine.servers.vllm:VLLMServer",
        batch="vllm-offline",
    ),
    BackendSpec(
        "ollama_api", "chainette.engine.backends.ollama:OllamaClient", default_endpoint=lambda: OLLAMA_DEFAULT_ENDPOINT
    ),
    BackendSpec(
        "local",
        "chainette.engine.backends.local:LocalClient",
        server="chainette.engine.servers.llamacpp:LlamaCppServer",
    ),
    BackendSpec("fake", "chainette.engine.fake:FakeEngine.from_config", in_process=True, cacheable=False),
):
    register_backend(_spec)
del _spec
