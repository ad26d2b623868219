"""``RayRunner``: a chain over a Ray cluster (``chain.run(..., runner="ray")``, ``--runner ray``).

We do not build a distributed system: Ray schedules the work, and everything that makes a
local run trustworthy is kept as it is::

    input ─► blocks of N rows (ray_blocks.py)  ─► BlockWorker actors (ray_worker.py), one per CPU:
    (path, ray Dataset,  block k = rows kN..kN+N-1        the local AsyncExecutor over the block,
     or any iterable)                                     into <out>/.chainette/blocks/<k>/ (a sub-run)
                                                                  │ finished block
    driver (this module) ◄─────────────────────────────────────────┘
      └─► merges each finished block into <out> (io/block_merge.py): the same run-directory
          layout, one journal of global row indices, metadata.json with per-worker figures

* **Row identity**: block ``k`` starts at row ``k*N``; a row's id is its input position, as locally.
* **Resume**: the run's journal says which rows are merged; a block's sub-run journal says which
  of its rows are committed. After the driver or a worker is killed, a resumed run skips merged
  blocks, merges finished ones, and resumes the others where their journals stop: committed
  rows are never requested again. A worker that dies mid-run is replaced and its block resumed.
* **Limits**: an engine's ``max_in_flight`` holds across all workers together (slots leased in
  chunks from one named actor, ``engine/slot_lease.py``); a managed server is started once per
  node and shared by the node's workers.
* **Storage**: workers write block sub-runs under the output directory, and the driver reads them:
  on a cluster of several machines the output directory must be on storage every node mounts.

Options beyond the local runner's: ``ray_address`` (default: ``$RAY_ADDRESS`` or a local cluster),
``num_workers`` (default: the cluster's CPUs), ``block_rows`` (default 10,000; a resumed run keeps
the one it started with), ``blocks_per_worker`` (blocks run at once by one worker, default 2, so
one block's tail overlaps the next one's start), ``ray_init`` (more ``ray.init`` arguments).
Not supported (a ``ConfigError`` says so): a custom ``writer``, ``on_rows``, ``debug`` and the
run-wide budgets ``max_cost`` / ``max_tokens``.
"""

from __future__ import annotations

import asyncio
import os
import sys
import sysconfig
import time
from collections.abc import AsyncIterable, Iterable
from pathlib import Path
from typing import TYPE_CHECKING, Any

from chainette.core.result import RunResult, StepStats
from chainette.core.validation import iter_nodes
from chainette.errors import ChainetteError, ConfigError
from chainette.events import BatchFinished, EventBus, RunFinished, RunStarted, StepTotalItems
from chainette.events import bus as global_bus
from chainette.io.base_writer import RunInfo
from chainette.io.block_merge import BLOCKS_DIR, BlockRunWriter, block_dir, read_layout, write_layout
from chainette.run.inputs import graph_fingerprint, inputs_fingerprint
from chainette.run.ray_blocks import Block, iter_blocks, peek_rows
from chainette.run.ray_worker import (
    NAMESPACE,
    SERVERS_ACTOR,
    SLOTS_ACTOR,
    WORKER_ACTOR,
    BlockWorker,
    NodeServers,
    SlotTableActor,
)
from chainette.run.stop import ErrorGuard
from chainette.utils.ids import new_run_id

if TYPE_CHECKING:
    from chainette.core.chain import Chain

DEFAULT_BLOCK_ROWS = 10_000
BLOCK_ATTEMPTS = 3
"""Times a block is started again after the worker running it died, before the run gives up."""
FINGERPRINT_ROWS = 100
_UNSUPPORTED = {
    "on_rows": "on_rows (rows are committed on the workers)",
    "debug": "debug (run a sample locally with --debug first)",
    "max_cost": "max_cost (run-wide budgets are enforced by the local runner only)",
    "max_tokens": "max_tokens (run-wide budgets are enforced by the local runner only)",
}


class RayRunner:
    """Runs a chain over a Ray cluster (see the module docstring)."""

    def run(self, chain: Chain, inputs: Any, output_dir: str | Path | None = None, **options: Any) -> RunResult:
        return _RayRun(chain, inputs, output_dir, options).execute()

    async def run_async(
        self,
        chain: Chain,
        inputs: Iterable[Any] | AsyncIterable[Any],
        output_dir: str | Path | None = None,
        **options: Any,
    ) -> RunResult:
        import anyio

        return await anyio.to_thread.run_sync(lambda: self.run(chain, inputs, output_dir, **options))


class _RayRun:
    def __init__(self, chain: Chain, inputs: Any, output_dir: Any, options: dict[str, Any]) -> None:
        self.chain = chain
        self.inputs = inputs
        opts = dict(options)
        for key, what in _UNSUPPORTED.items():
            if opts.pop(key, None) not in (None, False):
                raise ConfigError(f"runner='ray' does not support {what}; use the local runner for that")
        writer = opts.pop("writer", None)
        if writer is not None:
            raise ConfigError(
                "runner='ray' writes the standard run directory; a custom writer needs the local "
                "runner (or convert the finished run directory)"
            )
        opts.pop("debug_output", None)
        if output_dir is None:
            raise ConfigError("runner='ray' writes a run directory: pass output_dir (-o/--output-dir)")
        self.out = Path(output_dir).absolute()  # workers run elsewhere (another cwd, another machine)
        self.address = opts.pop("ray_address", None)
        self.num_workers = opts.pop("num_workers", None)
        self.block_rows = int(opts.pop("block_rows", None) or DEFAULT_BLOCK_ROWS)
        self.per_worker = max(1, int(opts.pop("blocks_per_worker", 2)))
        self.ray_init = dict(opts.pop("ray_init", None) or {})
        self.overrides = dict(opts.pop("engines", None) or {})
        self.bus: EventBus = opts.pop("events", None) or global_bus
        self.batch_size = int(opts.pop("batch_size", None) or chain.batch_size)
        cache = opts.pop("cache", True)
        if cache not in (True, False, None):
            raise ConfigError("runner='ray' takes cache=True or False (each node opens its own item cache)")
        self.worker_options = {
            "batch_size": self.batch_size,
            "cache": bool(cache),
            "error_guard": opts.pop("error_guard", ErrorGuard()),
            "window": opts.pop("window", None),
        }
        self.fmt = opts.pop("fmt", "jsonl")
        self.max_lines = int(opts.pop("max_lines_per_file", 10_000))
        self.resume = bool(opts.pop("resume", False))
        self.force = bool(opts.pop("force", False))
        self.retry_errors = bool(opts.pop("retry_errors", False))
        self.total = opts.pop("total", None)
        self.run_id = opts.pop("run_id", None) or new_run_id()
        self.input_fingerprint = opts.pop("input_fingerprint", None)
        self.handle_signals = opts.pop("handle_signals", True)
        if opts:
            raise ConfigError(f"runner='ray': unknown option(s) {', '.join(sorted(opts))}")
        self.actors: list[Any] = []
        self.node_servers: list[Any] = []
        self.slots: Any = None
        self.workers: dict[str, dict[str, Any]] = {}
        self._reached: dict[str, int] = {}
        self._spawned = 0

    # -- the run ---------------------------------------------------------------------------
    def execute(self) -> RunResult:
        from chainette.utils.optional import require

        ray = require("ray", extra="ray", feature="runner='ray'")
        self.chain.validate(engines=self.overrides)
        engines, managed, public = self._engines()
        started_ray = not ray.is_initialized()
        if started_ray:
            ray.init(address=self.address, include_dashboard=False, **self.ray_init)
        try:
            return self._execute(ray, engines, managed, public)
        finally:
            self._shutdown(ray)
            if started_ray:
                ray.shutdown()

    def _execute(self, ray: Any, engines: dict[str, Any], managed: list[str], public: list[dict]) -> RunResult:
        layout = read_layout(self.out) if self.resume else None
        if layout is not None:
            self.block_rows = int(layout.get("block_rows", self.block_rows))  # cut where the run started
        head, blocks = peek_rows(iter_blocks(self.inputs, self.block_rows), FINGERPRINT_ROWS)
        step_ids = [
            n.id
            for n in iter_nodes(self.chain.items)
            if hasattr(n, "output_model") and n.kind in ("step", "apply", "batch")
        ]
        run = RunInfo(
            run_id=self.run_id,
            chain_name=self.chain.name,
            graph=self.chain.graph.to_dict(),
            engines=public,
            fingerprint={
                "chain": graph_fingerprint(self.chain.graph.to_dict()),
                "inputs": self.input_fingerprint or inputs_fingerprint(head),
            },
            started_at=time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
            step_ids=step_ids,
        )
        writer = BlockRunWriter(self.out, fmt=self.fmt, max_lines_per_file=self.max_lines)
        done = writer.open(run, resume=self.resume, force=self.force, retry_errors=self.retry_errors)
        write_layout(self.out, {"block_rows": self.block_rows, "runner": "ray"})
        stats = {sid: StepStats() for sid in step_ids}
        result = RunResult(run_id=run.run_id, chain_name=self.chain.name, output_dir=self.out, step_stats=stats)
        self.bus.publish(RunStarted(run.run_id, self.chain.name, str(self.out), self.total, step_ids))
        started = time.monotonic()
        try:
            self._start_actors(ray, engines, managed)
            self._dispatch(ray, blocks, done, writer, result)
        except KeyboardInterrupt:
            result.interrupted = True
            self._stop_workers(ray)
            if not self.handle_signals:
                raise
        except BaseException:
            result.interrupted = True
            self._stop_workers(ray)
            raise
        finally:
            result.seconds = time.monotonic() - started
            self._close_workers(ray)  # their leased slots go back before the table reports
            writer.extra_metadata = {"runner": self._runner_report(ray)}
            writer.close(result)
            from chainette.io.report import write_report_or_warn

            write_report_or_warn(self.out)  # its charts over time stay empty: blocks' measurements are not merged
        self.bus.publish(
            RunFinished(
                run.run_id,
                result.seconds,
                result.rows_in,
                {k: v.to_dict() for k, v in stats.items()},
                str(self.out),
                result.interrupted,
                result.cost,
                result.stopped_by,
            )
        )
        return result

    def _dispatch(
        self, ray: Any, blocks: Iterable[Block], done: Any, writer: BlockRunWriter, result: RunResult
    ) -> None:
        """Send blocks to the workers, at most ``blocks_per_worker`` each, merging each finished one."""
        pending: dict[Any, tuple[Block, int, int, dict, Any]] = {}  # ref -> (block, slot, attempt, spec, actor)
        load = [0] * len(self.actors)
        for block in blocks:
            n = len(block.rows)
            result.rows_in = max(result.rows_in, block.offset + n)
            local_done = [i for i in range(n) if block.offset + i in done]
            sub = block_dir(self.out, block.index)
            if len(local_done) == n:  # merged in an earlier session
                if sub.exists():
                    writer.drop_block(sub)
                continue
            if result.stopped_by is not None:
                break
            while sum(load) >= len(self.actors) * self.per_worker:
                self._collect(ray, pending, load, writer, result)
            if result.stopped_by is not None:
                break
            spec = {
                "block": block.index,
                "offset": block.offset,
                "dir": str(sub),
                "done": local_done,
                "skipped": block.skipped,
                "retry_errors": self.retry_errors,  # a block started before has failed rows of its own
            }
            self._submit(ray, pending, load, block, spec, attempt=1)
        while pending:
            self._collect(ray, pending, load, writer, result)

    def _submit(self, ray: Any, pending: dict, load: list[int], block: Block, spec: dict, attempt: int) -> None:
        slot = min(range(len(load)), key=lambda i: load[i])
        actor = self.actors[slot]
        ref = actor.run_block.remote(spec, block.rows)
        pending[ref] = (block, slot, attempt, spec, actor)
        load[slot] += 1

    def _collect(self, ray: Any, pending: dict, load: list[int], writer: BlockRunWriter, result: RunResult) -> None:
        """Wait for one block; merge it, or start it again on a new worker if its worker died."""
        ready, _ = ray.wait(list(pending), num_returns=1, timeout=None)
        ref = ready[0]
        block, slot, attempt, spec, actor = pending.pop(ref)
        load[slot] -= 1
        try:
            out = ray.get(ref)
        except (ray.exceptions.RayActorError, ray.exceptions.WorkerCrashedError, ray.exceptions.ObjectLostError) as exc:
            init_failed = getattr(exc, "actor_init_failed", False)
            if init_failed is True or (callable(init_failed) and init_failed()):
                raise ConfigError(  # not a lost worker: no worker can start (another would fail the same way)
                    f"runner='ray': a worker could not start: {_last_error_line(exc)} (the chain, its models and "
                    "functions and the engine objects must import and unpickle on every node)"
                ) from None
            if attempt >= BLOCK_ATTEMPTS:
                raise ConfigError(
                    f"block {block.index} (rows {block.offset}-{block.offset + len(block.rows) - 1}) "
                    f"lost its worker {attempt} times; the run directory is resumable"
                ) from None
            if self.actors[slot] is actor:  # not replaced yet (it may have run several of the blocks)
                self._replace_worker(ray, slot)
            self._submit(
                ray, pending, load, block, {**spec, "retry_errors": False}, attempt + 1
            )  # resumes from the block's journal
            return
        except ray.exceptions.TaskCancelledError:
            result.interrupted = True
            return
        except ray.exceptions.RayTaskError as exc:
            cause = getattr(exc, "cause", None)
            if isinstance(cause, asyncio.CancelledError):  # stopped by us (another block's engine fault)
                result.interrupted = True
                return
            if isinstance(cause, ChainetteError):
                raise cause from None
            raise
        self.workers[out["worker"]["worker"]] = out["worker"]
        for sid, st in out["step_stats"].items():
            _add_stats(result.step_stats.setdefault(sid, StepStats()), st)
        result.failed_rows += out["failed_rows"]
        result.cost = merge_cost(result.cost, out.get("cost") or {})
        if out["interrupted"]:
            result.interrupted = True
            if out["stopped_by"] and result.stopped_by is None:
                result.stopped_by, result.stop_reason = out["stopped_by"], out["stop_reason"]
                self._stop_workers(ray)
            return
        writer.merge_block(Path(spec["dir"]), block.offset)
        self._publish_progress(out)

    # -- workers -----------------------------------------------------------------------------
    def _start_actors(self, ray: Any, engines: dict[str, Any], managed: list[str]) -> None:
        from ray import cloudpickle

        self.slots = (
            ray.remote(SlotTableActor)
            .options(name=SLOTS_ACTOR.format(run=self.run_id), namespace=NAMESPACE, num_cpus=0)
            .remote()
        )
        if managed:
            from ray.util.scheduling_strategies import NodeAffinitySchedulingStrategy

            for node in ray.nodes():
                if not node.get("Alive") or not node.get("Resources", {}).get("CPU"):
                    continue
                self.node_servers.append(
                    ray.remote(NodeServers)
                    .options(
                        name=SERVERS_ACTOR.format(run=self.run_id, node=node["NodeID"]),
                        namespace=NAMESPACE,
                        num_cpus=0,
                        max_concurrency=16,
                        scheduling_strategy=NodeAffinitySchedulingStrategy(node["NodeID"], soft=False),
                    )
                    .remote(str(self.out))
                )
        count = int(self.num_workers or max(1, int(ray.cluster_resources().get("CPU", 1))))
        if self.worker_options["window"] is None:
            self.worker_options["window"] = self._window(engines, count)
        for name, engine in engines.items():  # an engine object must survive the trip to the workers
            _check_shippable(
                engine,
                f"engine '{name}'",
                cloudpickle,
                "pass its config instead (register_engine(..., backend=...) or an engines file)",
            )
        payload = _ship(
            {"chain": self.chain, "engines": engines, "managed": managed, "options": self.worker_options}, cloudpickle
        )
        _check_shippable(
            payload,
            f"chain '{self.chain.name}'",
            cloudpickle,
            "keep the chain's models and functions importable or free of open resources",
            raw=True,
        )
        self._payload = payload
        self.actors = [self._new_worker(ray) for _ in range(count)]

    def _window(self, engines: dict[str, Any], workers: int) -> int:
        """Rows in flight per block: the local rule (1.5 x the biggest engine's in-flight capacity)
        shared out over every block running at once, so that thousands of slots over many
        endpoints do not become thousands of waiting rows in every worker."""
        capacity = 64
        for cfg in engines.values():
            limit = int(getattr(cfg, "max_in_flight", 64))
            capacity = max(
                capacity,
                limit * max(1, len(getattr(cfg, "endpoints", None) or []), int(getattr(cfg, "replicas", 1) or 1)),
            )
        share = -(-(capacity * 3 // 2) // (workers * self.per_worker))
        return max(share, 32)

    def _new_worker(self, ray: Any) -> Any:
        # named, so that an operator (or a test) can find a run's workers: chainette-worker-<run>-<n>
        self._spawned += 1
        return (
            ray.remote(BlockWorker)
            .options(
                name=WORKER_ACTOR.format(run=self.run_id, n=self._spawned),
                namespace=NAMESPACE,
                num_cpus=1,
                max_concurrency=self.per_worker + 4,
            )
            .remote(self.run_id, self._payload)
        )

    def _replace_worker(self, ray: Any, slot: int) -> None:
        try:
            ray.kill(self.actors[slot])
        except Exception:
            pass
        self.actors[slot] = self._new_worker(ray)

    def _stop_workers(self, ray: Any) -> None:
        for actor in self.actors:
            try:
                actor.stop.remote()
            except Exception:
                pass

    def _close_workers(self, ray: Any) -> None:
        closes = []
        for actor in self.actors:
            try:
                closes.append(actor.close.remote())
            except Exception:
                pass
        if closes:
            ray.wait(closes, num_returns=len(closes), timeout=30)

    def _shutdown(self, ray: Any) -> None:
        if not ray.is_initialized():
            return
        closes = []
        for servers in self.node_servers:
            try:
                closes.append(servers.stop.remote())
            except Exception:
                pass
        if closes:
            ray.wait(closes, num_returns=len(closes), timeout=60)
        for actor in [*self.actors, *self.node_servers, self.slots]:
            if actor is not None:
                try:
                    ray.kill(actor)
                except Exception:
                    pass
        self.actors, self.node_servers, self.slots = [], [], None

    def _runner_report(self, ray: Any) -> dict[str, Any]:
        report: dict[str, Any] = {
            "name": "ray",
            "block_rows": self.block_rows,
            "blocks_per_worker": self.per_worker,
            "workers": self.workers,
        }
        if self.slots is not None:
            try:
                report["in_flight_slots"] = ray.get(self.slots.report.remote(), timeout=10)
            except Exception:
                pass
        try:
            report["cluster"] = {
                "nodes": sum(1 for n in ray.nodes() if n.get("Alive")),
                "cpus": ray.cluster_resources().get("CPU"),
            }
        except Exception:
            pass
        return report

    # -- engines -----------------------------------------------------------------------------
    def _engines(self) -> tuple[dict[str, Any], list[str], list[dict[str, Any]]]:
        """What the workers get: every engine the chain uses, as a config (its API key resolved
        here, where the environment holds it) or the engine object passed in."""
        from pydantic import SecretStr

        from chainette.engine.registry import EngineConfig, get_engine_config

        engines: dict[str, Any] = {}
        managed: list[str] = []
        public: list[dict[str, Any]] = []
        for name in self.chain.engine_names():
            cfg = self.overrides.get(name)
            if cfg is None:
                cfg = get_engine_config(name)
            if isinstance(cfg, EngineConfig):
                public.append(cfg.public_dict())
                key = cfg.resolved_api_key()
                if cfg.api_key is None and key:
                    cfg = cfg.model_copy(update={"api_key": SecretStr(key)})
                if cfg.is_managed:
                    managed.append(name)
            engines[name] = cfg
        return engines, managed, public

    def _publish_progress(self, out: dict[str, Any]) -> None:
        """Progress events for a merged block, as a local run publishes them per commit."""
        if not self.bus:
            return
        for sid, st in out["step_stats"].items():
            self._reached[sid] = self._reached.get(sid, 0) + st["reached"]
            self.bus.publish(StepTotalItems(sid, self._reached[sid]))
            self.bus.publish(
                BatchFinished(
                    sid, st["done"] + st["errors"], st["errors"], st["prompt_tokens"], st["completion_tokens"], None
                )
            )


def merge_cost(a: Any, b: Any) -> Any:
    """Two blocks' ``RunResult.cost`` as one: numbers add up (an unknown cost stays unknown),
    flags must hold in both, lists are joined, anything else keeps the first value."""
    if isinstance(a, dict) and isinstance(b, dict):
        return {k: merge_cost(a[k], b[k]) if k in a and k in b else a.get(k, b.get(k)) for k in {**a, **b}}
    if isinstance(a, bool) or isinstance(b, bool):
        return bool(a) and bool(b)
    if a is None or b is None:
        return None
    if isinstance(a, (int, float)) and isinstance(b, (int, float)):
        return a + b
    if isinstance(a, list) and isinstance(b, list):
        return a + [x for x in b if x not in a]
    return a


def _add_stats(into: StepStats, d: dict[str, Any]) -> None:
    for name, value in d.items():
        if hasattr(into, name) and isinstance(value, (int, float)):
            setattr(into, name, getattr(into, name) + value)


def _last_error_line(exc: BaseException) -> str:
    """The last line of a remote traceback (the error itself), without terminal colours."""
    import re

    lines = [ln.strip() for ln in re.sub(r"\x1b\[[0-9;]*m", "", str(exc)).splitlines() if ln.strip()]
    return lines[-1] if lines else type(exc).__name__


def _check_shippable(obj: Any, what: str, cloudpickle: Any, hint: str, *, raw: bool = False) -> None:
    """Refuse, before any worker starts, what a worker could not unpickle (a worker that fails to
    start would otherwise look like a worker that died)."""
    try:
        cloudpickle.loads(obj if raw else _ship(obj, cloudpickle))
    except Exception as exc:  # noqa: BLE001 - any failure means the workers cannot have it
        raise ConfigError(
            f"runner='ray': {what} cannot be sent to the Ray workers ({type(exc).__name__}: {exc}); {hint}"
        ) from None


def _ship(obj: Any, cloudpickle: Any) -> bytes:
    """Pickle for the workers. Code from the user's own modules (a chain file, a test module: not
    installed, so a worker may not import it) travels by value; installed packages by reference."""
    skip = {sysconfig.get_paths()[k] for k in ("stdlib", "platstdlib", "purelib", "platlib")}
    registered = []
    for name, module in list(sys.modules.items()):
        path = getattr(module, "__file__", None)
        if not path or name == "__main__" or name.split(".")[0] in ("chainette", "ray", "pytest", "_pytest"):
            continue
        real = os.path.realpath(path)
        if any(real.startswith(os.path.realpath(s) + os.sep) for s in skip) or "site-packages" in real:
            continue
        try:
            cloudpickle.register_pickle_by_value(module)
            registered.append(module)
        except (ValueError, TypeError):
            continue
    try:
        return cloudpickle.dumps(obj)
    finally:
        for module in registered:
            try:
                cloudpickle.unregister_pickle_by_value(module)
            except (ValueError, TypeError):
                pass


__all__ = ["BLOCKS_DIR", "DEFAULT_BLOCK_ROWS", "RayRunner"]
