"""Prices of engines and the cost of tokens: pure arithmetic over a dated price table.

A :class:`Price` is USD per million tokens (input, cached input, output) and/or USD per
hour that a self-hosted server is held by a run. An engine's price is, first found:

1. ``price:`` in its config (the engines file, or ``register_engine(..., price={...})``);
2. the packaged table ``chainette/engine/prices.json`` (dated ``as_of``, sources named),
   for hosted APIs only: matched by the endpoint's host *and* the model name (a dated
   snapshot such as ``gpt-4o-mini-2024-07-18`` matches ``gpt-4o-mini``);
3. nothing: the price is unknown and costs are ``None`` ("price unknown"), never a guess.

Nothing here sends a request or writes a file; the table is read once from the package.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from pydantic import BaseModel, ConfigDict, Field, model_validator

PER_MILLION = 1_000_000
_SNAPSHOT_SUFFIX = re.compile(r"(-\d{4}-\d{2}-\d{2}|-\d{8}|-latest|-\d{3,4})?")


class Price(BaseModel):
    """USD per million tokens and/or per hour a server is held (every field optional, none negative).

    ``cached_input`` (tokens the provider served from its prompt cache) defaults to ``input``.
    Token prices need both ``input`` and ``output``; ``per_hour`` alone prices a self-hosted
    server whose tokens cost nothing more.
    """

    model_config = ConfigDict(extra="forbid", frozen=True)

    input: float | None = Field(default=None, ge=0)
    cached_input: float | None = Field(default=None, ge=0)
    output: float | None = Field(default=None, ge=0)
    per_hour: float | None = Field(default=None, ge=0)

    @model_validator(mode="after")
    def _complete(self) -> Price:
        if (self.input is None) != (self.output is None):
            raise ValueError("a token price needs both 'input' and 'output' (USD per 1M tokens)")
        if self.cached_input is not None and self.input is None:
            raise ValueError("'cached_input' needs 'input' and 'output' too")
        if self.input is None and self.per_hour is None:
            raise ValueError("give 'input' and 'output' (USD per 1M tokens), 'per_hour', or both")
        return self

    def token_cost(self, prompt_tokens: int, completion_tokens: int, cached_tokens: int = 0) -> float:
        """USD for these tokens (0 for a per-hour-only price)."""
        if self.input is None or self.output is None:
            return 0.0
        cached = min(max(cached_tokens, 0), prompt_tokens)
        cached_rate = self.input if self.cached_input is None else self.cached_input
        return (
            (prompt_tokens - cached) * self.input + cached * cached_rate + completion_tokens * self.output
        ) / PER_MILLION

    def discounted(self, factor: float) -> Price:
        """Token prices times ``factor`` (a batch discount); ``per_hour`` unchanged."""
        if factor == 1.0 or self.input is None:
            return self
        scale = lambda v: None if v is None else round(v * factor, 10)  # noqa: E731
        return Price(
            input=scale(self.input),
            cached_input=scale(self.cached_input),
            output=scale(self.output),
            per_hour=self.per_hour,
        )

    def hour_cost(self, seconds: float) -> float:
        """USD for holding the server ``seconds`` (0 without ``per_hour``)."""
        return (self.per_hour or 0.0) * max(seconds, 0.0) / 3600.0

    def describe(self) -> str:
        parts = []
        if self.input is not None:
            parts.append(f"${self.input:g} in")
            if self.cached_input is not None:
                parts.append(f"${self.cached_input:g} cached in")
            parts.append(f"${self.output:g} out per 1M tokens")
        if self.per_hour is not None:
            parts.append(f"${self.per_hour:g}/hour")
        return ", ".join(parts)


@dataclass(frozen=True)
class PriceTable:
    """The default prices of hosted models (see ``prices.json``)."""

    as_of: str
    sources: tuple[str, ...] = ()
    providers: dict[str, tuple[tuple[str, ...], dict[str, Price]]] = field(default_factory=dict)
    """provider -> (hosts, model -> price)"""
    batch_discounts: dict[str, float] = field(default_factory=dict)
    """host -> batch price / online price (a provider's ``batch_discount``: OpenAI's Batch API is 0.5)"""

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> PriceTable:
        providers = {}
        discounts = {}
        for name, entry in (data.get("providers") or {}).items():
            models = {m: Price(**p) for m, p in (entry.get("models") or {}).items()}
            providers[name] = (tuple(h.lower() for h in entry.get("hosts") or ()), models)
            if entry.get("batch_discount") is not None:
                discounts.update({h.lower(): float(entry["batch_discount"]) for h in entry.get("hosts") or ()})
        return cls(
            as_of=str(data.get("as_of", "")),
            sources=tuple(data.get("sources") or ()),
            providers=providers,
            batch_discounts=discounts,
        )

    def lookup(self, endpoint: str | None, model: str) -> tuple[Price, str] | None:
        """The price of ``model`` served at ``endpoint``, and where it comes from; ``None`` if unknown."""
        host = (urlsplit(endpoint).hostname or "").lower() if endpoint else ""
        if not host or not model:
            return None
        name = model.rsplit("/", 1)[-1] if model.startswith("models/") else model
        for provider, (hosts, models) in self.providers.items():
            if host not in hosts:
                continue
            found = _match(name, models)
            if found is not None:
                key, price = found
                return price, f"prices.json as of {self.as_of} ({provider} {key})"
        return None


def _match(model: str, models: dict[str, Price]) -> tuple[str, Price] | None:
    """Exact name, else the longest listed name that ``model`` extends by a snapshot suffix only."""
    if model in models:
        return model, models[model]
    best = None
    for key in models:
        if model.startswith(key) and _SNAPSHOT_SUFFIX.fullmatch(model[len(key) :]):
            if best is None or len(key) > len(best):
                best = key
    return (best, models[best]) if best is not None else None


DEFAULT_TABLE_PATH = Path(__file__).with_name("prices.json")


def load_price_table(path: str | Path) -> PriceTable:
    return PriceTable.from_dict(json.loads(Path(path).read_text()))


@lru_cache(maxsize=1)
def default_price_table() -> PriceTable:
    """The packaged table (read once)."""
    return load_price_table(DEFAULT_TABLE_PATH)


def resolve_price(cfg: Any, table: PriceTable | None = None) -> tuple[Price | None, str]:
    """``(price, source)`` of an engine config: its own ``price``, else the table, else ``(None, "unknown")``.

    An engine in batch mode (``mode: batch``) pays the batch price: its token prices times
    ``batch.discount``, or the table's ``batch_discount`` for its host (0.5 for OpenAI's
    Batch API), else 1 (see :func:`batch_discount`)."""
    table = table or default_price_table()
    own = getattr(cfg, "price", None)
    try:
        endpoint = cfg.resolved_endpoint()
    except Exception:  # an engine with no endpoint yet (managed): self-hosted, not in the table
        endpoint = None
    if own is not None:
        price, source = own, "engine config"
    else:
        hit = table.lookup(endpoint, getattr(cfg, "model", "") or "")
        if hit is None:
            return None, "unknown"
        price, source = hit
    if getattr(cfg, "mode", "online") != "batch":
        return price, source
    discount, why = batch_discount(cfg, endpoint, table)
    return price.discounted(discount), f"{source}; batch x{discount:g} ({why})"


def batch_discount(cfg: Any, endpoint: str | None, table: PriceTable | None = None) -> tuple[float, str]:
    """``(batch price / online price, where it comes from)`` for an engine in batch mode."""
    own = getattr(getattr(cfg, "batch", None), "discount", None)
    if own is not None:
        return float(own), "batch.discount"
    host = (urlsplit(endpoint).hostname or "").lower() if endpoint else ""
    found = (table or default_price_table()).batch_discounts.get(host)
    if found is not None:
        return found, f"prices.json batch_discount for {host}"
    return 1.0, "no batch discount known for this host: set batch.discount"


def cost_of(
    price: Price | None, prompt_tokens: int, completion_tokens: int, cached_tokens: int = 0, seconds: float = 0.0
) -> float | None:
    """USD for tokens and held time at ``price``; ``None`` when the price is unknown."""
    if price is None:
        return None
    return price.token_cost(prompt_tokens, completion_tokens, cached_tokens) + price.hour_cost(seconds)


def format_cost(cost: float | None, *, unknown: str = "price unknown") -> str:
    """``$0.0123`` style (more digits for small sums); ``unknown`` for ``None``."""
    if cost is None:
        return unknown
    if cost == 0:
        return "$0"
    if cost < 0.01:
        return f"${cost:.5f}"
    if cost < 100:
        return f"${cost:.4f}"
    return f"${cost:,.2f}"
