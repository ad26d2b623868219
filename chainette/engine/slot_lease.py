"""Leased in-flight slots: one engine's concurrency limit shared by many processes.

A run on one machine bounds the requests in flight to an endpoint with the client's own
:class:`~chainette.engine.limiter.AdaptiveLimiter`. When the run is spread over many worker
processes (the Ray runner), the limit must hold for all of them together, and asking a
central service for every request would put a network round trip on every request. So
slots are *leased in chunks*:

* a :class:`SlotTable` (pure and synchronous; the Ray runner keeps it in one named actor)
  knows each key's capacity (``engine@endpoint`` -> ``max_in_flight``) and how many slots
  each holder (a worker process) holds. It never hands out more than the capacity in
  total; when holders compete it shares the capacity fairly (water-filling over what each
  says it needs) and tells a holder above its share to give slots back;
* a :class:`LeasedLimiter` (one per key per process) stands in for the client's limiter:
  acquiring and releasing a slot are local operations on slots it already holds; a small
  background loop tops up, returns surplus and reports demand a few times a second, and
  gives everything back once idle. A holder that stops reporting (a killed worker) loses
  its slots after ``ttl`` seconds.

The cost per request is nothing beyond a local counter; the cost per process is one
exchange every ``heartbeat`` seconds while it is busy.
"""

from __future__ import annotations

import asyncio
import time
from collections import deque
from dataclasses import dataclass, field
from typing import Protocol

from chainette.errors import DefinitionError

DEFAULT_TTL = 15.0
"""Seconds after which the slots of a holder that stopped reporting are taken back."""
SOURCE_PATIENCE = 30.0
"""Seconds a limiter keeps asking an unreachable slot source before its waiting requests fail."""


@dataclass
class _KeyState:
    capacity: int
    held: dict[str, int] = field(default_factory=dict)
    demand: dict[str, int] = field(default_factory=dict)
    seen: dict[str, float] = field(default_factory=dict)
    peak: int = 0
    """the most slots held at once over all holders (never above ``capacity``)"""
    expired: int = 0
    """slots taken back from holders that stopped reporting"""


def fair_shares(capacity: int, demands: dict[str, int]) -> dict[str, int]:
    """Water-filling: every holder gets what it asks for if the capacity allows, else an
    equal share, with the part small askers leave going to the others."""
    out = {h: 0 for h in demands}
    active = {h for h, d in demands.items() if d > 0}
    remaining = capacity
    while active and remaining > 0:
        share = max(1, remaining // len(active))
        for h in sorted(active, key=lambda h: (demands[h] - out[h], h)):
            add = min(share, demands[h] - out[h], remaining)
            out[h] += add
            remaining -= add
            if out[h] >= demands[h]:
                active.discard(h)
            if remaining == 0:
                break
    return out


class SlotTable:
    """The capacity of each key and the slots each holder holds (not thread-safe: one owner)."""

    def __init__(self, *, ttl: float = DEFAULT_TTL) -> None:
        self.ttl = ttl
        self._keys: dict[str, _KeyState] = {}

    def configure(self, key: str, capacity: int) -> None:
        """Set ``key``'s capacity (the first configuration wins; later ones must agree)."""
        if capacity < 1:
            raise DefinitionError(f"slot capacity of {key!r} must be >= 1, got {capacity}")
        self._keys.setdefault(key, _KeyState(capacity))

    def exchange(
        self, key: str, holder: str, *, give: int = 0, want: int = 0, demand: int = 0, now: float | None = None
    ) -> tuple[int, int]:
        """``holder`` returns ``give`` slots, asks for ``want`` more and says it could use ``demand``
        in total right now. Returns ``(granted, target)``: the slots granted now (maybe 0) and how
        many the holder may keep (it gives back what it holds above that as requests finish)."""
        st = self._keys.get(key)
        if st is None:
            raise DefinitionError(f"unknown slot key {key!r}: configure it first")
        now = time.monotonic() if now is None else now
        self._expire(st, now)
        held = max(0, st.held.get(holder, 0) - max(0, give))
        st.held[holder] = held
        st.demand[holder] = max(0, demand)
        st.seen[holder] = now
        shares = fair_shares(st.capacity, {h: max(d, 0) for h, d in st.demand.items()})
        contended = sum(st.demand.values()) > st.capacity
        target = shares.get(holder, 0) if contended else st.capacity
        free = st.capacity - sum(st.held.values())
        granted = max(0, min(want, free, target - held))
        st.held[holder] = held + granted
        st.peak = max(st.peak, sum(st.held.values()))
        if st.held[holder] == 0 and st.demand[holder] == 0:
            for d in (st.held, st.demand, st.seen):
                d.pop(holder, None)
        return granted, max(target, 0)

    def _expire(self, st: _KeyState, now: float) -> None:
        for h in [h for h, t in st.seen.items() if now - t > self.ttl]:
            st.expired += st.held.get(h, 0)
            for d in (st.held, st.demand, st.seen):
                d.pop(h, None)

    def report(self) -> dict[str, dict[str, int]]:
        """Per key: capacity, slots held now, the peak held at once, slots taken back."""
        return {
            k: {"capacity": s.capacity, "held": sum(s.held.values()), "peak": s.peak, "expired": s.expired}
            for k, s in self._keys.items()
        }


class SlotSource(Protocol):
    """Where a :class:`LeasedLimiter` leases slots (a :class:`SlotTable`, possibly remote)."""

    async def exchange(self, key: str, holder: str, give: int, want: int, demand: int) -> tuple[int, int]: ...


class LocalSlotSource:
    """A :class:`SlotTable` in this process as a :class:`SlotSource` (tests, one process)."""

    def __init__(self, table: SlotTable) -> None:
        self.table = table

    async def exchange(self, key: str, holder: str, give: int, want: int, demand: int) -> tuple[int, int]:
        return self.table.exchange(key, holder, give=give, want=want, demand=demand)


class LeasedLimiter:
    """An in-flight limiter whose slots are leased from a :class:`SlotSource`.

    Same interface as :class:`~chainette.engine.limiter.AdaptiveLimiter` (``acquire``,
    ``release``, ``on_success``, ``on_rate_limited``, ``in_flight``, ``limit``,
    ``max_limit``), so it replaces a client's limiter as is. The local limit adapts to
    rate limiting the same way (AIMD); it never lets more requests run than slots held.
    """

    def __init__(
        self,
        key: str,
        max_limit: int,
        source: SlotSource,
        holder: str,
        *,
        chunk: int | None = None,
        heartbeat: float = 0.25,
        idle_release: float = 0.5,
        cooldown: float = 1.0,
    ) -> None:
        if max_limit < 1:
            raise DefinitionError(f"max_limit must be >= 1, got {max_limit}")
        self.key = key
        self.max_limit = max_limit
        self.limit = max_limit
        self.source = source
        self.holder = holder
        self.chunk = chunk if chunk is not None else max(1, min(32, max_limit // 8))
        self.heartbeat = heartbeat
        self.idle_release = idle_release
        self.cooldown = cooldown
        self.in_flight = 0
        self.held = 0
        self.target = max_limit
        self.exchanges = 0
        self._waiters: deque[asyncio.Future[None]] = deque()
        self._task: asyncio.Task[None] | None = None
        self._successes = 0
        self._last_decrease = -1e9
        self._idle_since: float | None = None

    # -- the limiter interface ----------------------------------------------------------
    async def acquire(self) -> None:
        if self.in_flight < self._room() and not self._waiters:
            self.in_flight += 1
            return
        fut: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._waiters.append(fut)
        self._kick()
        try:
            await fut
        except BaseException:
            if fut.done() and not fut.cancelled():
                self.release()
            else:
                try:
                    self._waiters.remove(fut)
                except ValueError:
                    pass
            raise

    def release(self) -> None:
        self.in_flight -= 1
        self._wake()
        if self.held > self.target or not self._waiters:
            self._kick()

    def on_success(self) -> None:
        if self.limit >= self.max_limit:
            return
        self._successes += 1
        if self._successes >= self.limit:
            self._successes = 0
            self.limit += 1
            self._wake()

    def on_rate_limited(self) -> None:
        now = time.monotonic()
        if now - self._last_decrease < self.cooldown:
            return
        self._last_decrease = now
        self._successes = 0
        self.limit = max(1, self.limit // 2)

    async def __aenter__(self) -> LeasedLimiter:
        await self.acquire()
        return self

    async def __aexit__(self, *exc: object) -> None:
        self.release()

    # -- leasing ------------------------------------------------------------------------
    def _room(self) -> int:
        return min(self.held, self.limit, self.target)

    def _wake(self) -> None:
        while self._waiters and self.in_flight < self._room():
            fut = self._waiters.popleft()
            if not fut.done():
                self.in_flight += 1
                fut.set_result(None)

    def _kick(self) -> None:
        if self._task is None or self._task.done():
            self._task = asyncio.get_running_loop().create_task(self._sync())

    def _plan(self, now: float) -> tuple[int, int, int]:
        """``(give, want, demand)`` for the next exchange."""
        demand = min(self.max_limit, self.in_flight + len(self._waiters))
        if demand == 0 and self._idle_since is None:
            self._idle_since = now
        elif demand > 0:
            self._idle_since = None
        idle = self._idle_since is not None and now - self._idle_since >= self.idle_release
        keep = 0 if idle else min(self.max_limit, self.target, demand + (self.chunk if demand else 0))
        keep = max(keep, self.in_flight)
        give = max(0, self.held - keep)
        want = 0
        if self._waiters and self.held < min(self.max_limit, self.target):
            want = min(self.max_limit, self.target, demand + self.chunk) - self.held
        return give, max(0, want), demand

    async def _sync(self) -> None:
        """Top up, give back and report until nothing is held or wanted."""
        backoff = 0.005
        failures = 0
        while True:
            now = time.monotonic()
            give, want, demand = self._plan(now)
            if self.held == 0 and demand == 0:
                if give == 0:
                    return
            try:
                granted, target = await self.source.exchange(self.key, self.holder, give, want, demand)
            except asyncio.CancelledError:
                raise
            except Exception as exc:  # the slot table is away (restarting?): wait, then stop the run
                failures += 1
                if failures * self.heartbeat >= SOURCE_PATIENCE:
                    self._fail(exc)
                    return
                await asyncio.sleep(self.heartbeat)
                continue
            failures = 0
            self.exchanges += 1
            self.held += granted - give
            self.target = max(1, target)
            self._wake()
            if self.held == 0 and not self._waiters and self.in_flight == 0:
                return
            if want and not granted:
                await asyncio.sleep(backoff)  # the capacity is taken: ask again soon
                backoff = min(self.heartbeat, backoff * 2)
                continue
            backoff = 0.005
            give_now = self.held > max(self.in_flight, self.target)
            if not give_now:
                # on the process's common beat: the limiters of one process report together, and a
                # source that batches (the Ray runner's) sends one message for all of them
                await asyncio.sleep(self.heartbeat - time.monotonic() % self.heartbeat)

    def _fail(self, exc: Exception) -> None:
        from chainette.errors import EngineStoppedError

        stop = EngineStoppedError(
            f"in-flight slots for {self.key} cannot be leased: {exc!r}; the run stops (resumable)", kind="unreachable"
        )
        while self._waiters:
            fut = self._waiters.popleft()
            if not fut.done():
                fut.set_exception(stop)

    async def aclose(self) -> None:
        """Give every slot back (nothing may be in flight)."""
        if self._task is not None and not self._task.done():
            self._task.cancel()
            try:
                await self._task
            except (asyncio.CancelledError, Exception):
                pass
        if self.held:
            give, self.held = self.held, 0
            try:
                await self.source.exchange(self.key, self.holder, give, 0, 0)
            except Exception:
                pass  # the table takes them back after its ttl
