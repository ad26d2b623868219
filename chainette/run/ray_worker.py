"""What runs on the Ray cluster for the Ray runner (``run/ray_runner.py`` drives it).

* :class:`BlockWorker` (one Ray actor per worker, one CPU): runs blocks of input rows through
  the chain with the same :class:`~chainette.run.async_executor.AsyncExecutor` as a local run,
  each block into a sub-run directory of its own (``io/block_merge.py``), row ids counted from
  the block's offset. Its engines are created per block as in a local run; each HTTP client's
  in-flight limiter is swapped for a :class:`~chainette.engine.slot_lease.LeasedLimiter`
  shared by every block of the process, so an engine's ``max_in_flight`` holds across all
  workers together.
* :class:`SlotTableActor` (one per run, named): the :class:`~chainette.engine.slot_lease.SlotTable`
  the limiters lease their slots from.
* :class:`NodeServers` (one per node, named, only when an engine has a managed server): starts
  each managed server once on its node (``EngineBroker``); the workers of the node send to it.

The classes are plain Python; the driver turns them into actors with ``ray.remote``, so this
module imports without Ray installed.
"""

from __future__ import annotations

import asyncio
import os
import resource
import time
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import anyio

from chainette.core.row import SKIPPED, Row
from chainette.engine.factory import engine_decorator
from chainette.engine.slot_lease import LeasedLimiter, SlotTable
from chainette.events import EventBus
from chainette.io.block_merge import retry_block_errors, seed_block
from chainette.run.async_executor import AsyncExecutor
from chainette.run.row_runner import RunState

SLOTS_ACTOR = "chainette-slots-{run}"
SERVERS_ACTOR = "chainette-servers-{run}-{node}"
WORKER_ACTOR = "chainette-worker-{run}-{n}"
_LOOPBACK = ("127.0.0.1", "localhost", "::1", "0.0.0.0")
NAMESPACE = "chainette"


class BlockExecutor(AsyncExecutor):
    """The local executor over one block: input row ``i`` of the block is row ``offset + i`` of the run."""

    def __init__(self, chain: Any, *, offset: int, **options: Any) -> None:
        super().__init__(chain, **options)
        self.offset = offset

    def _input_row(self, index: int, raw: Any, state: RunState) -> Row:
        row = super()._input_row(index, raw, state)
        row_id = str(self.offset + index)
        row.row_id = row_id
        for err in row.records.errors:  # an input that does not fit the chain's input model
            err["row_id"] = row_id
        return row


# -- shared in-flight limits -------------------------------------------------------------
class SlotTableActor:
    """A :class:`SlotTable` behind one Ray actor (its methods run one at a time)."""

    def __init__(self) -> None:
        self.table = SlotTable()

    def exchange(self, key: str, holder: str, give: int, want: int, demand: int, capacity: int) -> tuple[int, int]:
        self.table.configure(key, capacity)
        return self.table.exchange(key, holder, give=give, want=want, demand=demand)

    def exchange_many(self, calls: list[tuple[Any, ...]]) -> list[tuple[int, int]]:
        """Several exchanges in one message (see :class:`RaySlotSource`)."""
        return [self.exchange(*call) for call in calls]

    def report(self) -> dict[str, dict[str, int]]:
        return self.table.report()


class RaySlotSource:
    """The slot table actor as a :class:`~chainette.engine.slot_lease.SlotSource`. Exchanges asked
    within ``gather`` seconds of each other (the limiters of a process beat together) travel in
    one actor call, so 64 endpoints cost one message per beat, not 64."""

    def __init__(self, actor: Any, *, gather: float = 0.002) -> None:
        self.actor = actor
        self.gather = gather
        self.capacity: dict[str, int] = {}
        self.calls = 0
        self._queue: list[tuple[tuple[Any, ...], asyncio.Future[tuple[int, int]]]] = []
        self._flush: asyncio.Task[None] | None = None

    async def exchange(self, key: str, holder: str, give: int, want: int, demand: int) -> tuple[int, int]:
        loop = asyncio.get_running_loop()
        fut: asyncio.Future[tuple[int, int]] = loop.create_future()
        self._queue.append(((key, holder, give, want, demand, self.capacity[key]), fut))
        if self._flush is None or self._flush.done():
            self._flush = loop.create_task(self._send())
        return await fut

    async def _send(self) -> None:
        await asyncio.sleep(self.gather)
        batch, self._queue = self._queue, []
        self.calls += 1
        try:
            results = await self.actor.exchange_many.remote([args for args, _ in batch])
        except Exception as exc:  # the actor is away: every waiting limiter retries on its own
            for _, fut in batch:
                if not fut.done():
                    fut.set_exception(exc)
            return
        for (_, fut), (granted, target) in zip(batch, results, strict=True):
            if not fut.done():
                fut.set_result((granted, target))


# -- managed servers, once per node --------------------------------------------------------
class NodeServers:
    """Starts the managed servers of a run on one node, once each, and stops them at the end."""

    def __init__(self, log_dir: str | None) -> None:
        self.log_dir = log_dir
        self.started: list[str] = []

    def start(self, cfg: Any) -> list[str]:
        """The base URLs of ``cfg``'s server (or of each of its ``replicas``) on this node."""
        from chainette.engine.broker import EngineBroker

        urls = EngineBroker.start_all(cfg, log_dir=self.log_dir)  # thread-safe: started once, then reused
        self.started.append(cfg.name)
        return urls

    def starts(self) -> int:
        return len({s.pid for s in _servers()})

    def stop(self) -> None:
        from chainette.engine.broker import EngineBroker

        for name in self.started:
            EngineBroker.release(name)
        self.started.clear()
        EngineBroker.flush(force=True)


def _servers() -> list[Any]:
    from chainette.engine.broker import EngineBroker

    return EngineBroker.servers()


# -- the worker ---------------------------------------------------------------------------
class BlockWorker:
    """Runs blocks of rows through the chain (see the module docstring)."""

    def __init__(self, run_id: str, payload: bytes) -> None:
        import ray
        from ray import cloudpickle

        shipped = cloudpickle.loads(payload)
        self.run_id = run_id
        self.chain = shipped["chain"]
        self.engines: dict[str, Any] = shipped["engines"]
        self.managed: list[str] = shipped["managed"]
        self.options: dict[str, Any] = shipped["options"]
        ctx = ray.get_runtime_context()
        self.node = ctx.get_node_id()
        self.holder = f"{self.node[:8]}-{os.getpid()}"
        self.source = RaySlotSource(ray.get_actor(SLOTS_ACTOR.format(run=run_id), namespace=NAMESPACE))
        self.limiters: dict[str, LeasedLimiter] = {}
        self.endpoints: dict[str, list[str]] = {}
        self.tasks: dict[int, asyncio.Task[Any]] = {}
        self.figures: dict[str, Any] = {
            "worker": self.holder,
            "node": self.node,
            "pid": os.getpid(),
            "blocks": 0,
            "rows": 0,
            "busy_s": 0.0,
        }
        self._cpu0 = time.process_time()

    async def run_block(self, spec: dict[str, Any], rows: list[Any]) -> dict[str, Any]:
        """Run one block into its sub-run directory (resuming it if it was started before)."""
        k = spec["block"]
        self.tasks[k] = asyncio.current_task()  # type: ignore[assignment]
        t0 = time.monotonic()
        try:
            for i in spec.get("skipped", ()):
                rows[i] = SKIPPED
            sub = Path(spec["dir"])
            if spec.get("retry_errors"):
                await anyio.to_thread.run_sync(retry_block_errors, sub, spec["offset"])
            seed_block(sub, spec.get("done", []))
            executor = BlockExecutor(
                self.chain,
                offset=spec["offset"],
                batch_size=self.options["batch_size"],
                engines=await self._engines(),
                events=EventBus(),
                cache=self.options["cache"],
            )
            token = engine_decorator.set(self._lease_limits)
            try:
                result = await executor.run(
                    rows,
                    sub,
                    resume=True,
                    fmt="jsonl",
                    max_lines_per_file=1 << 40,
                    run_id=self.run_id,
                    total=len(rows),
                    window=self.options.get("window"),
                    error_guard=self.options["error_guard"],
                    report=False,  # the run's report is built once, by the driver, from the merged run
                )
            finally:
                engine_decorator.reset(token)
        finally:
            self.tasks.pop(k, None)
            self.figures["busy_s"] += time.monotonic() - t0
        self.figures["blocks"] += 1
        self.figures["rows"] += result.rows_in
        return {
            "block": k,
            "interrupted": result.interrupted,
            "stopped_by": result.stopped_by,
            "stop_reason": result.stop_reason,
            "rows_in": result.rows_in,
            "failed_rows": result.failed_rows,
            "seconds": result.seconds,
            "step_stats": {sid: st.to_dict() for sid, st in result.step_stats.items()},
            "cost": result.cost,
            "worker": self.report(),
        }

    def report(self) -> dict[str, Any]:
        """This worker's figures: blocks, rows, busy and CPU seconds, peak memory, lease exchanges."""
        return {
            **self.figures,
            "cpu_s": round(time.process_time() - self._cpu0, 3),
            "busy_s": round(self.figures["busy_s"], 3),
            "peak_rss_mb": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1),
            "lease_exchanges": sum(lim.exchanges for lim in self.limiters.values()),
            "lease_messages": self.source.calls,
        }

    async def stop(self) -> int:
        """Cancel the blocks running here (their committed rows stay; a resume finishes them)."""
        tasks = list(self.tasks.values())
        for task in tasks:
            task.cancel()
        return len(tasks)

    async def close(self) -> None:
        for lim in self.limiters.values():
            await lim.aclose()

    async def _engines(self) -> dict[str, Any]:
        """The engines for this node: managed ones point at the node's server (started once per node)."""
        import ray

        engines = dict(self.engines)
        for name in self.managed:
            if name not in self.endpoints:
                servers = ray.get_actor(SERVERS_ACTOR.format(run=self.run_id, node=self.node), namespace=NAMESPACE)
                self.endpoints[name] = await servers.start.remote(engines[name])
            urls = self.endpoints[name]
            engines[name] = engines[name].model_copy(
                update={"endpoint": urls[0], "endpoints": urls if len(urls) > 1 else [], "replicas": 1}
            )
        return engines

    def _lease_limits(self, cfg: Any, engine: Any) -> Any:
        """Swap each HTTP client's limiter for the process's leased one (one per engine and endpoint)."""
        for client in getattr(engine, "clients", None) or [engine]:
            endpoint = getattr(client, "endpoint", None)
            if endpoint is None or getattr(client, "limiter", None) is None:
                continue  # an in-process engine: nothing to bound
            key = f"{cfg.name}@{endpoint}"
            if urlsplit(endpoint).hostname in _LOOPBACK:  # this node's own server (managed): one per node
                key += f"@node-{self.node[:12]}"
            lim = self.limiters.get(key)
            if lim is None:
                self.source.capacity[key] = cfg.max_in_flight
                lim = self.limiters[key] = LeasedLimiter(key, cfg.max_in_flight, self.source, self.holder)
            client.limiter = lim
        return engine
