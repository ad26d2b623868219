"""Fixed-size histograms that give percentiles without keeping every value.

``latency_bucket(seconds)`` maps a latency to one of ``LATENCY_BUCKETS`` log-spaced buckets:
bucket 0 holds everything up to 0.1 ms, bucket ``i >= 1`` holds
``(0.1 ms * 2**((i-1)/8), 0.1 ms * 2**(i/8)]`` (8 buckets per doubling, each about 9% wide),
and the last bucket everything from about 3.7 hours up. A percentile read back is the
bucket's geometric middle, within about 4.5% of the true value.

``token_bucket(n)`` maps a token count to ``n.bit_length()`` (bucket ``k`` holds
``2**(k-1) .. 2**k - 1``; bucket 0 holds 0).

Recording is one float logarithm (latency) or one ``bit_length`` (tokens) and one integer
increment of a preallocated list; merging two histograms is adding their lists. Nothing
here does I/O.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable, Sequence

PER_DOUBLING = 8
"""latency buckets per doubling of the latency"""
MIN_S = 1e-4
"""the upper edge of latency bucket 0 (0.1 ms)"""
LATENCY_BUCKETS = PER_DOUBLING * 27 + 1
"""bucket count: bucket 0, then 27 doublings above 0.1 ms (up to ~3.7 hours), the last open-ended"""
TOKEN_BUCKETS = 33
"""token buckets: 0, then one per power of two up to 2**32 (the last open-ended)"""

_SCALE = 1.0 / MIN_S
_MAX_S = MIN_S * 2 ** ((LATENCY_BUCKETS - 1) / PER_DOUBLING)
_log2 = math.log2


def latency_bucket(seconds: float) -> int:
    """The bucket of a latency in seconds (0 for anything not above 0.1 ms, NaN included)."""
    if not seconds > MIN_S:
        return 0
    if seconds >= _MAX_S:
        return LATENCY_BUCKETS - 1
    return int(_log2(seconds * _SCALE) * PER_DOUBLING) + 1


def latency_bounds(bucket: int) -> tuple[float, float]:
    """The ``(low, high]`` latency range in seconds that ``bucket`` holds."""
    if bucket <= 0:
        return 0.0, MIN_S
    return MIN_S * 2 ** ((bucket - 1) / PER_DOUBLING), MIN_S * 2 ** (bucket / PER_DOUBLING)


def latency_value(bucket: int) -> float:
    """The value a percentile falling in ``bucket`` reads as (the bucket's geometric middle)."""
    low, high = latency_bounds(bucket)
    return high / 2 if low == 0 else math.sqrt(low * high)


def token_bucket(n: int) -> int:
    """The bucket of a token count (its bit length, capped)."""
    k = n.bit_length() if n > 0 else 0
    return k if k < TOKEN_BUCKETS else TOKEN_BUCKETS - 1


def token_value(bucket: int) -> float:
    """The value a percentile falling in token ``bucket`` reads as (the middle of its range)."""
    if bucket <= 0:
        return 0.0
    low, high = 2 ** (bucket - 1), 2**bucket - 1
    return (low + high) / 2


def percentiles(
    counts: Sequence[int], qs: Iterable[float], value: Callable[[int], float] = latency_value
) -> list[float | None]:
    """The ``qs`` quantiles (0..1) of a histogram, each read as ``value(bucket)``; ``None``
    for an empty histogram."""
    total = sum(counts)
    qs = list(qs)
    if not total:
        return [None] * len(qs)
    out: list[float | None] = []
    for q in qs:
        rank = max(1, math.ceil(q * total))  # the rank-th smallest value (nearest-rank method)
        seen = 0
        for i, c in enumerate(counts):
            seen += c
            if seen >= rank:
                out.append(value(i))
                break
    return out


def to_sparse(counts: Sequence[int]) -> list[list[int]]:
    """``[[bucket, count], ...]`` for the non-empty buckets (the form kept in files)."""
    return [[i, c] for i, c in enumerate(counts) if c]


def from_sparse(pairs: Iterable[Sequence[int]], size: int) -> list[int]:
    """A dense histogram of ``size`` buckets from ``[[bucket, count], ...]`` (out-of-range
    buckets land in the last one, bad entries are ignored)."""
    counts = [0] * size
    for pair in pairs:
        try:
            i, c = int(pair[0]), int(pair[1])
        except (TypeError, ValueError, IndexError):
            continue
        if c > 0:
            counts[min(max(i, 0), size - 1)] += c
    return counts


def merge(into: list[int], other: Sequence[int]) -> list[int]:
    """Add ``other`` to ``into`` bucket by bucket (in place) and return ``into``."""
    for i, c in enumerate(other):
        if c:
            into[i] += c
    return into
