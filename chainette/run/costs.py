"""``CostMeter``: a run's tokens turned into costs, per step, per engine and in total.

The executor counts tokens into each step's :class:`StepStats` (plain integer additions per
request); this module prices those counters when someone asks (a progress event, a commit,
the end of the run), never per request. Costs are ``None`` where an engine's price is
unknown: the tokens are still reported, the cost is never guessed.

Per-step costs are token costs. An engine's ``per_hour`` price is charged to the engine for
the time the run held it (``held_s``), so it shows in the per-engine and total costs.

The report (``RunResult.cost``, ``metadata.json`` ``"cost"``, the summary, ``--json-logs``)::

    {"currency": "USD", "prices_as_of": "...",
     "steps":   {step: {engine, requests, prompt_tokens, cached_prompt_tokens, completion_tokens,
                        tokens, cost, cache_hits, saved_prompt_tokens, saved_completion_tokens,
                        saved_cost}},
     "engines": {engine: {model, price, price_source, requests, prompt_tokens, cached_prompt_tokens,
                          completion_tokens, tokens, token_cost, held_s, hour_cost, cost}},
     "total":   {requests, prompt_tokens, cached_prompt_tokens, completion_tokens, tokens, cost,
                 cost_complete, unpriced_engines},
     "cache_savings": {hits, prompt_tokens, completion_tokens, tokens, cost},
     "earlier_sessions": {...}, "run_total": {tokens, cost}}    # only after --resume
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from chainette.core.result import StepStats
from chainette.engine.pricing import Price, default_price_table


def _round(cost: float | None) -> float | None:
    return None if cost is None else round(cost, 8)


class CostMeter:
    """Prices of one run's steps (``step_engines``: LLM step id -> engine name)."""

    def __init__(
        self,
        step_engines: Mapping[str, str],
        prices: Mapping[str, tuple[Price | None, str]],
        *,
        models: Mapping[str, str] | None = None,
    ) -> None:
        self.step_engines = dict(step_engines)
        self.prices = dict(prices)
        self.models = dict(models or {})
        self._step_price: dict[str, Price | None] = {
            sid: self.prices.get(name, (None, "unknown"))[0] for sid, name in self.step_engines.items()
        }

    def price_of_step(self, step_id: str) -> Price | None:
        return self._step_price.get(step_id)

    @property
    def unpriced_engines(self) -> list[str]:
        return sorted(n for n, (p, _) in self.prices.items() if p is None)

    def step_cost(self, step_id: str, st: StepStats) -> float | None:
        """The tokens of ``step_id`` at its engine's price; ``None`` if that price is unknown
        (0 for a node that sends no request)."""
        if step_id not in self.step_engines:
            return 0.0
        price = self._step_price[step_id]
        if price is None:
            return None
        return price.token_cost(st.prompt_tokens, st.completion_tokens, st.cached_prompt_tokens)

    def saved_cost(self, step_id: str, st: StepStats) -> float | None:
        if step_id not in self.step_engines:
            return 0.0
        price = self._step_price[step_id]
        if price is None:
            return None
        return price.token_cost(st.saved_prompt_tokens, st.saved_completion_tokens)

    # -- totals ----------------------------------------------------------------------------
    def spent(
        self,
        stats: Mapping[str, StepStats],
        held_s: Mapping[str, float] | None = None,
        before: Mapping[str, Any] | None = None,
    ) -> dict[str, Any]:
        """What the run has spent so far (``before``: earlier sessions), as kept for resume."""
        prompt = cached = completion = 0
        cost = 0.0
        complete = True
        for sid, st in stats.items():
            prompt += st.prompt_tokens
            cached += st.cached_prompt_tokens
            completion += st.completion_tokens
            c = self.step_cost(sid, st)
            if c is None:
                complete = complete and not (st.prompt_tokens or st.completion_tokens)
            else:
                cost += c
        for name, seconds in (held_s or {}).items():
            price = self.prices.get(name, (None, ""))[0]
            if price is not None:
                cost += price.hour_cost(seconds)
        before = before or {}
        return {
            "prompt_tokens": prompt + int(before.get("prompt_tokens", 0)),
            "cached_prompt_tokens": cached + int(before.get("cached_prompt_tokens", 0)),
            "completion_tokens": completion + int(before.get("completion_tokens", 0)),
            "tokens": prompt + completion + int(before.get("tokens", 0)),
            "cost": _round(cost + float(before.get("cost") or 0.0)),
            "cost_complete": complete and bool(before.get("cost_complete", True)),
        }

    def report(
        self,
        stats: Mapping[str, StepStats],
        held_s: Mapping[str, float] | None = None,
        before: Mapping[str, Any] | None = None,
    ) -> dict[str, Any]:
        """The full cost report of this session (see the module docstring)."""
        held_s = held_s or {}
        steps: dict[str, Any] = {}
        engines: dict[str, dict[str, Any]] = {}
        for name, (price, source) in self.prices.items():
            engines[name] = {
                "model": self.models.get(name) or None,
                "price": price.model_dump(exclude_none=True) if price is not None else None,
                "price_source": source,
                "requests": 0,
                "prompt_tokens": 0,
                "cached_prompt_tokens": 0,
                "completion_tokens": 0,
                "tokens": 0,
                "token_cost": 0.0 if price is not None else None,
            }
        saved: dict[str, Any] = {"hits": 0, "prompt_tokens": 0, "completion_tokens": 0, "tokens": 0, "cost": 0.0}
        for sid, name in self.step_engines.items():
            st = stats.get(sid) or StepStats()
            cost = self.step_cost(sid, st)
            saved_cost = self.saved_cost(sid, st)
            steps[sid] = {
                "engine": name,
                "requests": st.requests,
                "prompt_tokens": st.prompt_tokens,
                "cached_prompt_tokens": st.cached_prompt_tokens,
                "completion_tokens": st.completion_tokens,
                "tokens": st.prompt_tokens + st.completion_tokens,
                "cost": _round(cost),
                "cache_hits": st.cached,
                "saved_prompt_tokens": st.saved_prompt_tokens,
                "saved_completion_tokens": st.saved_completion_tokens,
                "saved_cost": _round(saved_cost),
            }
            e = engines.setdefault(
                name,
                {
                    "model": None,
                    "price": None,
                    "price_source": "unknown",
                    "requests": 0,
                    "prompt_tokens": 0,
                    "cached_prompt_tokens": 0,
                    "completion_tokens": 0,
                    "tokens": 0,
                    "token_cost": None,
                },
            )
            for k in ("requests", "prompt_tokens", "cached_prompt_tokens", "completion_tokens", "tokens"):
                e[k] += steps[sid][k]
            if cost is not None and e["token_cost"] is not None:
                e["token_cost"] += cost
            saved["hits"] += st.cached
            saved["prompt_tokens"] += st.saved_prompt_tokens
            saved["completion_tokens"] += st.saved_completion_tokens
            if saved_cost is None:
                if st.cached:
                    saved["cost"] = None
            elif saved["cost"] is not None:
                saved["cost"] += saved_cost
        saved["tokens"] = saved["prompt_tokens"] + saved["completion_tokens"]
        saved["cost"] = _round(saved["cost"])
        total: dict[str, Any] = {
            "requests": 0,
            "prompt_tokens": 0,
            "cached_prompt_tokens": 0,
            "completion_tokens": 0,
            "tokens": 0,
            "cost": 0.0,
        }
        unpriced = []
        for name, e in engines.items():
            price = self.prices.get(name, (None, ""))[0]
            e["held_s"] = round(held_s.get(name, 0.0), 3)
            e["hour_cost"] = _round(price.hour_cost(held_s.get(name, 0.0))) if price is not None else None
            e["cost"] = None if price is None else _round((e["token_cost"] or 0.0) + (e["hour_cost"] or 0.0))
            e["token_cost"] = _round(e["token_cost"])
            for k in ("requests", "prompt_tokens", "cached_prompt_tokens", "completion_tokens", "tokens"):
                total[k] += e[k]
            if e["cost"] is None:
                if e["tokens"]:
                    unpriced.append(name)
            else:
                total["cost"] += e["cost"]
        total["cost"] = _round(total["cost"])
        total["cost_complete"] = not unpriced
        total["unpriced_engines"] = unpriced
        out: dict[str, Any] = {
            "currency": "USD",
            "prices_as_of": default_price_table().as_of,
            "steps": steps,
            "engines": engines,
            "total": total,
            "cache_savings": saved,
        }
        if before:
            out["earlier_sessions"] = dict(before)
            earlier_cost = before.get("cost")
            out["run_total"] = {
                "tokens": total["tokens"] + int(before.get("tokens", 0)),
                "cost": _round(total["cost"] + float(earlier_cost or 0.0)),
                "cost_complete": total["cost_complete"] and bool(before.get("cost_complete", True)),
            }
        return out
