"""The garbage collector during a run (issue #17): tuned while rows flow, restored afterwards,
and left alone where the process's owner has its own settings."""

from __future__ import annotations

import gc

import pytest
from pydantic import BaseModel

from chainette import Chain, FakeEngine, Step, apply
from chainette.run import gc_tuning
from chainette.run.gc_tuning import YOUNG_THRESHOLD, collector_tuned_for_run, restore_after_run, tune_for_run


class Q(BaseModel):
    text: str


class A(BaseModel):
    answer: str


@pytest.fixture(autouse=True)
def pristine_collector():
    """Each test starts from CPython's defaults and leaves them as it found them."""
    saved = gc.get_threshold()
    assert gc.get_freeze_count() == 0 and gc_tuning._runs == 0
    gc.set_threshold(700, 10, 10)
    yield
    gc.unfreeze()
    gc.set_threshold(*saved)
    gc.enable()
    gc_tuning._runs, gc_tuning._saved = 0, None


def run_observing(tmp_path, rows: int = 3) -> list[tuple[tuple[int, ...], int]]:
    """Run a two-node chain whose Apply records the collector's settings row by row."""
    seen: list[tuple[tuple[int, ...], int]] = []

    def observe(a: A) -> list[A]:
        seen.append((gc.get_threshold(), gc.get_freeze_count()))
        return [a]

    step = Step("s", input_model=Q, output_model=A, engine_name="fake", user_prompt="{{ text }}")
    chain = Chain("gc", steps=[step, apply(observe, id="observe")])
    result = chain.run(
        [{"text": f"q{i}"} for i in range(rows)],
        output_dir=tmp_path / "run",
        engines={"fake": FakeEngine(handler=lambda r: {"answer": "x"})},
        cache=False,
    )
    assert result.error_count == 0
    return seen


def test_a_run_raises_the_young_threshold_and_freezes_what_existed_before(tmp_path):
    seen = run_observing(tmp_path)
    assert len(seen) == 3
    for thresholds, frozen in seen:
        assert thresholds == (YOUNG_THRESHOLD, 10, 10)
        assert frozen > 1000  # the modules, models and chain loaded before the run
    assert gc.get_threshold() == (700, 10, 10)
    assert gc.get_freeze_count() == 0


def test_the_collector_is_restored_when_the_run_fails(tmp_path):
    def boom(a: A) -> list[A]:
        raise KeyboardInterrupt  # not a row error: ends the run

    step = Step("s", input_model=Q, output_model=A, engine_name="fake", user_prompt="{{ text }}")
    chain = Chain("gc-fail", steps=[step, apply(boom, id="boom")])
    with pytest.raises(KeyboardInterrupt):
        chain.run([{"text": "q"}], engines={"fake": FakeEngine(handler=lambda r: {"answer": "x"})}, cache=False)
    assert gc.get_threshold() == (700, 10, 10)
    assert gc.get_freeze_count() == 0 and gc_tuning._runs == 0


def test_chainette_gc_default_leaves_the_collector_alone(tmp_path, monkeypatch):
    monkeypatch.setenv("CHAINETTE_GC", "default")
    for thresholds, frozen in run_observing(tmp_path):
        assert thresholds == (700, 10, 10) and frozen == 0


def test_concurrent_runs_share_one_tuning_and_the_last_to_end_restores_it():
    tune_for_run()
    tune_for_run()
    assert gc.get_threshold()[0] == YOUNG_THRESHOLD
    restore_after_run()
    assert gc.get_threshold()[0] == YOUNG_THRESHOLD, "another run is still going on"
    restore_after_run()
    assert gc.get_threshold() == (700, 10, 10) and gc.get_freeze_count() == 0


def test_a_disabled_collector_stays_disabled_and_untouched():
    gc.disable()
    with collector_tuned_for_run():
        assert not gc.isenabled()
        assert gc.get_threshold() == (700, 10, 10) and gc.get_freeze_count() == 0
    assert not gc.isenabled()


def test_the_owners_own_freeze_is_kept():
    gc.freeze()
    owned = gc.get_freeze_count()
    with collector_tuned_for_run():
        assert gc.get_threshold()[0] == YOUNG_THRESHOLD
    # Frozen objects that die by reference counting (other threads, finalizers) lower the count
    # a little; gc.unfreeze() would bring it to 0.
    assert gc.get_freeze_count() > owned // 2, "the owner's frozen objects were unfrozen"
    assert gc.get_threshold() == (700, 10, 10)


def test_a_higher_threshold_of_the_owner_is_not_lowered():
    gc.set_threshold(200_000, 20, 20)
    with collector_tuned_for_run():
        assert gc.get_threshold() == (200_000, 20, 20)
    assert gc.get_threshold() == (200_000, 20, 20)
