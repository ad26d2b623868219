"""Dry run: what a run would send, how many tokens, what it would cost and take, before it starts.

:func:`dry_run` validates the chain, then runs a few sample rows through it with every engine
replaced by a recording fake (no request leaves the process): the fake records each step's
rendered messages and answers with a schema-valid placeholder, so later steps, branches,
joins and apply fan-out render as they would. Each recorded prompt is counted with the
engine's own tokenizer where one is available (:mod:`chainette.engine.tokens`), else
estimated (and labelled so). Completion tokens are the step's ``max_tokens`` (an upper
bound) or, with ``sample_run=N``, the mean of N rows really run (real requests; their
replies land in the item cache, so the real run does not pay for them twice). The report
projects requests, tokens, cost and duration for the whole input.

Duration needs a measured latency (``sample_run``) or a rate limit: per engine it is the
larger of (requests x mean latency / max_in_flight) and what ``requests_per_minute`` /
``tokens_per_minute`` allow; engines work concurrently, so the run takes the longest of them.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable, Iterable, Mapping
from dataclasses import asdict, dataclass, field
from itertools import islice
from typing import Any

from chainette.core.chain import Chain
from chainette.core.row import SKIPPED
from chainette.core.validation import iter_steps
from chainette.engine.fake import fill_schema
from chainette.engine.protocol import Completion, CompletionRequest
from chainette.engine.tokens import EstimateCounter, TokenCounter, counter_for
from chainette.events import EventBus
from chainette.run.engines import RunEngines


@dataclass
class StepEstimate:
    """One LLM step's projection (token counts are per request unless named ``projected_``)."""

    step_id: str
    engine: str
    sample_requests: int
    requests_per_input: float
    prompt_tokens: float
    prompt_method: str
    prompt_exact: bool
    completion_tokens: float | None
    completion_method: str
    price: dict[str, float] | None
    price_source: str
    requests: int
    projected_prompt_tokens: int
    projected_completion_tokens: int | None
    input_cost: float | None
    cost: float | None
    """``None`` when the price or the completion size is unknown"""
    latency_s: float | None
    first_messages: list[dict[str, Any]] = field(default_factory=list)


@dataclass
class DryRunReport:
    chain: str
    total_inputs: int
    sample_rows: int
    sample_run_rows: int
    steps: list[StepEstimate]
    prompt_tokens: int
    completion_tokens: int | None
    tokens: int | None
    cost: float | None
    cost_is_upper_bound: bool
    duration_s: float | None
    duration_basis: str
    hour_costs: dict[str, float | None]
    sample_errors: list[dict[str, Any]]
    requests_sent: int
    """completion requests sent (0 unless ``sample_run``)"""
    notes: list[str]

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


class _Recorder:
    """Fake engines that record each step's first request per row and answer a placeholder."""

    def __init__(self) -> None:
        self.requests: dict[str, dict[str, list[dict[str, Any]]]] = {}  # step -> row -> messages

    def engine(self, name: str) -> Any:
        recorder = self

        class RecordingEngine:
            max_in_flight = 64

            def __init__(self) -> None:
                self.name = name

            async def complete(self, request: CompletionRequest) -> Completion:
                rows = recorder.requests.setdefault(request.step_id, {})
                rows.setdefault(request.row_id, [dict(m) for m in request.messages])
                digest = hashlib.blake2b(f"{request.step_id}\0{request.row_id}".encode(), digest_size=16).hexdigest()
                out = fill_schema(request.json_schema, digest) if request.json_schema else "placeholder"
                return Completion(text=out if isinstance(out, str) else json.dumps(out), model="dry-run")

            async def aclose(self) -> None:
                return None

        return RecordingEngine()


def _running_endpoint(name: str) -> str | None:
    from chainette.engine.server_state import find

    try:
        info = find(name)
    except Exception:
        return None
    return info.endpoint if info is not None else None


def dry_run(
    chain: Chain,
    inputs: Iterable[Any],
    *,
    total: int | None = None,
    count_rows: Callable[[], int] | None = None,
    sample: int = 3,
    sample_run: int = 0,
    engines: Mapping[str, Any] | None = None,
    counters: Mapping[str, TokenCounter] | None = None,
    cache: Any = True,
) -> DryRunReport:
    """Project a run of ``chain`` over ``inputs`` without running it (see the module docstring).

    ``total`` is the number of input rows if known (else ``count_rows()`` is called, else the
    rows are counted); ``counters`` overrides the token counter per engine name.
    """
    overrides = dict(engines or {})
    sample, sample_run = max(1, int(sample)), max(0, int(sample_run))
    run_engines = RunEngines(overrides)
    names = chain.engine_names()
    notes: list[str] = []
    _validate(chain, overrides, run_engines, names, notes, need_keys=bool(sample_run))
    it = (r for r in inputs if r is not SKIPPED)
    head = list(islice(it, max(sample, sample_run)))
    if total is None:
        total = count_rows() if count_rows is not None else len(head) + sum(1 for _ in it)

    # 1. render: the sample through the chain, every engine a recording fake
    recorder = _Recorder()
    rendered = chain.run(head[:sample], engines={n: recorder.engine(n) for n in names}, cache=False, events=EventBus())
    sample_errors = list(rendered.errors)
    n_sample = len(head[:sample])

    # 2. optionally a real sample run (in memory; the item cache keeps its replies)
    measured: dict[str, Any] = {}
    requests_sent = 0
    n_run = len(head[:sample_run]) if sample_run else 0
    if n_run:
        result = chain.run(head[:n_run], engines=overrides or None, cache=cache, events=EventBus())
        measured = result.step_stats
        requests_sent = sum(st.requests for st in measured.values())

    # 3. per step
    counters = dict(counters or {})
    steps: list[StepEstimate] = []
    for step in iter_steps(chain.items):
        name = step.engine_name
        cfg = run_engines.config(name)
        counter = counters.get(name)
        if counter is None:
            endpoint = None
            if cfg is not None and cfg.is_managed:
                endpoint = _running_endpoint(name)
            counter = counter_for(cfg, endpoint) if cfg is not None else EstimateCounter(why="engine object")
            counters[name] = counter
        recorded = recorder.requests.get(step.id, {})
        prompts = [counter.count(m) for m in recorded.values()]
        first = next(iter(recorded.values()), [])
        prompt_mean = sum(prompts) / len(prompts) if prompts else 0.0
        prompt_method, prompt_exact = counter.label, counter.exact
        per_input = len(recorded) / n_sample if n_sample else 0.0
        latency = None
        st = measured.get(step.id) if measured else None
        answered = (st.requests + st.cached) if st is not None else 0
        if st is not None and answered:
            per_input = answered / n_run
            prompt_mean = (st.prompt_tokens + st.saved_prompt_tokens) / answered
            prompt_method, prompt_exact = f"sample run of {n_run} row(s) (the server's usage)", True
            completion: float | None = (st.completion_tokens + st.saved_completion_tokens) / answered
            completion_method = f"sample run of {n_run} row(s) (mean)"
            latency = st.latency_s / st.requests if st.requests else None
        elif step.sampling.max_tokens is not None:
            completion = float(step.sampling.max_tokens)
            completion_method = "max_tokens (upper bound)"
        else:
            completion = None
            completion_method = "unknown: set max_tokens on the step or measure with --sample-run N"
        price, source = run_engines.price(name)
        requests = round(total * per_input)
        proj_prompt = round(requests * prompt_mean)
        proj_completion = round(requests * completion) if completion is not None else None
        input_cost = price.token_cost(proj_prompt, 0) if price is not None else None
        cost = (
            price.token_cost(proj_prompt, proj_completion)
            if price is not None and proj_completion is not None
            else None
        )
        steps.append(
            StepEstimate(
                step_id=step.id,
                engine=name,
                sample_requests=len(recorded),
                requests_per_input=round(per_input, 4),
                prompt_tokens=round(prompt_mean, 1),
                prompt_method=prompt_method,
                prompt_exact=prompt_exact,
                completion_tokens=round(completion, 1) if completion is not None else None,
                completion_method=completion_method,
                price=price.model_dump(exclude_none=True) if price is not None else None,
                price_source=source,
                requests=requests,
                projected_prompt_tokens=proj_prompt,
                projected_completion_tokens=proj_completion,
                input_cost=input_cost,
                cost=cost,
                latency_s=latency,
                first_messages=first,
            )
        )

    # 4. duration, per-hour costs, totals
    duration, basis = _duration(steps, run_engines, names)
    hour_costs: dict[str, float | None] = {}
    for name in names:
        price, _ = run_engines.price(name)
        if price is not None and price.per_hour:
            hour_costs[name] = price.hour_cost(duration) if duration is not None else None
    prompt_total = sum(s.projected_prompt_tokens for s in steps)
    completions = [s.projected_completion_tokens for s in steps]
    completion_total = None if any(c is None for c in completions) else sum(c for c in completions if c is not None)
    costs = [s.cost for s in steps] + list(hour_costs.values())
    cost = None if any(c is None for c in costs) else sum(c for c in costs if c is not None)
    if any(s.price is None for s in steps):
        unpriced = sorted({s.engine for s in steps if s.price is None})
        notes.append(f"price unknown for engine(s) {', '.join(unpriced)}: add `price:` to them in the engines file")
    if any(not s.prompt_exact for s in steps):
        notes.append("prompt tokens marked 'estimate' are not from the model's tokenizer")
    if sample_errors:
        notes.append(f"{len(sample_errors)} sample row(s) failed to render or validate (see sample_errors)")
    bound = any(s.completion_method.startswith("max_tokens") for s in steps)
    return DryRunReport(
        chain=chain.name,
        total_inputs=total,
        sample_rows=n_sample,
        sample_run_rows=n_run,
        steps=steps,
        prompt_tokens=prompt_total,
        completion_tokens=completion_total,
        tokens=prompt_total + completion_total if completion_total is not None else None,
        cost=cost,
        cost_is_upper_bound=bound,
        duration_s=duration,
        duration_basis=basis,
        hour_costs=hour_costs,
        sample_errors=sample_errors[:20],
        requests_sent=requests_sent,
        notes=notes,
    )


def _validate(
    chain: Chain,
    overrides: Mapping[str, Any],
    engines: RunEngines,
    names: list[str],
    notes: list[str],
    *,
    need_keys: bool,
) -> None:
    """Every problem of the chain, except (when nothing is sent) an engine's missing API key,
    which becomes a note: a plain dry run needs no credentials."""
    from chainette.errors import ChainValidationError, UnknownEngineError
    from chainette.run.preflight import missing_key_message

    problems = chain.problems(engines=overrides)
    if not need_keys:
        for name in names:
            try:
                cfg = engines.config(name)
            except UnknownEngineError:
                continue
            message = missing_key_message(cfg) if cfg is not None else None
            if message and any(p.message == message for p in problems):
                problems = [p for p in problems if p.message != message]
                notes.append(f"engine '{name}' has no API key yet: the real run will need it ({message})")
    if problems:
        raise ChainValidationError(problems)


def _duration(steps: list[StepEstimate], engines: RunEngines, names: list[str]) -> tuple[float | None, str]:
    """Seconds the whole input would take (see the module docstring) and how it was found."""
    longest: float | None = 0.0
    bases: set[str] = set()
    for name in names:
        mine = [s for s in steps if s.engine == name]
        if not mine or not any(s.requests for s in mine):
            continue
        cfg = engines.config(name)
        seconds: float | None = None
        if all(s.latency_s is not None or not s.requests for s in mine):
            busy = sum(s.requests * (s.latency_s or 0.0) for s in mine) / max(1, engines.max_in_flight(name))
            seconds = busy
            bases.add("measured latency")
        rpm = getattr(cfg, "requests_per_minute", None) if cfg is not None else None
        tpm = getattr(cfg, "tokens_per_minute", None) if cfg is not None else None
        if rpm:
            seconds = max(seconds or 0.0, sum(s.requests for s in mine) / rpm * 60)
            bases.add("requests_per_minute")
        if tpm:
            tokens = sum(s.projected_prompt_tokens + (s.projected_completion_tokens or 0) for s in mine)
            seconds = max(seconds or 0.0, tokens / tpm * 60)
            bases.add("tokens_per_minute")
        if seconds is None:
            return None, "unknown: measure latency with --sample-run N (or set requests_per_minute)"
        if "measured latency" not in bases:
            bases.add("a lower bound")
        longest = max(longest or 0.0, seconds)
    return longest, ", ".join(sorted(bases)) or "no requests"
