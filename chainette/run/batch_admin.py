"""What ``chainette batches RUN_DIR`` does: list a run's batches, refresh them, cancel them.

The batches come from the run's journal (``.chainette/batches.json``). Asking a provider
(``refresh``, ``cancel``) needs each engine's config: the engines registered now (an
``--engines`` file) win, else the run's own ``metadata.json`` (which holds no key: the key
then comes from ``api_key_env`` or the backend's variable, e.g. ``OPENAI_API_KEY``).

Cancelling records the ids in ``.chainette/batches-cancel.json`` before asking the provider,
so a driver still running stops (resumable) instead of sending the unfinished rows again.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from chainette.engine.batch.record import BatchRecord
from chainette.engine.batch.wire import TERMINAL_STATES
from chainette.engine.registry import EngineConfig, registered_engines
from chainette.errors import ChainetteError, ConfigError
from chainette.io.batch_journal import BatchJournal, load_batches

__all__ = ["cancel_batches", "list_batches", "refresh_batches"]


def _journal(run_dir: str | Path) -> BatchJournal:
    journal = load_batches(run_dir)
    if journal is None:
        raise ConfigError(
            f"{run_dir} holds no batches: it is not the run directory of a run in batch mode "
            "(engines with `mode: batch`)"
        )
    return journal


def list_batches(run_dir: str | Path) -> list[BatchRecord]:
    """The run's batches as journaled, oldest first."""
    return _journal(run_dir).records()


def _configs(run_dir: Path) -> dict[str, EngineConfig]:
    out: dict[str, EngineConfig] = {}
    meta = run_dir / "metadata.json"
    try:
        engines = json.loads(meta.read_text(encoding="utf-8")).get("engines") or []
    except (OSError, ValueError):
        engines = []
    for d in engines:
        if not isinstance(d, dict) or "name" not in d:
            continue
        d = {k: v for k, v in d.items() if k not in ("api_key", "extra_env")}
        try:
            out[d["name"]] = EngineConfig(**d)
        except Exception:  # a config from another version: --engines gives it
            continue
    return out


def _config_for(name: str, recorded: dict[str, EngineConfig]) -> EngineConfig:
    """The engine registered now under ``name`` (an --engines file), else the run's own record."""
    registered = {c.name: c for c in registered_engines()}
    cfg = registered.get(name) or recorded.get(name)
    if cfg is None:
        raise ConfigError(f"engine '{name}' of this run is not known: pass the run's engines file with --engines")
    return cfg


def _is_live(rec: BatchRecord) -> bool:
    return not rec.collected and rec.state not in TERMINAL_STATES


async def refresh_batches(run_dir: str | Path) -> list[tuple[BatchRecord, str | None]]:
    """Ask the provider for the status of each batch not yet finished (the journal is not changed:
    the driver owns it). Returns ``(record updated in memory, problem or None)``."""
    return await _each_live(Path(run_dir), cancel=False)


async def cancel_batches(run_dir: str | Path) -> list[tuple[BatchRecord, str | None]]:
    """Cancel every batch of the run not yet finished; ``(record, problem or None)`` each."""
    return await _each_live(Path(run_dir), cancel=True)


async def _each_live(run_dir: Path, *, cancel: bool) -> list[tuple[BatchRecord, str | None]]:
    from chainette.run.batch_mode import client_and_transport

    journal = _journal(run_dir)
    live = [r for r in journal.records() if _is_live(r)]
    if cancel:
        journal.request_cancel([x for r in live for x in (r.batch_id, r.key) if x])
    recorded = _configs(run_dir)
    transports: dict[str, Any] = {}
    out: list[tuple[BatchRecord, str | None]] = []
    try:
        for rec in live:
            try:
                transport = transports.get(rec.engine)
                if transport is None:
                    transport = transports[rec.engine] = client_and_transport(
                        _config_for(rec.engine, recorded), journal
                    )[1]
                if rec.batch_id is None and rec.kind != "vllm-offline":
                    found = await transport.find(rec) if rec.state == "uploaded" else None
                    if found is None:
                        out.append((rec, "not submitted yet: nothing to ask the provider"))
                        continue
                    rec.batch_id = found.get("id")
                obj = await (transport.cancel(rec) if cancel else transport.retrieve(rec))
                if isinstance(obj, dict):
                    rec.state = str(obj.get("status") or rec.state)
                    counts = obj.get("request_counts")
                    if isinstance(counts, dict):
                        rec.request_counts = {k: int(v) for k, v in counts.items() if isinstance(v, int)}
                out.append((rec, None))
            except ChainetteError as exc:
                out.append((rec, str(exc)))
    finally:
        for transport in transports.values():
            await transport.aclose()
    return out
