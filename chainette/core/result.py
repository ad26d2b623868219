"""Result types: ``Result`` for one item at one step, ``RunResult`` for a whole run."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Generic, Optional, TypeVar

T = TypeVar("T")


@dataclass(slots=True)
class Result(Generic[T]):
    """One row's outcome at one step: a ``value`` or an ``error``."""

    row_id: str = ""
    step_id: str = ""
    value: Optional[T] = None
    error: Optional[Exception] = None
    reasoning_content: Optional[str] = None

    @property
    def ok(self) -> bool:
        """True when the step produced a value (no error)."""
        return self.error is None


@dataclass
class StepStats:
    """Counters for one step (data; displays subscribe to events carrying them)."""

    reached: int = 0
    """items that arrived at the step"""
    done: int = 0
    """items the step processed without error (a filtered item counts, with no output)"""
    errors: int = 0
    outputs: int = 0
    """records the step wrote (fan-out writes several per item, a filter none)"""
    prompt_tokens: int = 0
    completion_tokens: int = 0
    cached: int = 0
    """requests answered from the item cache (no request sent)"""
    cached_prompt_tokens: int = 0
    """of ``prompt_tokens``, those the provider served from its own prompt cache"""
    requests: int = 0
    """requests answered by the engine (validation retries included; item-cache hits not)"""
    latency_s: float = 0.0
    """the sum of those requests' latencies"""
    saved_prompt_tokens: int = 0
    """tokens the item-cache hits did not spend (what the cached replies cost when first made)"""
    saved_completion_tokens: int = 0

    def to_dict(self) -> dict[str, Any]:
        return {
            "reached": self.reached,
            "done": self.done,
            "errors": self.errors,
            "outputs": self.outputs,
            "prompt_tokens": self.prompt_tokens,
            "completion_tokens": self.completion_tokens,
            "cached": self.cached,
            "cached_prompt_tokens": self.cached_prompt_tokens,
            "requests": self.requests,
            "latency_s": round(self.latency_s, 3),
            "saved_prompt_tokens": self.saved_prompt_tokens,
            "saved_completion_tokens": self.saved_completion_tokens,
        }


@dataclass
class RunResult:
    """What ``Chain.run`` returns.

    Without an output directory, ``outputs`` (step id -> list of :class:`Result`),
    ``flattened`` and ``errors`` hold everything in memory. With one, they are empty and
    the run directory holds the data; ``datasets`` is the ``DatasetDict`` when a
    ``RunWriter`` was used.
    """

    run_id: str
    chain_name: str
    output_dir: Path | None
    rows_in: int = 0
    seconds: float = 0.0
    step_stats: dict[str, StepStats] = field(default_factory=dict)
    outputs: dict[str, list[Result]] = field(default_factory=dict)
    flattened: list[dict[str, Any]] = field(default_factory=list)
    errors: list[dict[str, Any]] = field(default_factory=list)
    datasets: Any = None
    interrupted: bool = False
    failed_rows: int = 0
    """input rows with at least one error record (in this session)"""
    cost: dict[str, Any] = field(default_factory=dict)
    """tokens and cost per step, per engine and in total, and the item cache's savings
    (see ``chainette/run/costs.py``); costs are ``None`` where an engine's price is unknown"""
    stopped_by: str | None = None
    """what stopped the run early, resumable: ``"max_cost"`` / ``"max_tokens"`` (a budget),
    ``"engine"`` (a systemic engine fault) or ``"error_guard"`` (see ``chainette/run/stop.py``)"""
    stop_reason: str = ""
    """why, in words, with how to continue"""

    @property
    def error_count(self) -> int:
        """Error records across every step."""
        return sum(s.errors for s in self.step_stats.values())

    @property
    def error_rate(self) -> float:
        """Failed input rows / input rows (a row failing in two branches counts once)."""
        return self.failed_rows / self.rows_in if self.rows_in else 0.0

    def __getitem__(self, step_id: str) -> list[Result]:
        return self.outputs[step_id]

    def values(self, step_id: str) -> list[Any]:
        """The successful output models of ``step_id``, in input order."""
        return [r.value for r in self.outputs.get(step_id, []) if r.ok]

    def __iter__(self) -> Iterator[dict[str, Any]]:
        return iter(self.flattened)

    def __len__(self) -> int:
        return len(self.flattened)

    def __bool__(self) -> bool:  # a run directory's result holds no rows in memory, yet is a result
        return True

    def summary(self) -> dict[str, Any]:
        """A JSON-ready summary: ids, rows, time, errors and per-step counters."""
        return {
            "run_id": self.run_id,
            "chain": self.chain_name,
            "output_dir": str(self.output_dir) if self.output_dir else None,
            "rows_in": self.rows_in,
            "seconds": round(self.seconds, 3),
            "errors": self.error_count,
            "failed_rows": self.failed_rows,
            "interrupted": self.interrupted,
            "stopped_by": self.stopped_by,
            "steps": {k: v.to_dict() for k, v in self.step_stats.items()},
            "cost": self.cost,
        }
