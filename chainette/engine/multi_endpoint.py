"""``MultiEndpointEngine``: one engine served by several endpoints (replicas of one model).

An engine config with ``endpoints: [a, b, c]`` gets one HTTP client per endpoint, built as
its backend builds any client, each with its own in-flight limit (the engine's
``max_in_flight``, so the engine as a whole has ``len(endpoints) x max_in_flight``) and
its own health. This object routes every request:

* to the endpoint with the fewest requests outstanding (queued or in flight), among those
  in service; ties go round-robin. A slow endpoint keeps its requests longer and so gets
  fewer new ones;
* away from an endpoint that fails: a refused or reset connection takes it out at once,
  ``DOWN_AFTER_5XX`` 5xx replies or ``DOWN_AFTER_TIMEOUTS`` timeouts in a row take it out;
  an endpoint out of service gets one real request as a probe after 1 s, then 2, 4 ... up
  to 30 s, and is back in service on the first answer;
* a request whose attempt failed on one endpoint (connection, timeout, 5xx, 429, a broken
  reply) is sent at once to another endpoint in service it has not tried; only when every
  endpoint has been tried does it wait (the engine's back-off) and count a retry against
  ``max_retries``. A row's request is answered once or fails once: rows are committed by
  the run's journal, never by this object, so no row is lost or written twice.

Engine-level fail-fast (:mod:`chainette.engine.health`) sees every attempt: a systemic
refusal (401/403, exhausted quota, rejected schema) from any endpoint stops the engine,
and "unreachable" stops it only when every endpoint fails with no answer from any of them
for the usual streak (8 connection failures over 2 s, or 30 s once it had answered).
"""

from __future__ import annotations

import asyncio
import itertools
import time
from collections import deque
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from chainette.engine.health import EngineHealth
from chainette.engine.protocol import Completion, CompletionRequest
from chainette.engine.retry import RetryPolicy
from chainette.errors import (
    DefinitionError,
    EngineConnectionError,
    EngineError,
    EngineHTTPError,
    EngineStoppedError,
    EngineTimeoutError,
)

if TYPE_CHECKING:
    from chainette.engine.registry import EngineConfig

DOWN_AFTER_5XX = 3
"""5xx replies in a row that take an endpoint out of service."""
DOWN_AFTER_TIMEOUTS = 2
"""Timeouts in a row that take an endpoint out of service."""
PROBE_AFTER = (1.0, 30.0)
"""First and longest wait before an endpoint out of service gets a probe request."""
NEVER = 1 << 62


@dataclass
class Endpoint:
    """One endpoint of the engine: its client and its service state."""

    url: str
    client: Any
    up: bool = True
    outstanding: int = 0
    """requests routed here and not finished (queued in its limiter or in flight)"""
    probing: bool = False
    next_probe: float = 0.0
    probe_wait: float = PROBE_AFTER[0]
    errors_5xx: int = 0
    timeouts: int = 0
    requests: int = 0
    failures: int = 0
    taken_out: int = 0
    last_error: str = ""

    def stats(self) -> dict[str, Any]:
        return {
            "endpoint": self.url,
            "up": self.up,
            "requests": self.requests,
            "failures": self.failures,
            "taken_out": self.taken_out,
            "outstanding": self.outstanding,
            "last_error": self.last_error,
        }


class MultiEndpointEngine:
    """Routes each request of one engine to one of several endpoints (see the module docstring)."""

    def __init__(
        self, cfg: EngineConfig, clients: list[Any], *, policy: RetryPolicy | None = None, clock: Any = time.monotonic
    ) -> None:
        if not clients:
            raise DefinitionError(f"engine '{cfg.name}': a multi-endpoint engine needs at least one endpoint")
        self.cfg = cfg
        self.name = cfg.name
        self.model = getattr(clients[0], "model", cfg.model)
        self.max_in_flight = sum(getattr(c, "max_in_flight", cfg.max_in_flight) for c in clients)
        self.endpoints = [Endpoint(getattr(c, "endpoint", str(i)), c) for i, c in enumerate(clients)]
        self.policy = policy or RetryPolicy(max_retries=cfg.max_retries)
        self.health = EngineHealth(
            cfg.name, key_hint=getattr(clients[0].health, "key_hint", "") if hasattr(clients[0], "health") else ""
        )
        self._clock = clock
        self._rr = itertools.count()
        self._slot_waiters: deque[asyncio.Future[None]] = deque()
        self._events: Any = None
        for ep in self.endpoints:
            _endpoint_health(ep.client)

    def __repr__(self) -> str:
        return f"MultiEndpointEngine(name={self.name!r}, endpoints={[e.url for e in self.endpoints]!r})"

    @property
    def clients(self) -> list[Any]:
        return [e.client for e in self.endpoints]

    # what the run sets on its engines (its event bus) goes to every client
    @property
    def events(self) -> Any:
        return self._events

    @events.setter
    def events(self, bus: Any) -> None:
        self._events = bus
        for ep in self.endpoints:
            try:
                ep.client.events = bus
            except AttributeError:
                pass

    def __getattr__(self, name: str) -> Any:
        # validation hooks (sampling_problems, schema_warnings, ...) are the same for every
        # endpoint: the first client answers them
        if name.startswith("__") or name in ("endpoints", "cfg"):
            raise AttributeError(name)
        return getattr(self.endpoints[0].client, name)

    # -- the seam ----------------------------------------------------------------------
    async def prepare(self) -> None:
        """Prepare every client (e.g. ask each server its version); one that cannot be reached
        starts out of service instead of failing the run."""
        results = await asyncio.gather(*(_prepare(ep.client) for ep in self.endpoints), return_exceptions=True)
        for ep, res in zip(self.endpoints, results, strict=True):
            if isinstance(res, EngineConnectionError):
                self._take_out(ep, res)
            elif isinstance(res, BaseException):
                raise res

    async def complete(self, request: CompletionRequest) -> Completion:
        self.health.check()
        attempt = 0
        round_ = 0
        tried: set[int] = set()
        while True:
            ep, probe = await self._pick(tried)
            attempt += 1
            tried.add(id(ep))
            ep.outstanding += 1
            ep.requests += 1
            try:
                completion = await ep.client.complete(request)
            except EngineError as exc:
                self._on_failure(ep, exc, probe)
                if self.health.stopped is not None:
                    exc.stop = self.health.stopped
                    raise
                if exc.stop is not None and not _unreachable(exc):
                    raise  # a systemic fault stopped this engine
                if not (exc.retryable or _unreachable(exc)):
                    _stamp(exc, request, attempt)
                    raise
                if any(e.up and id(e) not in tried for e in self.endpoints):
                    continue  # another endpoint in service that this request has not tried: go now
                round_ += 1
                if round_ > self.policy.max_retries:
                    _stamp(exc, request, attempt)
                    raise
                delay = self.policy.delay(round_, exc)
                self._publish_retry(exc, attempt, delay)
                await asyncio.sleep(delay)
                tried.clear()
                continue
            finally:
                ep.outstanding -= 1
                if probe:
                    ep.probing = False
                self._signal()  # a slot is free (or the endpoint's state changed)
            self._on_answer(ep)
            return completion

    async def aclose(self) -> None:
        for ep in self.endpoints:
            try:
                await ep.client.aclose()
            except Exception:
                pass

    def close_sync(self) -> None:
        for ep in self.endpoints:
            close = getattr(ep.client, "close_sync", None)
            if close is not None:
                close()

    def stats(self) -> list[dict[str, Any]]:
        """Per endpoint: requests, failures, times taken out of service, state."""
        return [ep.stats() for ep in self.endpoints]

    # -- routing -------------------------------------------------------------------------
    async def _pick(self, tried: set[int]) -> tuple[Endpoint, bool]:
        """The endpoint for the next attempt and whether it is a probe: a due probe first, else the
        least loaded endpoint in service with a free slot (untried by this request when possible).
        Routing waits for a free slot rather than queueing behind one endpoint, so a slow endpoint
        only gets a new request when one of its own finishes; it also waits while all are out."""
        eps = self.endpoints
        n = len(eps)
        woken = False  # a request woken from the queue keeps its place at the front of it
        while True:
            self.health.check()
            if any(not e.up for e in eps):
                now = self._clock()
                for ep in eps:
                    if not ep.up and not ep.probing and now >= ep.next_probe:
                        ep.probing = True  # this request probes it; on failure it goes elsewhere
                        return ep, True
            if self._slot_waiters and not woken:
                # first come, first served: a newcomer does not take the slot a waiting request was
                # woken for (a request that waited too long would hold back the run's journal)
                await self._wait_change(None)
                woken = True
                continue
            first = next(self._rr) % n
            best = self._least_loaded(eps, n, first, tried) if tried else None
            if best is None:
                best = self._least_loaded(eps, n, first, None)
            if best is not None:
                return best, False
            if any(e.up for e in eps):
                if tried and not any(e.up and id(e) not in tried for e in eps):
                    tried.clear()
                await self._wait_change(None, front=woken)  # every endpoint in service is full: the next finish
                woken = True
                continue
            now = self._clock()
            wait = min((e.next_probe for e in eps if not e.probing), default=now + PROBE_AFTER[0])
            await self._wait_change(max(0.01, wait - now))

    @staticmethod
    def _least_loaded(eps: list[Endpoint], n: int, first: int, tried: set[int] | None) -> Endpoint | None:
        """The endpoint in service with a free slot and the smallest share of its slots in use,
        scanning from ``first`` (round robin among equals); ``tried``: only those not in it."""
        best, best_load = None, 2.0
        for k in range(n):
            e = eps[(first + k) % n]
            if not e.up or (tried is not None and id(e) in tried):
                continue
            room = _room(e)
            if e.outstanding >= room:
                continue
            load = e.outstanding / room
            if load < best_load:
                best, best_load = e, load
        return best

    async def _wait_change(self, seconds: float | None, *, front: bool = False) -> None:
        """Wait for a free slot (``None``: woken one at a time, first come first served; ``front``:
        a woken request that found no slot waits again first in line), or poll while every endpoint
        is out of service (``seconds``, at most 0.25 s at a time)."""
        if seconds is not None:
            await asyncio.sleep(min(seconds, 0.25))
            return
        fut: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        if front:
            self._slot_waiters.appendleft(fut)
        else:
            self._slot_waiters.append(fut)
        try:
            await fut
        except BaseException:
            if fut.done() and not fut.cancelled():
                self._signal()  # woken, then cancelled: pass the wake-up on
            else:
                try:
                    self._slot_waiters.remove(fut)
                except ValueError:
                    pass
            raise

    def _signal(self, everyone: bool = False) -> None:
        """A slot is free: wake the first waiting request (``everyone``: an endpoint came back)."""
        while self._slot_waiters:
            fut = self._slot_waiters.popleft()
            if not fut.done():
                fut.set_result(None)
                if not everyone:
                    return

    # -- endpoint state ------------------------------------------------------------------
    def _on_answer(self, ep: Endpoint) -> None:
        self.health.on_answer()
        ep.errors_5xx = ep.timeouts = 0
        if not ep.up:
            ep.up = True
            ep.probe_wait = PROBE_AFTER[0]
            self._signal(everyone=True)

    def _on_failure(self, ep: Endpoint, exc: EngineError, probe: bool) -> None:
        ep.failures += 1
        ep.last_error = f"{type(exc).__name__}: {exc}"[:300]
        if isinstance(exc, EngineStoppedError):
            if exc.kind == "unreachable":  # the client gave up on its endpoint: we probe it instead
                _endpoint_health(ep.client, reset=True)
                self._take_out(ep, exc)
                self.health.on_error(EngineConnectionError(str(exc), engine=self.name))
                if probe:
                    self._schedule_probe(ep)
            elif self.health.stopped is None:
                self.health.stopped = EngineStoppedError(str(exc), kind=exc.kind, engine=self.name)
            return
        self.health.on_error(exc)
        if isinstance(exc, EngineConnectionError):
            self._take_out(ep, exc)
        elif isinstance(exc, EngineTimeoutError):
            ep.timeouts += 1
            if ep.timeouts >= DOWN_AFTER_TIMEOUTS:
                self._take_out(ep, exc)
        elif isinstance(exc, EngineHTTPError) and exc.status >= 500:
            ep.errors_5xx += 1
            if ep.errors_5xx >= DOWN_AFTER_5XX:
                self._take_out(ep, exc)
        else:  # the server replied (a 4xx, a 429, a reply that does not parse): it is there
            ep.errors_5xx = ep.timeouts = 0
            if not ep.up:
                self._on_answer(ep)
            return
        if probe and not ep.up:
            self._schedule_probe(ep)  # a failed probe: the next one later (1, 2, 4 ... 30 s)

    def _take_out(self, ep: Endpoint, exc: BaseException) -> None:
        if ep.up:
            ep.up = False
            ep.taken_out += 1
            ep.probe_wait = PROBE_AFTER[0]
            ep.last_error = f"{type(exc).__name__}: {exc}"[:300]
            self._schedule_probe(ep)
        # already out: late failures of requests sent before it went out do not delay the probe

    def _schedule_probe(self, ep: Endpoint) -> None:
        ep.next_probe = self._clock() + ep.probe_wait
        ep.probe_wait = min(PROBE_AFTER[1], ep.probe_wait * 2)

    def _publish_retry(self, exc: EngineError, attempt: int, delay: float) -> None:
        from chainette.events import EngineRetry
        from chainette.events import bus as global_bus

        bus = self._events if self._events is not None else global_bus
        if bus:
            bus.publish(EngineRetry(engine=self.name, error_type=type(exc).__name__, attempt=attempt, delay_s=delay))


def _room(ep: Endpoint) -> int:
    """How many requests ``ep`` takes at once now (its client's adaptive limit)."""
    limiter = getattr(ep.client, "limiter", None)
    limit = getattr(limiter, "limit", None)
    return int(limit) if limit else int(getattr(ep.client, "max_in_flight", 1 << 30))


def _unreachable(exc: EngineError) -> bool:
    return isinstance(exc, EngineStoppedError) and exc.kind == "unreachable"


def _stamp(exc: EngineError, request: CompletionRequest, attempt: int) -> None:
    exc.row_id = exc.row_id or request.row_id or None
    exc.node_id = exc.node_id or request.step_id or None
    exc.attempts = attempt


def _endpoint_health(client: Any, *, reset: bool = False) -> None:
    """An endpoint's own client never declares its endpoint unreachable for the run (this engine
    takes it out of service and probes it back instead); its other fail-fast rules stay."""
    health = getattr(client, "health", None)
    if health is None:
        return
    if reset or health.unreachable_streak != NEVER:
        fresh = EngineHealth(health.engine, unreachable_streak=NEVER, key_hint=health.key_hint)
        fresh.answered = health.answered and not reset
        client.health = fresh


async def _prepare(client: Any) -> None:
    prepare = getattr(client, "prepare", None)
    if prepare is not None:
        await prepare()
