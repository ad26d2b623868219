"""``BatchEngine``: an engine whose requests go through a Batch API (or ``vllm run-batch``).

``complete(request)`` builds the same body the online client would send (its ``encode``),
wraps it in a request line with a ``custom_id`` (run, step, row, body hash), puts it into
the collector and awaits the reply; the reply is read by the online client's own ``parse``
(so refusals, empty and truncated replies are the same errors) and returned. The row
runner validates it, re-asks (in a follow-up batch, or online with ``reask: online``) and
writes error records exactly as online.

The collector::

    complete() ─► buffer ─► file (max_requests / max_bytes / linger_s) ─► journal: prepared
                                    ─► upload ─► journal: uploaded ─► create ─► journal: batch id
                                    ─► poll (poll_initial_s, x poll_factor, up to poll_max_s)
                                    ─► download output + error files ─► match by custom_id
                                    ─► each waiting complete() gets its outcome

A request left unfinished (its batch expired, was cancelled or failed, or its line is a
429/5xx) goes into a new batch ``requeue`` times (default once), then becomes an error
record. A batch cancelled with ``chainette batches RUN_DIR --cancel`` stops the run instead
(resumable). An authentication or quota refusal, or a Batch API that stays unreachable,
stops the run too (resumable: the rows waiting are not committed).

Resume: the engine reads the journal first. A request whose ``custom_id`` is in a journaled
batch waits for that batch (polled again, never created twice; a batch created just before
a crash is found by its metadata) or takes its result from the downloaded result files.
"""

from __future__ import annotations

import asyncio
import os
import time
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

from chainette.engine.backends.base import loads, truncated
from chainette.engine.batch.record import BatchRecord, BatchStore
from chainette.engine.batch.settings import BatchSettings
from chainette.engine.batch.wire import (
    CHAT_URL,
    TERMINAL_STATES,
    Outcome,
    custom_id,
    describe_batch_errors,
    line_custom_id,
    read_result,
    request_line,
)
from chainette.engine.health import systemic_reason
from chainette.engine.protocol import Completion, CompletionRequest
from chainette.errors import (
    EngineError,
    EngineHTTPError,
    EngineStoppedError,
    EngineTimeoutError,
    TruncatedCompletionError,
)
from chainette.events import BatchProgress

if TYPE_CHECKING:
    from chainette.engine.registry import EngineConfig

POLL_FAILURES = 10
"""failed polls in a row (after the transport's own retries) that stop the run, resumable"""

__all__ = ["BatchEngine"]


class BatchEngine:
    """See the module docstring. ``online`` is the engine's online client (bodies, replies,
    online re-asks); ``transport`` the provider (:class:`.openai_api.OpenAIBatchAPI` or
    :class:`.vllm_offline.VLLMRunBatch`); ``store`` the run's journal."""

    def __init__(
        self,
        cfg: EngineConfig,
        online: Any,
        transport: Any,
        store: BatchStore,
        *,
        settings: BatchSettings | None = None,
        publish: Callable[[Any], None] | None = None,
        url: str = CHAT_URL,
        reask_online: bool | None = None,
    ) -> None:
        self.cfg = cfg
        self.name = cfg.name
        self.max_in_flight = cfg.max_in_flight
        self.online = online
        self.model = getattr(online, "model", cfg.model)
        self.transport = transport
        self.store = store
        self.settings = settings or getattr(cfg, "batch", None) or BatchSettings()
        self.publish = publish or (lambda event: None)
        self.url = url
        self.reask_online = (self.settings.reask == "online") if reask_online is None else reask_online
        self.requests = 0  # request lines sent in batches by this session
        self._buffer: list[tuple[str, bytes]] = []
        self._buffer_bytes = 0
        self._linger: asyncio.TimerHandle | None = None
        self._waiters: dict[str, list[asyncio.Future[Outcome]]] = {}
        self._tasks: set[asyncio.Task[Any]] = set()
        self._records: dict[str, BatchRecord] = {}
        self._index: dict[str, tuple[str, int]] = {}  # earlier sessions: custom_id -> (batch key, batches it was in)
        self._parked: dict[str, tuple[str, int]] = {}  # earlier sessions: custom_id -> (result file, offset)
        self._slots: asyncio.Semaphore | None = None
        self._stopped: tuple[str, str] | None = None  # (message, kind) once the engine stopped the run
        self._prepared = False

    def __repr__(self) -> str:
        return f"BatchEngine(name={self.name!r}, model={self.model!r}, transport={self.transport.kind!r})"

    # -- the engine seam -----------------------------------------------------------------
    async def prepare(self) -> None:
        """Read the journal: index earlier sessions' requests and re-attach to their live batches."""
        if self._prepared:
            return
        self._prepared = True
        if self.settings.max_live_batches:
            self._slots = asyncio.Semaphore(self.settings.max_live_batches)
        records = self.store.records(self.name)
        cids_of: dict[str, list[str]] = {}
        for rec in records:
            self._records[rec.key] = rec
            cids = await asyncio.to_thread(_read_cids, self.store.request_path(rec.key))
            cids_of[rec.key] = cids
            for cid in cids:
                prev = self._index.get(cid)
                self._index[cid] = (rec.key, (prev[1] if prev else 0) + 1)
        for rec in records:
            if rec.collected:
                paths = [p for p in (self.store.result_path(rec.key, k) for k in ("output", "errors")) if p.exists()]
                for cid, path, offset in await asyncio.to_thread(_result_offsets, paths):
                    if self._index.get(cid, ("",))[0] == rec.key:
                        self._parked[cid] = (path, offset)
            else:
                self._spawn(self._drive(rec, cids_of[rec.key], resumed=True))

    async def complete(self, request: CompletionRequest) -> Completion:
        if not self._prepared:
            await self.prepare()
        self._check_stopped()
        if getattr(request, "attempt", 1) > 1 and self.reask_online:
            return await self.online.complete(request)
        body = self.online.encode(request)
        cid = custom_id(self.store.run_key, request.step_id, request.row_id, body)
        line = request_line(cid, body, self.url)
        started = time.monotonic()
        tries = 0
        while True:
            outcome, tries = await self._outcome(cid, line, tries)
            error: EngineError | None = outcome.error
            if outcome.kind == "ok":
                try:
                    completion = self._completion(request, outcome.body)
                except EngineError as exc:
                    error = exc
                else:
                    completion.latency_s = time.monotonic() - started
                    return completion
            elif outcome.kind == "unfinished":
                if tries <= self.settings.requeue:
                    continue
                error = EngineTimeoutError(
                    f"engine '{self.name}': the request was not run by its batch ({outcome.reason}), "
                    f"{tries} batch(es) tried",
                    engine=self.name,
                )
            assert error is not None
            if error.stop is not None:
                raise error
            if isinstance(error, TruncatedCompletionError):
                raise truncated(error, request, self.name) from None
            if error.retryable and tries <= self.settings.requeue:
                continue
            error.row_id = error.row_id or request.row_id or None
            error.node_id = error.node_id or request.step_id or None
            error.attempts = tries  # type: ignore[attr-defined]
            raise error

    async def aclose(self) -> None:
        """Stop waiting (batches at the provider go on: ``--resume`` re-attaches) and close."""
        if self._linger is not None:
            self._linger.cancel()
            self._linger = None
        tasks = [t for t in self._tasks if not t.done()]
        for task in tasks:
            task.cancel()
        if tasks:
            await asyncio.gather(*tasks, return_exceptions=True)
        await self.transport.aclose()
        await self.online.aclose()

    # -- outcomes ------------------------------------------------------------------------
    async def _outcome(self, cid: str, line: bytes, tries: int) -> tuple[Outcome, int]:
        """Wait for what a batch says about ``cid`` (an earlier session's batch, or a new one)."""
        entry = self._index.pop(cid, None)
        parked = self._parked.pop(cid, None)
        if entry is not None:
            key, count = entry
            tries = max(tries, count)
            if parked is not None:
                return await asyncio.to_thread(_read_parked, parked, self.name), tries
            rec = self._records.get(key)
            if rec is not None and not rec.collected:
                return await self._wait(cid), tries
            state = rec.state if rec is not None else "?"
            return Outcome("unfinished", reason=f"batch {key} ended {state} without a result for it"), tries
        fut = self._enqueue(cid, line)
        return await fut, tries + 1

    def _wait(self, cid: str) -> asyncio.Future[Outcome]:
        fut: asyncio.Future[Outcome] = asyncio.get_running_loop().create_future()
        self._waiters.setdefault(cid, []).append(fut)
        return fut

    def _resolve(self, cid: str, outcome: Outcome) -> bool:
        futs = self._waiters.pop(cid, None)
        if not futs:
            return False
        for fut in futs:
            if not fut.done():
                fut.set_result(outcome)
        return True

    def _completion(self, request: CompletionRequest, body: Any) -> Completion:
        """The reply as the online client reads it (refusal, empty and truncated replies included)."""
        completion = self.online.parse(body)
        restore = getattr(self.online, "restore_nulls", None)
        if restore is not None:
            completion = restore(request, completion)
        if completion.finish_reason == "length" and request.json_schema is not None:
            raise truncated(TruncatedCompletionError("cut off"), request, self.name)
        return completion

    # -- the collector -------------------------------------------------------------------
    def _enqueue(self, cid: str, line: bytes) -> asyncio.Future[Outcome]:
        known = cid in self._waiters  # already in the buffer or in a live batch: wait for it
        fut = self._wait(cid)
        if known:
            return fut
        s = self.settings
        if len(line) > s.max_bytes:
            self._resolve(
                cid,
                Outcome(
                    "error",
                    error=EngineError(
                        f"engine '{self.name}': one request is {len(line):,} bytes, more than a batch file may hold "
                        f"(batch.max_bytes {s.max_bytes:,})",
                        engine=self.name,
                    ),
                ),
            )
            return fut
        if self._buffer and self._buffer_bytes + len(line) > s.max_bytes:
            self._flush()
        self._buffer.append((cid, line))
        self._buffer_bytes += len(line)
        if len(self._buffer) >= s.max_requests:
            self._flush()
        elif self._linger is None:
            self._linger = asyncio.get_running_loop().call_later(s.linger_s, self._flush)
        return fut

    def _flush(self) -> None:
        if self._linger is not None:
            self._linger.cancel()
            self._linger = None
        items, self._buffer, self._buffer_bytes = self._buffer, [], 0
        if not items:
            return
        rec = BatchRecord(
            key=self.store.new_key(self.name),
            engine=self.name,
            kind=self.transport.kind,
            requests=len(items),
            bytes=sum(len(line) for _, line in items),
        )
        self._records[rec.key] = rec
        self.requests += len(items)
        self._spawn(self._new_batch(rec, items))

    def _spawn(self, coro: Any) -> None:
        task = asyncio.get_running_loop().create_task(coro)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _new_batch(self, rec: BatchRecord, items: list[tuple[str, bytes]]) -> None:
        cids = [cid for cid, _ in items]
        try:
            await asyncio.to_thread(_write_lines, self.store.request_path(rec.key), [line for _, line in items])
        except OSError as exc:
            self._stop(f"engine '{self.name}': cannot write batch file {rec.key}: {exc}", "batch")
            return
        del items
        self.store.save(rec)  # the journal knows the file before anything is sent
        self._event(rec)
        await self._drive(rec, cids, resumed=False)

    async def _drive(self, rec: BatchRecord, cids: list[str], *, resumed: bool) -> None:
        """Submit (unless it was), poll until final, collect."""
        try:
            if self._slots is not None:
                async with self._slots:
                    await self._submit_poll(rec, resumed)
            else:
                await self._submit_poll(rec, resumed)
            await self._collect(rec, cids, resumed)
        except _Stopped:
            pass
        except asyncio.CancelledError:
            raise
        except Exception as exc:  # a bug or an unexpected reply: stop resumable, never lose rows
            self._stop(
                f"engine '{self.name}': batch {rec.key} could not be handled: {type(exc).__name__}: {exc}", "batch"
            )

    async def _submit_poll(self, rec: BatchRecord, resumed: bool) -> None:
        if rec.batch_id is None and rec.state not in TERMINAL_STATES:
            await self._submit(rec, resumed)
        await self._poll(rec, immediate=resumed)

    async def _submit(self, rec: BatchRecord, resumed: bool) -> None:
        t = self.transport
        try:
            if resumed and rec.state == "uploaded":  # created just before a crash? never create it twice
                found = await t.find(rec)
                if found is not None:
                    self._apply(rec, found)
                    return
            if rec.input_file_id is None:
                rec.input_file_id = await t.upload(self.store.request_path(rec.key), rec)
                rec.state = "uploaded"
                self.store.save(rec)
            self._apply(rec, await t.create(rec.input_file_id, rec), force_save=True)
        except EngineError as exc:
            self._transport_error(rec, exc, "submitting")
            rec.state, rec.errors = "failed", f"the batch was refused: {exc}"  # its requests are re-queued once
            self.store.save(rec)
            self._event(rec)

    async def _poll(self, rec: BatchRecord, *, immediate: bool) -> None:
        s = self.settings
        delay = s.poll_initial_s
        failures = 0
        first = True
        while rec.state not in TERMINAL_STATES:
            if not (first and immediate):
                await asyncio.sleep(delay)
                delay = min(delay * s.poll_factor, s.poll_max_s)
            first = False
            try:
                obj = await self.transport.retrieve(rec)
            except EngineError as exc:
                failures += 1
                if failures >= POLL_FAILURES:
                    self._stop(
                        f"engine '{self.name}': cannot poll batch {rec.batch_id} ({exc}); it goes on at "
                        "the provider: rerun with --resume to re-attach",
                        "unreachable",
                    )
                    raise _Stopped() from exc
                self._transport_error(rec, exc, "polling", retry=True)
                continue
            failures = 0
            self._apply(rec, obj)

    def _transport_error(self, rec: BatchRecord, exc: EngineError, doing: str, *, retry: bool = False) -> None:
        """Stop the run on a systemic refusal or an exhausted retry; otherwise return."""
        reason = systemic_reason(exc) if isinstance(exc, EngineHTTPError) else None
        if reason is not None:
            kind, hint = reason
            self._stop(f"engine '{self.name}' stopped while {doing} batch {rec.key}: {exc}; {hint}", kind)
            raise _Stopped() from exc
        if exc.retryable and not retry:  # the transport's retries are spent
            self._stop(
                f"engine '{self.name}': the Batch API failed while {doing} batch {rec.key}: {exc}; "
                "rerun with --resume to continue",
                "unreachable",
            )
            raise _Stopped() from exc

    def _apply(self, rec: BatchRecord, obj: Any, *, force_save: bool = False) -> None:
        """Take in a batch object: status, counts, file ids (journaled when the state changes)."""
        if not isinstance(obj, dict):
            return
        before = (rec.state, dict(rec.request_counts))
        rec.batch_id = obj.get("id") or rec.batch_id
        status = obj.get("status")
        if isinstance(status, str):
            rec.state = status
        counts = obj.get("request_counts")
        if isinstance(counts, dict):
            rec.request_counts = {k: int(v) for k, v in counts.items() if isinstance(v, int)}
        for name in ("output_file_id", "error_file_id"):
            if obj.get(name):
                setattr(rec, name, obj[name])
        if rec.state == "failed":
            rec.errors = describe_batch_errors(obj)
        if force_save or rec.state != before[0]:
            self.store.save(rec)
        if (rec.state, rec.request_counts) != before:
            self._event(rec)

    async def _collect(self, rec: BatchRecord, cids: list[str], resumed: bool) -> None:
        """Download the result files, hand each waiting request its outcome, journal ``collected``."""
        on_purpose = rec.state in ("cancelled", "cancelling") and (
            rec.cancel_requested or bool({rec.batch_id, rec.key} & self.store.cancel_requested())
        )
        results: list[tuple[str | None, Outcome, str, int]] = []
        if rec.state == "failed":
            missing = f"batch {rec.batch_id or rec.key} failed: {rec.errors or 'no reason given'}"
        else:
            paths = []
            for kind, file_id in (("output", rec.output_file_id), ("errors", rec.error_file_id)):
                if file_id:
                    dest = self.store.result_path(rec.key, kind)
                    try:
                        await self.transport.download(file_id, dest)
                    except EngineError as exc:
                        self._transport_error(rec, exc, "downloading the results of")
                        raise
                    paths.append(dest)
            results = await asyncio.to_thread(_read_results, paths, self.name)
            missing = f"batch {rec.batch_id or rec.key} ended {rec.state} without a result for it"
        if on_purpose:
            rec.cancel_requested = True
            self._stopped = (
                f"engine '{self.name}': batch {rec.batch_id} was cancelled (chainette batches "
                "--cancel); its unfinished rows are not committed: rerun with --resume to send "
                "them again",
                "cancelled",
            )
        seen: set[str] = set()
        for cid, outcome, path, offset in results:
            if cid is None:
                continue
            seen.add(cid)
            if outcome.kind == "unfinished" and on_purpose:
                outcome = self._stop_outcome()
            if not self._resolve(cid, outcome) and resumed and cid in self._index:
                self._parked[cid] = (path, offset)
        for cid in cids:
            if cid not in seen:
                self._resolve(cid, self._stop_outcome() if on_purpose else Outcome("unfinished", reason=missing))
        rec.collected = True
        self.store.save(rec)
        self._event(rec)
        if on_purpose:
            self._release_all()

    # -- stopping ------------------------------------------------------------------------
    def _check_stopped(self) -> None:
        if self._stopped is not None:
            raise self._stop_outcome().error  # type: ignore[misc]

    def _stop_outcome(self) -> Outcome:
        message, kind = self._stopped or (f"engine '{self.name}' stopped", "batch")
        return Outcome("error", error=EngineStoppedError(message, kind=kind, engine=self.name))

    def release_waiting(self, reason: str) -> None:
        """Another cause stopped the run (a budget cap, another engine, the error guard): the
        rows waiting on this engine stop waiting, uncommitted, as for a stop of its own."""
        if self._stopped is None:
            self._stop(f"engine '{self.name}': {reason}", "run-stopped")

    def _stop(self, message: str, kind: str) -> None:
        """Stop the run, resumable: every waiting request gets the stop error (its row is not
        committed); journaled batches go on at the provider and ``--resume`` re-attaches."""
        if self._stopped is None:
            self._stopped = (message, kind)
        self._release_all()

    def _release_all(self) -> None:
        if self._linger is not None:
            self._linger.cancel()
            self._linger = None
        self._buffer, self._buffer_bytes = [], 0
        for cid in list(self._waiters):
            self._resolve(cid, self._stop_outcome())
        current = asyncio.current_task()
        for task in list(self._tasks):
            if task is not current:
                task.cancel()

    def _event(self, rec: BatchRecord) -> None:
        c = rec.request_counts
        self.publish(
            BatchProgress(
                engine=self.name,
                key=rec.key,
                batch_id=rec.batch_id,
                status=rec.state,
                requests=rec.requests,
                completed=int(c.get("completed", 0)),
                failed=int(c.get("failed", 0)),
                collected=rec.collected,
            )
        )


class _Stopped(Exception):
    """Control flow: the engine stopped the run; the batch task ends quietly."""


# -- files (run in a worker thread) ------------------------------------------------------------
def _write_lines(path: Path, lines: list[bytes]) -> None:
    tmp = path.with_name(path.name + ".tmp")
    with open(tmp, "wb") as f:
        f.writelines(lines)
        f.flush()
        os.fsync(f.fileno())
    os.replace(tmp, path)


def _read_cids(path: Path) -> list[str]:
    try:
        f = open(path, "rb")
    except OSError:
        return []
    with f:
        return [cid for cid in (line_custom_id(line) for line in f if line.strip()) if cid]


def _lines(path: Path) -> Any:
    with open(path, "rb") as f:
        offset = 0
        for line in f:
            yield offset, line
            offset += len(line)


def _read_results(paths: list[Path], engine: str) -> list[tuple[str | None, Outcome, str, int]]:
    out = []
    for path in paths:
        for offset, line in _lines(path):
            if not line.strip():
                continue
            try:
                obj = loads(line)
            except ValueError:
                continue  # a torn line: its request counts as missing
            cid, outcome = read_result(obj, engine)
            out.append((cid, outcome, str(path), offset))
    return out


def _result_offsets(paths: list[Path]) -> list[tuple[str, str, int]]:
    out = []
    for path in paths:
        for offset, line in _lines(path):
            cid = line_custom_id(line) if line.strip() else None
            if cid:
                out.append((cid, str(path), offset))
    return out


def _read_parked(where: tuple[str, int], engine: str) -> Outcome:
    path, offset = where
    with open(path, "rb") as f:
        f.seek(offset)
        line = f.readline()
    try:
        return read_result(loads(line), engine)[1]
    except ValueError:
        return Outcome("unfinished", reason="its result line could not be read")
