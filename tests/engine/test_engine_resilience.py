"""Timeouts, retries with back-off and Retry-After, adaptive concurrency, RPM/TPM limits."""

from __future__ import annotations

import asyncio
import random
import time
from email.utils import formatdate

import pytest

from chainette.engine.factory import create_engine
from chainette.engine.limiter import AdaptiveLimiter, TokenBucket
from chainette.engine.protocol import CompletionRequest
from chainette.engine.registry import EngineConfig
from chainette.engine.retry import RetryPolicy, parse_retry_after
from chainette.errors import (
    EngineConnectionError,
    EngineHTTPError,
    EngineTimeoutError,
    RateLimitError,
)
from chainette.utils.events import EngineRetry, bus

from ._support import fake_api, ok, payload

REPLY = payload("vllm_structured")["response"]
REQ = CompletionRequest(messages=[{"role": "user", "content": "x"}])


def fast_policy(n: int = 3) -> RetryPolicy:
    return RetryPolicy(max_retries=n, base=0.01, max_delay=0.05, max_retry_after=2.0, rng=random.Random(0))


def engine(url: str, **kw):
    cfg = EngineConfig(name="v", backend="vllm_api", model="m", **kw)
    eng = create_engine(cfg, url + "/v1")
    eng.policy = fast_policy(cfg.max_retries)
    return eng


def test_parse_retry_after():
    assert parse_retry_after("3") == 3.0
    assert parse_retry_after("0.5") == 0.5
    assert parse_retry_after(None) is None and parse_retry_after("soon") is None
    now = time.time()
    assert 9 <= parse_retry_after(formatdate(now + 10, usegmt=True), now=now) <= 10
    assert parse_retry_after(formatdate(now - 100, usegmt=True)) == 0.0


def test_backoff_is_bounded_and_grows():
    p = RetryPolicy(base=0.5, max_delay=4.0, rng=random.Random(1))
    for attempt in range(1, 20):
        assert 0 <= p.delay(attempt) <= min(4.0, 0.5 * 2 ** (attempt - 1))
    err = RateLimitError("x", status=429, retry_after=500.0)
    assert p.delay(1, err) <= p.max_retry_after + 1


def test_retries_5xx_then_succeeds_and_publishes_events():
    calls = {"n": 0}

    def handler(seen):
        calls["n"] += 1
        return (503, {"error": "overloaded"}, {}) if calls["n"] < 3 else ok(REPLY)

    events = []
    unsubscribe = bus.subscribe(lambda e: events.append(e) if isinstance(e, EngineRetry) else None)

    async def go():
        async with fake_api(handler) as api:
            eng = engine(api.url)
            out = await eng.complete(REQ)
            await eng.aclose()
            return out

    try:
        out = asyncio.run(go())
    finally:
        unsubscribe()
    assert out.text and calls["n"] == 3
    assert [e.attempt for e in events] == [1, 2] and events[0].error_type == "EngineHTTPError"


def test_gives_up_after_max_retries_with_context():
    async def go():
        async with fake_api(lambda s: (500, {"error": {"message": "boom"}}, {})) as api:
            eng = engine(api.url, max_retries=2)
            try:
                await eng.complete(CompletionRequest(messages=[], row_id="row-7", step_id="s1"))
            finally:
                await eng.aclose()
            return api

    with pytest.raises(EngineHTTPError) as info:
        asyncio.run(go())
    assert info.value.status == 500 and "boom" in str(info.value)
    assert info.value.row_id == "row-7" and info.value.node_id == "s1" and info.value.engine == "v"


def test_4xx_is_not_retried():
    seen = []

    async def go():
        async with fake_api(lambda s: (seen.append(1), (400, {"error": {"message": "bad schema"}}, {}))[1]) as api:
            eng = engine(api.url)
            try:
                await eng.complete(REQ)
            finally:
                await eng.aclose()

    with pytest.raises(EngineHTTPError, match="bad schema"):
        asyncio.run(go())
    assert len(seen) == 1


def test_429_honours_retry_after_and_halves_concurrency():
    calls = {"n": 0}

    def handler(seen):
        calls["n"] += 1
        return (429, {"error": {"message": "slow down"}}, {"Retry-After": "0.3"}) if calls["n"] == 1 else ok(REPLY)

    async def go():
        async with fake_api(handler) as api:
            eng = engine(api.url, max_in_flight=8)
            t0 = time.perf_counter()
            await eng.complete(REQ)
            took = time.perf_counter() - t0
            limit = eng.limiter.limit
            await eng.aclose()
            return took, limit

    took, limit = asyncio.run(go())
    assert took >= 0.3 and limit == 4


def test_connection_refused_is_connection_error():
    import socket

    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()

    async def go():
        eng = engine(f"http://127.0.0.1:{port}", max_retries=1)
        try:
            await eng.complete(REQ)
        finally:
            await eng.aclose()

    with pytest.raises(EngineConnectionError, match="cannot reach"):
        asyncio.run(go())


def test_timeout_is_timeout_error():
    async def slow(seen):
        await asyncio.sleep(2)
        return ok(REPLY)

    async def go():
        async with fake_api(slow) as api:
            eng = engine(api.url, timeout=0.2, max_retries=1)
            t0 = time.perf_counter()
            try:
                await eng.complete(REQ)
            finally:
                await eng.aclose()
                assert time.perf_counter() - t0 < 1.5

    with pytest.raises(EngineTimeoutError):
        asyncio.run(go())


def test_in_flight_limit_is_shared_by_all_callers():
    async def handler(seen):
        await asyncio.sleep(0.02)
        return ok(REPLY)

    async def go():
        async with fake_api(handler) as api:
            eng = engine(api.url, max_in_flight=5)
            # two "branches" sharing the engine object
            await asyncio.gather(*(eng.complete(REQ) for _ in range(30)), *(eng.complete(REQ) for _ in range(30)))
            await eng.aclose()
            return api.max_seen_in_flight, len(api.seen)

    peak, total = asyncio.run(go())
    assert total == 60 and peak <= 5 and peak >= 3


def test_default_in_flight_limit_is_large():
    assert EngineConfig(name="x", backend="vllm_api").max_in_flight >= 64


def test_adaptive_limiter_aimd():
    lim = AdaptiveLimiter(16, cooldown=0.0)
    lim.on_rate_limited()
    assert lim.limit == 8
    lim.on_rate_limited()
    lim.on_rate_limited()
    lim.on_rate_limited()
    lim.on_rate_limited()
    assert lim.limit == 1  # never below 1
    for _ in range(1 + 2 + 3):  # a window of `limit` successes adds one
        lim.on_success()
    assert lim.limit == 4
    for _ in range(10_000):
        lim.on_success()
    assert lim.limit == 16  # never above max


def test_adaptive_limiter_burst_of_429_counts_once():
    lim = AdaptiveLimiter(64, cooldown=10.0)
    for _ in range(50):
        lim.on_rate_limited()
    assert lim.limit == 32


def test_limiter_blocks_and_cancellation_does_not_leak_slots():
    async def go():
        lim = AdaptiveLimiter(1)
        await lim.acquire()
        waiter = asyncio.create_task(lim.acquire())
        await asyncio.sleep(0.01)
        assert not waiter.done()
        waiter.cancel()
        await asyncio.sleep(0)
        lim.release()
        assert lim.in_flight == 0
        await asyncio.wait_for(lim.acquire(), 0.5)
        assert lim.in_flight == 1

    asyncio.run(go())


def test_token_bucket_rate():
    async def go():
        b = TokenBucket(per_minute=600)  # 10 per second, burst 600
        b.tokens = 0
        t0 = time.perf_counter()
        for _ in range(3):
            await b.take(1)
        return time.perf_counter() - t0

    took = asyncio.run(go())
    assert 0.25 <= took < 1.0


def test_rpm_limit_applies_to_requests():
    async def go():
        async with fake_api(lambda s: ok(REPLY)) as api:
            eng = engine(api.url, requests_per_minute=1200)  # 20/s
            eng.rpm.tokens = 0
            t0 = time.perf_counter()
            await asyncio.gather(*(eng.complete(REQ) for _ in range(5)))
            await eng.aclose()
            return time.perf_counter() - t0

    assert asyncio.run(go()) >= 0.2


def test_tpm_limit_debits_actual_usage():
    async def go():
        async with fake_api(lambda s: ok(REPLY)) as api:
            eng = engine(api.url, tokens_per_minute=600)  # slow refill: little noise
            before = eng.tpm.tokens
            await eng.complete(REQ)
            await eng.aclose()
            return before - eng.tpm.tokens

    used = asyncio.run(go())
    assert 50 <= used <= 70  # ~58 tokens from the reply's usage (plus refill noise)
