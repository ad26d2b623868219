"""Retry policy: exponential back-off with full jitter, honouring ``Retry-After``.

Pure helpers (no I/O): :func:`parse_retry_after` reads the header (seconds or an
HTTP date), :class:`RetryPolicy` decides whether an error is retried and how long to
wait. Every wait is bounded by ``max_delay`` (back-off) or ``max_retry_after``.
"""

from __future__ import annotations

import random
import time
from dataclasses import dataclass, field
from email.utils import parsedate_to_datetime

from chainette.errors import EngineError


def parse_retry_after(value: str | None, *, now: float | None = None) -> float | None:
    """Seconds to wait from a ``Retry-After`` header value, or ``None`` if absent/unreadable."""
    if not value:
        return None
    value = value.strip()
    try:
        return max(0.0, float(value))
    except ValueError:
        pass
    try:
        when = parsedate_to_datetime(value)
    except (TypeError, ValueError, IndexError):
        return None
    if when is None:
        return None
    return max(0.0, when.timestamp() - (time.time() if now is None else now))


@dataclass
class RetryPolicy:
    """How many times to retry and how long to wait between attempts.

    ``delay(attempt)`` for attempt 1, 2, ... is uniform in ``[0, min(max_delay, base * 2**(attempt-1))]``
    (full jitter); a server's ``Retry-After`` takes precedence, capped at ``max_retry_after``.
    """

    max_retries: int = 5
    base: float = 0.5
    max_delay: float = 20.0
    max_retry_after: float = 60.0
    rng: random.Random = field(default_factory=random.Random, repr=False)

    def should_retry(self, error: BaseException, attempt: int) -> bool:
        """True if ``error`` (raised by attempt number ``attempt``, 1-based) deserves another try."""
        return attempt <= self.max_retries and isinstance(error, EngineError) and bool(error.retryable)

    def delay(self, attempt: int, error: BaseException | None = None) -> float:
        """Seconds to sleep before attempt ``attempt + 1``."""
        retry_after = getattr(error, "retry_after", None)
        if retry_after is not None:
            # a little jitter so that many waiting requests do not return in lockstep
            return min(self.max_retry_after, retry_after) + self.rng.uniform(0, min(1.0, self.base))
        ceiling = min(self.max_delay, self.base * (2 ** max(0, attempt - 1)))
        return self.rng.uniform(0, ceiling)
