"""Concurrency and rate limits for one engine, shared by every request to it.

* :class:`AdaptiveLimiter` — an AIMD in-flight limit: starts at ``max_in_flight``,
  halves on HTTP 429 (at most once per ``cooldown`` seconds), grows back by one after
  each window of ``limit`` successes, never above ``max_in_flight`` nor below 1.
* :class:`TokenBucket` — requests-per-minute / tokens-per-minute budgets.

Both are asyncio objects created outside any loop; they bind to no loop until used,
and only hold futures while requests wait.
"""

from __future__ import annotations

import asyncio
import time
from collections import deque

from chainette.errors import DefinitionError


class AdaptiveLimiter:
    """An async semaphore whose size adapts to rate limiting (additive increase, multiplicative decrease)."""

    def __init__(self, max_limit: int, *, cooldown: float = 1.0) -> None:
        if max_limit < 1:
            raise DefinitionError(f"max_limit must be >= 1, got {max_limit}")
        self.max_limit = max_limit
        self.limit = max_limit
        self.in_flight = 0
        self.cooldown = cooldown
        self._successes = 0
        self._last_decrease = -1e9
        self._waiters: deque[asyncio.Future[None]] = deque()

    async def acquire(self) -> None:
        if self.in_flight < self.limit and not self._waiters:
            self.in_flight += 1
            return
        fut: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._waiters.append(fut)
        try:
            await fut
        except BaseException:
            if fut.done() and not fut.cancelled():
                # we were granted a slot but got cancelled: give it back
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

    def _wake(self) -> None:
        while self._waiters and self.in_flight < self.limit:
            fut = self._waiters.popleft()
            if not fut.done():
                self.in_flight += 1
                fut.set_result(None)

    def on_success(self) -> None:
        """Count a success; after a full window at the current limit, allow one more in flight."""
        if self.limit >= self.max_limit:
            return
        self._successes += 1
        if self._successes >= self.limit:
            self._successes = 0
            self.limit += 1
            self._wake()

    def on_rate_limited(self) -> None:
        """Halve the limit (once per cooldown, so a burst of 429s counts as one signal)."""
        now = time.monotonic()
        if now - self._last_decrease < self.cooldown:
            return
        self._last_decrease = now
        self._successes = 0
        self.limit = max(1, self.limit // 2)

    async def __aenter__(self) -> AdaptiveLimiter:
        await self.acquire()
        return self

    async def __aexit__(self, *exc: object) -> None:
        self.release()


class TokenBucket:
    """A budget of ``per_minute`` units refilled continuously; ``take(n)`` waits until ``n`` are available.

    ``n`` larger than the bucket is capped at the bucket size, so every wait is bounded
    by one minute. ``debit(n)`` charges units after the fact (actual token usage) and may
    drive the balance negative, which delays later requests.
    """

    def __init__(self, per_minute: float) -> None:
        self.capacity = float(per_minute)
        self.rate = per_minute / 60.0
        self.tokens = self.capacity
        self._stamp = time.monotonic()
        self._lock: asyncio.Lock | None = None

    def _refill(self) -> None:
        now = time.monotonic()
        self.tokens = min(self.capacity, self.tokens + (now - self._stamp) * self.rate)
        self._stamp = now

    async def take(self, n: float = 1.0) -> None:
        n = min(float(n), self.capacity)
        if self._lock is None:
            self._lock = asyncio.Lock()
        async with self._lock:  # FIFO: one waiter at a time
            self._refill()
            while self.tokens < n:
                await asyncio.sleep(min(60.0, (n - self.tokens) / self.rate))
                self._refill()
            self.tokens -= n

    def debit(self, n: float) -> None:
        self._refill()
        self.tokens -= n
