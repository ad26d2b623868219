"""Engine configuration and the process-wide registry of named engines.

``register_engine(name=..., model=..., backend=...)`` stores an :class:`EngineConfig`;
``get_engine_config(name)`` returns it; ``load_engines_file(path)`` reads an
``engines:`` YAML file. The API key is a ``SecretStr``: it never shows in a repr,
a log line or a run artifact (``public_dict()`` is what gets written).
"""

from __future__ import annotations

import os
import threading
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, SecretStr, ValidationError, field_validator, model_validator

from chainette.core.step import DEFAULT_ENGINE_NAME  # a step naming no engine uses this one
from chainette.engine.backend_registry import (
    backend_names,
    backend_of,
)
from chainette.engine.batch.settings import BATCH_MAX_IN_FLIGHT, BatchSettings
from chainette.engine.pricing import Price
from chainette.errors import ConfigError, UnknownEngineError, describe_validation_error, describe_yaml_error

Backend = Literal["openai", "vllm_api", "ollama_api", "local", "fake"]
"""The built-in backends (each registered in :mod:`chainette.engine.backend_registry`,
where ``register_backend`` adds more)."""

LOCAL_ENGINE_NAME = "local"
BUILTIN_ENGINES = (DEFAULT_ENGINE_NAME, LOCAL_ENGINE_NAME)


class EngineConfig(BaseModel):
    """How to reach (or start) one LLM server."""

    model_config = ConfigDict(extra="forbid", validate_assignment=True)

    name: str
    model: str = ""
    backend: str = "vllm_api"  # a registered backend name (see Backend for the built-in ones)
    endpoint: str | None = None
    endpoints: list[str] = Field(default_factory=list)
    """Several servers of the same model (replicas): requests go to the one with the fewest in
    flight, each with its own ``max_in_flight`` and health (see :mod:`chainette.engine.multi_endpoint`).
    ``endpoint`` is then the first of them."""
    replicas: int = Field(default=1, ge=1)
    """Managed servers only: start this many servers of the model, each on its own equal share of
    ``gpu_ids`` (ports ``port``, ``port+1``, ... when ``port`` is set), used like ``endpoints``."""
    api_key: SecretStr | None = Field(default=None, repr=False)
    api_key_env: str | None = None
    lazy: bool = True
    port: int | None = None
    host: str = "127.0.0.1"
    startup_timeout: float = 600.0
    gpu_ids: list[int] | None = None
    dtype: str | None = None
    gpu_memory_utilization: float | None = None
    max_model_len: int | None = None
    tensor_parallel_size: int | None = None
    enable_reasoning: bool = False
    reasoning_parser: str | None = None
    reasoning_effort: Literal["none", "minimal", "low", "medium", "high", "xhigh", "max"] | None = None
    """Sent as ``reasoning_effort`` (openai, vllm_api) or Ollama's ``think`` level."""
    max_tokens_field: Literal["max_tokens", "max_completion_tokens"] | None = None
    """openai backend: the body key of ``max_tokens`` (default: ``max_completion_tokens`` on
    api.openai.com, ``max_tokens`` elsewhere)."""
    strict_schema: Literal["auto", "always", "never"] = "auto"
    """openai backend: strict structured outputs when the schema allows it (auto), or else
    refuse the chain (always), or never."""
    extra_serve_flags: list[str] = Field(default_factory=list)
    extra_env: dict[str, str] = Field(default_factory=dict, repr=False)
    max_in_flight: int = Field(default=256, ge=1)
    timeout: float = Field(default=120.0, gt=0)
    max_retries: int = Field(default=5, ge=0)
    requests_per_minute: float | None = Field(default=None, gt=0)
    tokens_per_minute: float | None = Field(default=None, gt=0)
    server_version: str | None = None
    n_parallel: int | None = None
    n_ctx: int | None = None
    threads: int | None = None
    price: Price | None = None
    """What this engine costs (USD per 1M input / cached input / output tokens, and/or per hour
    held); default: the packaged price table for well-known hosted models, else unknown."""
    mode: Literal["online", "batch"] = "online"
    """``batch``: requests go through the provider's Batch API (openai), or ``vllm run-batch`` for a
    managed vllm_api engine; see docs/batch.md. ``max_in_flight`` then defaults to 10,000."""
    batch: BatchSettings = Field(default_factory=BatchSettings)
    """batch mode: file limits, linger, polling, re-asks (see :class:`BatchSettings`)"""

    @model_validator(mode="before")
    @classmethod
    def _reject_removed_backends(cls, data: Any) -> Any:
        if isinstance(data, dict):
            if data.get("backend") == "vllm_local":
                raise ValueError(
                    "backend 'vllm_local' was removed: run `vllm serve <model>` and use "
                    "backend: vllm_api (Chainette can start the server for you when no endpoint is given)"
                )
            if "devices" in data and "gpu_ids" not in data:
                data = {**data, "gpu_ids": data.pop("devices")}
            data = _merge_spec_env(data)
            _check_replicas(data)
            data = _merge_endpoints(data)
        return data

    @model_validator(mode="before")
    @classmethod
    def _batch_in_flight(cls, data: Any) -> Any:
        if isinstance(data, dict) and data.get("mode") == "batch" and "max_in_flight" not in data:
            data = {**data, "max_in_flight": BATCH_MAX_IN_FLIGHT}  # rows enough to fill a batch file
        return data

    @field_validator("backend")
    @classmethod
    def _registered_backend(cls, v: str) -> str:
        if v not in backend_names():
            raise ValueError(f"unknown backend '{v}' (registered: {', '.join(backend_names())})")
        return v

    @field_validator("endpoint")
    @classmethod
    def _strip_slash(cls, v: str | None) -> str | None:
        return v.rstrip("/") if v else v

    # -- derived values --------------------------------------------------
    def resolved_api_key(self) -> str | None:
        """The API key from the config, ``api_key_env`` or the backend's default variable."""
        if self.api_key is not None:
            return self.api_key.get_secret_value()
        if self.api_key_env:
            return os.environ.get(self.api_key_env)
        default_env = backend_of(self).api_key_env
        return os.environ.get(default_env) if default_env else None

    def resolved_endpoint(self) -> str | None:
        """Where to send requests; ``None`` means a server must be started."""
        if self.endpoint:
            return self.endpoint
        default = backend_of(self).default_endpoint
        return default() if default else None

    @property
    def is_managed(self) -> bool:
        """True when Chainette starts and stops this engine's server itself."""
        return backend_of(self).is_managed(self)

    def public_dict(self) -> dict[str, Any]:
        """The config as written to ``metadata.json``: no secret, no environment values."""
        d = self.model_dump(mode="json", exclude={"api_key", "extra_env"})
        d["api_key"] = "***" if self.api_key is not None else None
        d["extra_env"] = sorted(self.extra_env)
        return d


def _check_replicas(data: dict[str, Any]) -> None:
    n = data.get("replicas") or 1
    if not isinstance(n, int) or n <= 1:
        return
    if data.get("endpoint") or data.get("endpoints"):
        raise ValueError("replicas is for servers Chainette starts; for servers you run, list them in endpoints:")
    gpus = data.get("gpu_ids") or data.get("devices")
    if gpus and len(gpus) % n:
        raise ValueError(f"replicas: {n} needs gpu_ids in {n} equal shares (got {len(gpus)} GPUs)")


def _merge_endpoints(data: dict[str, Any]) -> dict[str, Any]:
    """``endpoints: [a, b]`` sets ``endpoint`` to ``a`` (every single-endpoint rule then applies to
    the first one); an ``endpoint`` that is not in the list is refused, not silently dropped."""
    eps = data.get("endpoints")
    if not eps:
        return data
    if isinstance(eps, str) or not isinstance(eps, list) or not all(isinstance(e, str) and e.strip() for e in eps):
        raise ValueError("endpoints must be a list of base URLs, e.g. [http://gpu1:8000/v1, http://gpu2:8000/v1]")
    eps = [e.strip().rstrip("/") for e in eps]
    if len(set(eps)) != len(eps):
        raise ValueError("endpoints lists the same URL twice")
    one = data.get("endpoint")
    if one and one.rstrip("/") not in eps:
        raise ValueError(
            f"endpoint {one!r} is not one of endpoints; set only endpoints: (the first one is used "
            "where a single address is needed)"
        )
    return {**data, "endpoints": eps, "endpoint": eps[0]}


def _merge_spec_env(data: dict[str, Any]) -> dict[str, Any]:
    """Accept the spec's ``env:`` forms as ``extra_env``: a top-level ``env:`` mapping, or
    ``{env: {...}}`` items inside ``extra_serve_flags``."""
    flags = data.get("extra_serve_flags")
    env_items = [f for f in flags if isinstance(f, dict)] if isinstance(flags, list) else []
    if "env" not in data and not env_items:
        return data
    data = dict(data)
    merged: dict[str, Any] = {}
    for item in env_items:
        if set(item) != {"env"} or not isinstance(item["env"], dict):
            raise ValueError("extra_serve_flags items must be strings (or one {env: {VAR: value}} mapping)")
        merged.update(item["env"])
    if env_items and isinstance(flags, list):
        data["extra_serve_flags"] = [f for f in flags if not isinstance(f, dict)]
    top = data.pop("env", None)
    if top is not None:
        if not isinstance(top, dict):
            raise ValueError("env must be a mapping of VAR: value")
        merged.update(top)
    data["extra_env"] = {**merged, **(data.get("extra_env") or {})}
    return data


_REGISTRY: dict[str, EngineConfig] = {}
_LOCK = threading.Lock()


def _builtin_local(name: str) -> EngineConfig:
    return EngineConfig(name=name, backend="local", model="smollm2", max_in_flight=16, timeout=300.0)


def register_engine(name: str | EngineConfig | None = None, /, **fields: Any) -> EngineConfig:
    """Register an engine under ``name`` and return its config.

    Accepts either keyword fields (``register_engine(name="gpt", backend="openai", model=...)``)
    or a ready :class:`EngineConfig`. Re-registering a name replaces it.
    """
    if isinstance(name, EngineConfig):
        cfg = name
    else:
        if name is not None:
            fields["name"] = name
        try:
            cfg = EngineConfig(**fields)
        except ValidationError as exc:
            raise ConfigError(_describe_validation(exc, fields.get("name"))) from None
    with _LOCK:
        _REGISTRY[cfg.name] = cfg
    return cfg


def get_engine_config(name: str) -> EngineConfig:
    """Return the config registered under ``name`` (the built-in ``local`` engine always exists)."""
    with _LOCK:
        cfg = _REGISTRY.get(name)
    if cfg is not None:
        return cfg
    if name in BUILTIN_ENGINES:
        return register_engine(_builtin_local(name))
    raise UnknownEngineError(
        f"unknown engine '{name}'. Registered: {', '.join(sorted(_REGISTRY)) or '(none)'}. "
        "Register it with chainette.register_engine(name=..., backend=..., model=...) "
        "or pass --engines engines.yml",
        engine=name,
    )


def has_engine(name: str) -> bool:
    with _LOCK:
        return name in _REGISTRY or name in BUILTIN_ENGINES


def registered_engines() -> list[EngineConfig]:
    with _LOCK:
        return [_REGISTRY[k] for k in sorted(_REGISTRY)]


def unregister_engine(name: str) -> None:
    with _LOCK:
        _REGISTRY.pop(name, None)


def _describe_validation(exc: ValidationError, name: Any, where: str = "") -> str:
    prefix = f"{where}engine '{name}'" if name else f"{where}engine"
    return f"{prefix}: " + describe_validation_error(exc, limit=None, known_fields=EngineConfig.model_fields)


def load_engines_file(path: str | Path, *, register: bool = True) -> list[EngineConfig]:
    """Read an ``engines:`` YAML file (safe loader) and register every engine in it."""
    import yaml

    p = Path(path)
    try:
        data = yaml.safe_load(p.read_text())
    except FileNotFoundError:
        raise ConfigError(f"{p}: engines file not found") from None
    except yaml.YAMLError as exc:
        raise ConfigError(describe_yaml_error(exc, p)) from exc
    if not isinstance(data, dict) or not isinstance(data.get("engines"), list):
        raise ConfigError(f"{p}: expected a mapping with a list under 'engines:'")
    configs = engine_configs(data["engines"], source=str(p))
    if register:
        for cfg in configs:
            register_engine(cfg)
    return configs


def engine_configs(entries: list[Any], *, source: str) -> list[EngineConfig]:
    """Validate an ``engines:`` list (from an engines file or a YAML chain); errors name the entry."""
    configs = []
    for i, entry in enumerate(entries):
        where = f"{source}: engines[{i}]: "
        if not isinstance(entry, dict):
            raise ConfigError(f"{where}expected a mapping of engine fields")
        # the spec's nested `env:` inside extra_serve_flags is accepted as extra_env
        try:
            configs.append(EngineConfig(**entry))
        except ValidationError as exc:
            raise ConfigError(_describe_validation(exc, entry.get("name"), where)) from None
    return configs


def load_engines_from_yaml(path: str | Path) -> list[EngineConfig]:
    """Deprecated (the original Chainette's name): :func:`load_engines_file`. The file may also be
    a bare YAML list of engine mappings, the shape the original read."""
    import warnings

    import yaml

    warnings.warn(
        "load_engines_from_yaml() is deprecated; use load_engines_file() (see docs/migrating.md)",
        DeprecationWarning,
        stacklevel=2,
    )
    p = Path(path)
    try:
        data = yaml.safe_load(p.read_text())
    except FileNotFoundError:
        raise ConfigError(f"{p}: engines file not found") from None
    except yaml.YAMLError as exc:
        raise ConfigError(describe_yaml_error(exc, p)) from exc
    if not isinstance(data, list):
        return load_engines_file(p)
    configs = engine_configs(data, source=str(p))
    for cfg in configs:
        register_engine(cfg)
    return configs
