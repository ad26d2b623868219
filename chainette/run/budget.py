"""``Budget``: admission control for ``--max-cost`` / ``--max-tokens`` (``max_cost=`` / ``max_tokens=``).

Every request the row runner is about to send awaits :meth:`Budget.admit` first, with its
worst case: the prompt's tokens (estimated, see below) plus its completion cap
(``max_tokens``). The request is admitted only if

    spent + reserved (admitted, not yet answered) + this request's worst case <= cap

for each cap given (tokens, and cost at the step's engine price; an engine's ``per_hour``
price adds the time it has been held so far). A request that does not fit waits while
others are in flight (their replies usually cost less than reserved, and teach the
estimate); when nothing is in flight and it still does not fit, it is refused and the
budget is *stopped*: nothing more is admitted, rows that still needed a request are not
committed (a resume runs them again, and the item cache answers what was already paid
for). So the run never passes the cap as long as the estimates hold, and it stops about
one request's worst case below it (at most one in-flight window of requests).

Prompt tokens are estimated from the rendered messages' length: per step, the largest
tokens-per-character ratio seen in the replies so far (at first a cautious 1 token per 2
characters), over at least 64 characters. Without ``max_tokens`` the completion is bounded
by 1.5 x the largest completion seen for the step (1,024 tokens before any reply): set
``max_tokens`` on a step for a hard bound. Spending counts every request the engine answered;
a request that failed is assumed to have cost nothing.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

import anyio

from chainette.engine.pricing import Price

INITIAL_TOKENS_PER_CHAR = 0.5
MIN_CHARS = 64
DEFAULT_COMPLETION_RESERVE = 1024
_EPS = 1e-12


@dataclass(slots=True)
class Ticket:
    """One admitted request's reservation."""

    step_id: str
    chars: int
    tokens: int
    cost: float


class Budget:
    """Caps on tokens and/or cost for one run (see the module docstring)."""

    def __init__(
        self,
        *,
        max_cost: float | None = None,
        max_tokens: int | None = None,
        step_prices: Mapping[str, Price | None] | None = None,
        spent_tokens: int = 0,
        spent_cost: float = 0.0,
        hourly_cost: Callable[[], float] | None = None,
        on_stop: Callable[[Budget], Any] | None = None,
    ) -> None:
        self.max_cost = max_cost
        self.max_tokens = max_tokens
        self.step_prices = dict(step_prices or {})
        self.spent_tokens = spent_tokens
        self.spent_cost = spent_cost
        self.reserved_tokens = 0
        self.reserved_cost = 0.0
        self.in_flight = 0
        self.admitted = 0
        self.stopped_by: str | None = None
        self.refused: dict[str, Any] | None = None
        """the first refused request: its step and worst case, and the budget's state then"""
        self._hourly = hourly_cost
        self._on_stop = on_stop
        self._ratio: dict[str, float] = {}
        self._max_completion: dict[str, int] = {}
        self._waiting = 0
        self._settled: anyio.Event | None = None

    @staticmethod
    def unpriced_steps(step_prices: Mapping[str, Price | None]) -> list[str]:
        return [sid for sid, p in step_prices.items() if p is None]

    # -- the two calls of the row runner ------------------------------------------------------
    def worst_case(self, step_id: str, chars: int, max_tokens: int | None) -> tuple[int, float]:
        """``(tokens, cost)`` a request of ``chars`` characters could use at most (estimated)."""
        prompt = int(max(chars, MIN_CHARS) * self._ratio.get(step_id, INITIAL_TOKENS_PER_CHAR)) + 1
        if max_tokens is not None:
            completion = max_tokens
        else:
            seen = self._max_completion.get(step_id)
            completion = DEFAULT_COMPLETION_RESERVE if seen is None else max(16, seen + seen // 2)
        price = self.step_prices.get(step_id)
        return prompt + completion, price.token_cost(prompt, completion) if price is not None else 0.0

    def _over(self, tokens: int, cost: float) -> str | None:
        """The cap this request could pass now, if any."""
        if self.max_tokens is not None and self.spent_tokens + self.reserved_tokens + tokens > self.max_tokens:
            return "max_tokens"
        if self.max_cost is not None:
            hourly = self._hourly() if self._hourly is not None else 0.0
            if self.spent_cost + hourly + self.reserved_cost + cost > self.max_cost + _EPS:
                return "max_cost"
        return None

    async def admit(self, step_id: str, messages: list[dict[str, Any]], max_tokens: int | None) -> Ticket | None:
        """Reserve a request's worst case, or return ``None`` (and stop) if it could pass a cap."""
        chars = 0
        for m in messages:
            content = m.get("content")
            chars += len(content) if isinstance(content, str) else len(str(content or ""))
        while True:
            if self.stopped_by is not None:
                return None
            tokens, cost = self.worst_case(step_id, chars, max_tokens)
            cap = self._over(tokens, cost)
            if cap is None:
                break
            if self.in_flight == 0:
                self._stop(cap, step_id, tokens, cost)
                return None
            if self._settled is None:
                self._settled = anyio.Event()
            self._waiting += 1
            try:
                await self._settled.wait()  # a reply settles: spending is known better, try again
            finally:
                self._waiting -= 1
        self.reserved_tokens += tokens
        self.reserved_cost += cost
        self.in_flight += 1
        self.admitted += 1
        return Ticket(step_id, chars, tokens, cost)

    def settle(self, ticket: Ticket, usage: Any = None) -> None:
        """Release a reservation; count what the reply's ``usage`` says was spent (none on failure)."""
        self.reserved_tokens -= ticket.tokens
        self.reserved_cost -= ticket.cost
        self.in_flight -= 1
        if self._settled is not None:  # wake the requests waiting for room
            self._settled.set()
            self._settled = None
        if usage is None:
            return
        prompt, completion = usage.prompt_tokens, usage.completion_tokens
        self.spent_tokens += prompt + completion
        price = self.step_prices.get(ticket.step_id)
        if price is not None:
            self.spent_cost += price.token_cost(prompt, completion, usage.cached_prompt_tokens)
        if prompt:
            ratio = prompt / max(ticket.chars, MIN_CHARS)
            if ratio > self._ratio.get(ticket.step_id, 0.0):
                self._ratio[ticket.step_id] = ratio
        if completion > self._max_completion.get(ticket.step_id, -1):
            self._max_completion[ticket.step_id] = completion

    # -- state --------------------------------------------------------------------------------
    def _stop(self, cap: str, step_id: str, tokens: int, cost: float) -> None:
        self.stopped_by = cap
        self.refused = {
            "cap": cap,
            "limit": self.max_cost if cap == "max_cost" else self.max_tokens,
            "step_id": step_id,
            "request_tokens": tokens,
            "request_cost": round(cost, 8),
            "spent_tokens": self.spent_tokens,
            "spent_cost": round(self.spent_cost + (self._hourly() if self._hourly else 0.0), 8),
            "in_flight_requests": self.in_flight,
            "reserved_tokens": self.reserved_tokens,
            "reserved_cost": round(self.reserved_cost, 8),
        }
        if self._settled is not None:  # the waiting requests are refused too
            self._settled.set()
            self._settled = None
        if self._on_stop is not None:
            self._on_stop(self)

    def describe_stop(self) -> str:
        """Which cap stopped the run, what was spent, and how to continue."""
        r = self.refused or {}
        if self.stopped_by == "max_cost":
            what = (
                f"--max-cost ${self.max_cost:g}: spent ${r.get('spent_cost', 0):.6f} with "
                f"${r.get('reserved_cost', 0):.6f} in flight, and the next request could cost "
                f"${r.get('request_cost', 0):.6f}"
            )
        else:
            what = (
                f"--max-tokens {self.max_tokens:,}: spent {r.get('spent_tokens', 0):,} tokens with "
                f"{r.get('reserved_tokens', 0):,} in flight, and the next request could use "
                f"{r.get('request_tokens', 0):,}"
            )
        return (
            f"stopped by {what}. The run is resumable: raise the cap and rerun the same command "
            "with --resume (resume=True) to continue"
        )
