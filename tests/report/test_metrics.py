"""Metrics recorded for the run report: log-bucket histograms, time windows, metrics.json."""

from __future__ import annotations

import json
import math
import random

import pytest

from chainette.core.result import StepStats
from chainette.io.metrics import METRICS_FILE, RunMetrics, earlier_sessions, load_metrics
from chainette.utils.histogram import (
    LATENCY_BUCKETS,
    TOKEN_BUCKETS,
    from_sparse,
    latency_bounds,
    latency_bucket,
    percentiles,
    to_sparse,
    token_bucket,
    token_value,
)


# -- histograms ------------------------------------------------------------------------------
def test_latency_buckets_are_log_spaced_and_cover_every_value():
    assert latency_bucket(0.0) == 0
    assert latency_bucket(-1.0) == 0
    assert latency_bucket(float("nan")) == 0
    assert latency_bucket(float("inf")) == LATENCY_BUCKETS - 1
    assert latency_bucket(1e9) == LATENCY_BUCKETS - 1
    for seconds in (0.00011, 0.001, 0.0123, 0.2, 1.0, 3.7, 59.0, 1234.5):
        low, high = latency_bounds(latency_bucket(seconds))
        assert low < seconds <= high * (1 + 1e-12)
        assert high / low == pytest.approx(2 ** (1 / 8))  # ~9% wide buckets


@pytest.mark.parametrize("sigma", [0.3, 1.0, 2.0])
def test_percentiles_from_the_histogram_are_within_five_percent(sigma):
    rng = random.Random(7)
    values = sorted(rng.lognormvariate(-2.0, sigma) for _ in range(20_000))
    counts = [0] * LATENCY_BUCKETS
    for v in values:
        counts[latency_bucket(v)] += 1
    for q, estimate in zip((0.5, 0.95, 0.99), percentiles(counts, (0.5, 0.95, 0.99)), strict=True):
        exact = values[math.ceil(q * len(values)) - 1]
        assert estimate == pytest.approx(exact, rel=0.05)


def test_empty_histogram_has_no_percentiles_and_sparse_round_trips():
    assert percentiles([0] * LATENCY_BUCKETS, (0.5, 0.99)) == [None, None]
    counts = [0] * LATENCY_BUCKETS
    counts[3], counts[100] = 5, 2
    assert to_sparse(counts) == [[3, 5], [100, 2]]
    assert from_sparse(to_sparse(counts), LATENCY_BUCKETS) == counts
    assert from_sparse([[999, 1], ["x"], [2, -4]], 10) == [0] * 9 + [1]  # bad entries never raise


def test_token_buckets():
    assert [token_bucket(n) for n in (0, 1, 2, 3, 4, 1000)] == [0, 1, 2, 2, 3, 10]
    assert token_bucket(2**40) == TOKEN_BUCKETS - 1
    counts = [0] * TOKEN_BUCKETS
    counts[token_bucket(100)] = 10
    assert 64 <= percentiles(counts, (0.5,), value=token_value)[0] <= 127


# -- RunMetrics ---------------------------------------------------------------------------------
class Clock:
    def __init__(self) -> None:
        self.t = 100.0

    def __call__(self) -> float:
        return self.t


def _metrics(tmp_path, stats, clock, **kw):
    return RunMetrics(tmp_path, stats, run_id="r1", clock=clock, wall=lambda: 1_700_000_000.0 + clock.t, **kw)


def test_windows_count_what_each_step_gained(tmp_path):
    clock = Clock()
    stats = {"a": StepStats(), "b": StepStats()}
    m = _metrics(tmp_path, stats, clock)
    stats["a"].done, stats["a"].requests, stats["a"].prompt_tokens, stats["a"].latency_s = 10, 10, 100, 0.5
    clock.t += 0.2
    m.sample(rows=4)
    stats["a"].done, stats["a"].errors, stats["a"].requests = 15, 1, 16
    stats["a"].latency_s = 0.8
    stats["b"].done = 3
    clock.t += 1.0  # window 2 (0.5 s windows)
    m.sample(rows=6)
    s = m.session()
    assert s["window_s"] == 0.5
    assert s["rows"] == [4, 0, 6]
    assert s["steps"]["a"]["done"] == [10, 0, 5]
    assert s["steps"]["a"]["errors"] == [0, 0, 1]
    assert s["steps"]["a"]["requests"] == [10, 0, 6]
    assert s["steps"]["a"]["tokens"] == [100]
    assert s["steps"]["a"]["latency_ms"] == [500, 0, 300]
    assert s["steps"]["b"]["done"] == [0, 0, 3]
    assert s["totals"]["a"]["done"] == 15 and s["totals"]["a"]["requests"] == 16


def test_windows_double_in_width_and_keep_every_count(tmp_path):
    clock = Clock()
    stats = {"a": StepStats()}
    m = _metrics(tmp_path, stats, clock, max_windows=8)
    total = 0
    for k in range(40):  # 20 s at 0.5 s steps: far past 8 windows of 0.5 s
        stats["a"].done += k
        total += k
        m.sample(rows=1)
        clock.t += 0.5
    s = m.session()
    assert len(s["rows"]) <= 8 and len(s["steps"]["a"]["done"]) <= 8
    assert s["window_s"] >= 2.5
    assert sum(s["rows"]) == 40 and sum(s["steps"]["a"]["done"]) == total


def test_observe_fills_histograms_and_the_file_is_small_and_atomic(tmp_path):
    clock = Clock()
    stats = {"a": StepStats()}
    m = _metrics(tmp_path, stats, clock)
    for k in range(100_000):
        m.observe("a", 0.01 + (k % 100) / 1000, 50 + k % 7)
    m.observe("new_step", 0.2, 3)  # a step the stats did not list yet
    doc = m.due()
    assert doc is not None and m.due() is None  # at most once per save_interval
    m.write(doc)
    data = load_metrics(tmp_path)
    assert data is not None and len(data["sessions"]) == 1
    lat = from_sparse(data["sessions"][0]["latency"]["a"], LATENCY_BUCKETS)
    assert sum(lat) == 100_000
    p50 = percentiles(lat, (0.5,))[0]
    assert p50 == pytest.approx(0.06, rel=0.06)
    assert (tmp_path / METRICS_FILE).stat().st_size < 5_000  # a histogram, not 100,000 latencies
    assert not list(tmp_path.glob("*.tmp"))


def test_observe_uses_the_histogram_bucket_rules(tmp_path):
    m = RunMetrics(None, {})
    values = [0.0, -1.0, float("nan"), 1e-4, 1.00001e-4, 0.003, 0.25, 1.0, 17.0, 12_000.0, 13_421.0, 1e7, float("inf")]
    tokens = [0, 1, 2, 3, 1000, 2**31, 2**40]
    for k, v in enumerate(values):
        m.observe("a", v, tokens[k % len(tokens)])
    expected = [0] * LATENCY_BUCKETS
    for v in values:
        expected[latency_bucket(v)] += 1
    assert m.latency["a"] == expected
    expected_tokens = [0] * TOKEN_BUCKETS
    for k in range(len(values)):
        expected_tokens[token_bucket(tokens[k % len(tokens)])] += 1
    assert m.tokens["a"] == expected_tokens


def test_finish_and_resume_keep_every_session(tmp_path):
    clock = Clock()
    stats = {"a": StepStats(done=5)}
    first = _metrics(tmp_path, stats, clock)
    first.sample(rows=5)
    first.write(first.document())  # saved mid-run; then the process "dies": status stays running
    assert earlier_sessions(tmp_path)[0]["status"] == "killed"
    second = _metrics(tmp_path, {"a": StepStats(done=7)}, clock, previous=earlier_sessions(tmp_path))
    second.finish("completed")
    sessions = load_metrics(tmp_path)["sessions"]
    assert [s["status"] for s in sessions] == ["killed", "completed"]
    assert [s["totals"]["a"]["done"] for s in sessions] == [5, 7]
    third = _metrics(tmp_path, {"a": StepStats()}, clock, previous=earlier_sessions(tmp_path))
    third.finish("interrupted")
    assert [s["status"] for s in load_metrics(tmp_path)["sessions"]] == ["killed", "completed", "interrupted"]


def test_unreadable_metrics_file_is_ignored(tmp_path):
    (tmp_path / METRICS_FILE).write_text("{not json")
    assert load_metrics(tmp_path) is None and earlier_sessions(tmp_path) == []
    (tmp_path / METRICS_FILE).write_text(json.dumps({"version": 99, "sessions": []}))
    assert load_metrics(tmp_path) is None


def test_costs_are_priced_per_step_when_a_meter_is_given(tmp_path):
    class Meter:
        def step_cost(self, sid, st):
            return None if sid == "b" else st.prompt_tokens * 1e-6

    stats = {"a": StepStats(prompt_tokens=1000), "b": StepStats(prompt_tokens=5)}
    s = _metrics(tmp_path, stats, Clock(), costs=Meter()).session()
    assert s["totals"]["a"]["cost"] == pytest.approx(0.001)
    assert s["totals"]["b"]["cost"] is None
