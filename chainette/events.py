"""Typed events and a tiny synchronous pub/sub bus.

The executor and the engines publish; the rich UI, JSON logs and tests subscribe.
Stats are data: events carry numbers, never formatted text for a display.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from typing import Any


@dataclass(slots=True)
class Event:
    """Base class of every event."""

    @property
    def kind(self) -> str:
        return type(self).__name__

    def to_dict(self) -> dict[str, Any]:
        d = asdict(self)
        d["event"] = self.kind
        return d


@dataclass(slots=True)
class RunStarted(Event):
    run_id: str
    chain_name: str
    output_dir: str | None
    total_inputs: int | None
    steps: list[str] = field(default_factory=list)
    max_cost: float | None = None
    max_tokens: int | None = None


@dataclass(slots=True)
class StepTotalItems(Event):
    """The number of items that reached a step so far (grows as rows stream in)."""

    step_id: str
    total: int


@dataclass(slots=True)
class BatchFinished(Event):
    """``count`` items finished at ``step_id`` since the last event (``errors`` of them failed)."""

    step_id: str
    count: int
    errors: int = 0
    prompt_tokens: int = 0
    completion_tokens: int = 0
    cost: float | None = 0.0
    """USD of those tokens at the step's engine price; ``None`` when the price is unknown"""
    engine: str | None = None
    """the step's engine (``None`` for a node that sends no request)"""


@dataclass(slots=True)
class ItemFailed(Event):
    step_id: str
    row_id: str
    error_type: str
    message: str
    attempts: int = 1


@dataclass(slots=True)
class EngineRetry(Event):
    engine: str
    error_type: str
    attempt: int
    delay_s: float


@dataclass(slots=True)
class ServerStarting(Event):
    engine: str
    command: list[str]
    endpoint: str


@dataclass(slots=True)
class ServerReady(Event):
    engine: str
    endpoint: str
    seconds: float
    reused: bool = False


@dataclass(slots=True)
class ServerStopped(Event):
    engine: str


@dataclass(slots=True)
class RunFinished(Event):
    run_id: str
    seconds: float
    rows_in: int
    step_stats: dict[str, dict[str, int]]
    output_dir: str | None
    interrupted: bool = False
    cost: dict[str, Any] = field(default_factory=dict)
    """tokens and cost per step, per engine, in total, and the item cache's savings"""
    stopped_by: str | None = None
    """what stopped the run early, resumable (``"max_cost"``, ``"max_tokens"``, ...; see ``RunResult.stopped_by``)"""


@dataclass(slots=True)
class BudgetReached(Event):
    """A request was refused because it could pass a cap: no new request is sent from now on.

    ``cap`` is ``"max_cost"`` or ``"max_tokens"``; spent and reserved (in flight) are in USD
    or tokens as the cap is."""

    cap: str
    limit: float
    spent: float
    reserved: float
    in_flight_requests: int
    step_id: str


@dataclass(slots=True)
class BatchProgress(Event):
    """A batch of an engine in batch mode changed (written, submitted, polled, finished, collected).

    ``status``: ``prepared`` (file written), ``uploaded``, then the provider's own status
    (validating, in_progress, finalizing, completed, failed, expired, cancelling, cancelled);
    ``completed`` / ``failed``: the provider's request counts; ``collected``: its results
    were downloaded and handed to the rows."""

    engine: str
    key: str
    batch_id: str | None
    status: str
    requests: int
    completed: int = 0
    failed: int = 0
    collected: bool = False


Subscriber = Callable[[Event], None]


class EventBus:
    """Synchronous publish/subscribe. Subscribers must be quick; errors in them are swallowed."""

    def __init__(self) -> None:
        self._subs: list[Subscriber] = []
        self._lock = threading.Lock()

    def subscribe(self, fn: Subscriber) -> Callable[[], None]:
        """Call ``fn(event)`` for every event published from now on; returns the unsubscribe function."""
        with self._lock:
            self._subs.append(fn)
        return lambda: self.unsubscribe(fn)

    def unsubscribe(self, fn: Subscriber) -> None:
        """Stop calling ``fn`` (no-op when it is not subscribed)."""
        with self._lock:
            if fn in self._subs:
                self._subs.remove(fn)

    def publish(self, event: Event) -> None:
        """Hand ``event`` to every subscriber, in subscription order; a failing subscriber is skipped."""
        for fn in tuple(self._subs):
            try:
                fn(event)
            except Exception:  # a broken display must never break a run
                pass

    def __bool__(self) -> bool:
        return bool(self._subs)


bus = EventBus()
"""The process-wide bus (the CLI subscribes here)."""
