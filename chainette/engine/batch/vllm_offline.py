"""``vllm run-batch``: the Batch API file format run offline by a managed vLLM engine.

A managed vLLM engine (``backend: vllm_api`` with no ``endpoint``) in batch mode starts no
server: each request file runs through ``vllm run-batch -i <requests> -o <output> --model
<model>`` (plus the engine's ``dtype``, ``gpu_memory_utilization``, ``max_model_len``,
``tensor_parallel_size`` and ``extra_serve_flags``, in the environment of ``vllm serve``:
``extra_env``, ``CUDA_VISIBLE_DEVICES`` from ``gpu_ids``). vLLM writes every result, failed
ones included, to the one output file, in the format of an OpenAI output file.

This class plays the provider for :class:`~chainette.engine.batch.engine.BatchEngine`:
"uploading" keeps the local path, "creating" a batch queues a process (one ``run-batch``
at a time in this driver: they would share the GPUs), and its status is read from the
process: ``validating`` (queued), ``in_progress`` (running), ``completed`` (exit 0) or
``failed`` (the log's tail in ``errors``). The process runs in its own session: a driver
killed mid-batch leaves it running, and ``--resume`` waits for it (its pid is journaled);
one that died with an incomplete output file is run again.
"""

from __future__ import annotations

import asyncio
import os
import shutil
import signal
from pathlib import Path
from typing import TYPE_CHECKING, Any

from chainette.engine.batch.record import BatchRecord, BatchStore
from chainette.errors import ServerStartError

if TYPE_CHECKING:
    from chainette.engine.registry import EngineConfig

LOG_TAIL = 2000
_LOCKS: dict[int, asyncio.Lock] = {}

__all__ = ["VLLMRunBatch", "run_batch_argv"]


def _gpu_lock() -> asyncio.Lock:
    """One ``vllm run-batch`` at a time per event loop (they would compete for the GPUs)."""
    loop = asyncio.get_running_loop()
    lock = _LOCKS.get(id(loop))
    if lock is None:
        _LOCKS.clear()  # a new run's loop: earlier loops are gone
        lock = _LOCKS[id(loop)] = asyncio.Lock()
    return lock


def run_batch_argv(cfg: EngineConfig, requests: Path, output: Path) -> list[str]:
    """``vllm run-batch -i REQUESTS -o OUTPUT --model MODEL [engine flags]`` (an argv list)."""
    exe = shutil.which("vllm")
    if exe is None:
        raise ServerStartError(
            f"engine '{cfg.name}' (mode: batch): the `vllm` executable is not on PATH, and offline batches run "
            "through `vllm run-batch`. Install vLLM (`pip install vllm`, on a machine with a GPU), or give the "
            "engine an `endpoint:` and mode: online.",
            engine=cfg.name,
        )
    argv = [exe, "run-batch", "-i", str(requests), "-o", str(output), "--model", cfg.model]
    if cfg.dtype:
        argv += ["--dtype", cfg.dtype]
    if cfg.gpu_memory_utilization is not None:
        argv += ["--gpu-memory-utilization", str(cfg.gpu_memory_utilization)]
    if cfg.max_model_len is not None:
        argv += ["--max-model-len", str(cfg.max_model_len)]
    tp = cfg.tensor_parallel_size or (len(cfg.gpu_ids) if cfg.gpu_ids and len(cfg.gpu_ids) > 1 else None)
    if tp:
        argv += ["--tensor-parallel-size", str(tp)]
    return argv + list(cfg.extra_serve_flags)


def _count_lines(path: Path) -> int:
    try:
        with open(path, "rb") as f:
            return sum(chunk.count(b"\n") for chunk in iter(lambda: f.read(1 << 20), b""))
    except OSError:
        return 0


def _tail(path: Path) -> str:
    try:
        with open(path, "rb") as f:
            f.seek(0, os.SEEK_END)
            f.seek(max(0, f.tell() - LOG_TAIL))
            return f.read().decode("utf-8", "replace").strip()
    except OSError:
        return ""


def _alive(pid: int | None, marker: str) -> bool:
    """Whether ``pid`` runs and is our ``vllm run-batch`` (its command line holds ``marker``)."""
    if not pid:
        return False
    try:
        os.kill(pid, 0)
    except (ProcessLookupError, PermissionError):
        return False
    try:
        with open(f"/proc/{pid}/cmdline", "rb") as f:
            return marker.encode() in f.read()
    except OSError:
        return True  # no /proc: trust the pid


class _Job:
    def __init__(self) -> None:
        self.state = "validating"
        self.rc: int | None = None
        self.process: asyncio.subprocess.Process | None = None
        self.task: asyncio.Task[None] | None = None


class VLLMRunBatch:
    """The "provider" of an offline vLLM engine in batch mode (see the module docstring)."""

    kind = "vllm-offline"

    def __init__(self, cfg: EngineConfig, store: BatchStore) -> None:
        self.cfg = cfg
        self.store = store
        self._jobs: dict[str, _Job] = {}
        from chainette.engine.servers.vllm import VLLMServer

        self._env = VLLMServer().env(cfg)

    def _output(self, record: BatchRecord) -> Path:
        return self.store.result_path(record.key, "output")

    # -- the protocol ------------------------------------------------------------------
    async def upload(self, path: Path, record: BatchRecord) -> str:
        return str(path)

    async def create(self, file_id: str, record: BatchRecord) -> dict[str, Any]:
        run_batch_argv(self.cfg, Path(file_id), self._output(record))  # fails now if vllm is missing
        self._start(record, Path(file_id))
        return self._status(record)

    def _start(self, record: BatchRecord, requests: Path) -> None:
        job = self._jobs[record.key] = _Job()
        job.task = asyncio.get_running_loop().create_task(self._run(record, requests, job))

    async def _run(self, record: BatchRecord, requests: Path, job: _Job) -> None:
        out = self._output(record)
        out.unlink(missing_ok=True)
        argv = run_batch_argv(self.cfg, requests, out)
        async with _gpu_lock():
            with open(self.store.log_path(record.key), "ab") as log:
                job.process = await asyncio.create_subprocess_exec(
                    *argv,
                    stdin=asyncio.subprocess.DEVNULL,
                    stdout=log,
                    stderr=asyncio.subprocess.STDOUT,
                    env=self._env,
                    start_new_session=True,
                )
            job.state = "in_progress"
            record.pid = job.process.pid
            self.store.save(record)
            try:
                job.rc = await job.process.wait()
            except asyncio.CancelledError:
                raise  # the driver stops: the process goes on (resume waits for it)
        job.state = "done"

    def _status(self, record: BatchRecord) -> dict[str, Any]:
        out = self._output(record)
        job = self._jobs.get(record.key)
        batch: dict[str, Any] = {
            "id": record.batch_id or f"vllm-{record.key}",
            "object": "batch",
            "input_file_id": record.input_file_id,
            "output_file_id": None,
            "error_file_id": None,
            "errors": None,
        }
        done_lines = _count_lines(out)
        if job is None:  # a batch of an earlier driver
            marker = str(self.store.request_path(record.key))
            if _alive(record.pid, marker):
                status = "in_progress"
            elif done_lines >= record.requests > 0:
                status = "completed"
            else:  # its process is gone and its output incomplete: run it again
                self._start(record, self.store.request_path(record.key))
                status, done_lines = "validating", 0
        elif job.state != "done":
            status = job.state
        elif job.rc == 0:
            status = "completed"
        else:
            status = "failed"
            tail = _tail(self.store.log_path(record.key))
            batch["errors"] = {
                "object": "list",
                "data": [{"code": "vllm_run_batch_failed", "message": f"vllm run-batch exited with {job.rc}: {tail}"}],
            }
        if status == "completed":
            batch["output_file_id"] = str(out)
        batch["status"] = status
        batch["request_counts"] = {"total": record.requests, "completed": min(done_lines, record.requests), "failed": 0}
        return batch

    async def retrieve(self, record: BatchRecord) -> dict[str, Any]:
        return self._status(record)

    async def cancel(self, record: BatchRecord) -> dict[str, Any]:
        job = self._jobs.get(record.key)
        pid = job.process.pid if job is not None and job.process is not None else record.pid
        if pid and _alive(pid, str(self.store.request_path(record.key))):
            try:
                os.killpg(pid, signal.SIGTERM)
            except (ProcessLookupError, PermissionError):
                pass
        if job is not None and job.task is not None and job.process is None:
            job.task.cancel()  # still queued
        return {
            "id": record.batch_id,
            "status": "cancelled",
            "request_counts": {"total": record.requests, "completed": 0, "failed": 0},
        }

    async def find(self, record: BatchRecord) -> dict[str, Any] | None:
        return None  # a local process is journaled (pid) before it can produce anything

    async def download(self, file_id: str, dest: Path) -> None:
        src = Path(file_id)
        if src.resolve() != dest.resolve():
            shutil.copyfile(src, dest)

    async def aclose(self) -> None:
        # a run-batch still running keeps running (like a provider's batch): --resume waits for it,
        # `chainette batches RUN_DIR --cancel` stops it
        tasks = [job.task for job in self._jobs.values() if job.task is not None and not job.task.done()]
        for task in tasks:
            task.cancel()  # stops waiting; the process itself is left running
        if tasks:
            await asyncio.gather(*tasks, return_exceptions=True)
        self._jobs.clear()
