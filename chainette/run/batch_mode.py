"""Batch mode in a run: the engine object of an engine with ``mode: batch``, and its checks.

:class:`~chainette.run.engines.RunEngines` asks :func:`create_batch_engine` for an engine in
batch mode instead of starting a server: a
:class:`~chainette.engine.batch.engine.BatchEngine` over

* ``backend: openai`` (OpenAI, or a gateway with the same Files and Batches API): the online
  client builds the bodies, :class:`~chainette.engine.batch.openai_api.OpenAIBatchAPI` sends
  the files;
* ``backend: vllm_api`` with no ``endpoint`` (a managed vLLM): no server is started, each
  file runs through ``vllm run-batch`` (:class:`~chainette.engine.batch.vllm_offline.VLLMRunBatch`).

Every engine of a run shares one journal in the run directory
(:class:`~chainette.io.batch_journal.BatchJournal`); a run without an output directory keeps
it in a temporary directory (nothing to resume then). :func:`batch_problems` (a chain check)
refuses batch mode where there is no batch API. :func:`in_batch_mode` switches a config to
batch mode (:class:`~chainette.run.batch_runner.BatchRunner`, ``runner="batch"``).
"""

from __future__ import annotations

import shutil
import tempfile
from collections.abc import Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any

from chainette.core.validation import iter_steps
from chainette.engine.backend_registry import backend_of
from chainette.engine.registry import EngineConfig, get_engine_config, has_engine
from chainette.errors import ConfigError, Problem

if TYPE_CHECKING:
    from chainette.core.chain import Chain
    from chainette.engine.batch.engine import BatchEngine

OFFLINE_ENDPOINT = "http://vllm-run-batch.invalid/v1"
"""The address an offline vLLM client is built with: it only builds bodies and reads replies."""

__all__ = [
    "batch_kind",
    "batch_problems",
    "client_and_transport",
    "close_batch_state",
    "create_batch_engine",
    "in_batch_mode",
]


def batch_kind(cfg: EngineConfig) -> str | None:
    """How ``cfg`` runs in batch mode: ``"openai"``, ``"vllm-offline"``, or ``None`` (it cannot);
    see ``BackendSpec.batch``."""
    spec = backend_of(cfg)
    if spec.batch == "vllm-offline":
        return spec.batch if spec.is_managed(cfg) else None
    return spec.batch


def batch_mode_problem(cfg: EngineConfig) -> str | None:
    if cfg.mode != "batch":
        return None
    if len(getattr(cfg, "endpoints", None) or []) > 1:
        return "mode: batch sends files to one Batch API: give one `endpoint`, not several `endpoints`"
    if batch_kind(cfg) is not None:
        return None
    if backend_of(cfg).batch == "vllm-offline":
        return (
            "mode: batch with an `endpoint`: a vLLM server has no Batch API. Remove `endpoint` to run "
            "the batches offline with `vllm run-batch`, or use mode: online"
        )
    return (
        f"mode: batch needs a batch API: backend 'openai' (the OpenAI Batch API or a compatible gateway) "
        f"or a managed 'vllm_api' engine (`vllm run-batch`); backend '{cfg.backend}' has none"
    )


def batch_problems(chain: Chain, engines: Mapping[str, Any]) -> list[Problem]:
    """Engines in batch mode that cannot run in it (a chain check)."""
    seen: set[str] = set()
    out = []
    for step in iter_steps(chain.items):
        name = step.engine_name
        if name in seen:
            continue
        seen.add(name)
        cfg = engines.get(name)
        if cfg is None and has_engine(name):
            cfg = get_engine_config(name)
        if isinstance(cfg, EngineConfig):
            problem = batch_mode_problem(cfg)
            if problem:
                out.append(Problem(f"engine '{name}'", problem))
    return out


async def create_batch_engine(
    cfg: EngineConfig, run_dir: Path | None, shared: dict[str, Any], events: Any = None
) -> BatchEngine:
    """The engine of ``cfg`` in batch mode (prepared: earlier sessions' batches re-attached).

    ``shared`` is one dict per run (the journal all engines of the run share)."""
    from chainette.engine.batch.engine import BatchEngine
    from chainette.io.batch_journal import BatchJournal

    problem = batch_mode_problem(cfg)
    if problem:
        raise ConfigError(f"engine '{cfg.name}': {problem}", engine=cfg.name)
    journal = shared.get("journal")
    if journal is None:
        if run_dir is None:
            shared["tmp"] = tempfile.mkdtemp(prefix="chainette-batches-")
            journal = BatchJournal(shared["tmp"], durable=False)
        else:
            journal = BatchJournal(run_dir)
        shared["journal"] = journal
    publish = events.publish if events is not None else None
    online, transport = client_and_transport(cfg, journal)
    engine = BatchEngine(
        cfg,
        online,
        transport,
        journal,
        publish=publish,
        reask_online=False if transport.kind == "vllm-offline" else None,
    )
    await engine.prepare()
    return engine


def client_and_transport(cfg: EngineConfig, journal: Any) -> tuple[Any, Any]:
    """``(online client, batch transport)`` of ``cfg`` in batch mode over the run's ``journal``."""
    if batch_kind(cfg) == "openai":
        from chainette.engine.batch.openai_api import OpenAIBatchAPI

        online = backend_of(cfg).create_client(cfg, None)  # builds bodies exactly as online
        return online, OpenAIBatchAPI(online, run_key=journal.run_key, completion_window=cfg.batch.completion_window)
    from chainette.engine.batch.vllm_offline import VLLMRunBatch

    return backend_of(cfg).create_client(cfg, OFFLINE_ENDPOINT), VLLMRunBatch(cfg, journal)


def close_batch_state(shared: dict[str, Any]) -> None:
    """Remove the temporary journal of a run without an output directory."""
    tmp = shared.pop("tmp", None)
    shared.pop("journal", None)
    if tmp:
        shutil.rmtree(tmp, ignore_errors=True)


def in_batch_mode(cfg: EngineConfig) -> EngineConfig:
    """``cfg`` switched to batch mode when it can run in it (unchanged otherwise)."""
    if cfg.mode == "batch" or batch_kind(cfg) is None:
        return cfg
    from chainette.engine.batch.settings import BATCH_MAX_IN_FLIGHT

    update: dict[str, Any] = {"mode": "batch"}
    if "max_in_flight" not in cfg.model_fields_set:
        update["max_in_flight"] = BATCH_MAX_IN_FLIGHT  # batch mode's own default
    return cfg.model_copy(update=update)
