"""Per-row execution of chain items: steps, applies, parallel branches and joins.

Each input row runs through the items as its own task; a fan-out continues each child
concurrently; a parallel group runs its branches concurrently on forked histories. There
are no batch barriers: a slow row only delays itself.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import anyio
from pydantic import BaseModel, ValidationError

from chainette.core.apply import ApplyNode
from chainette.core.batch import BatchNode
from chainette.core.branch import Branch, ChainItem, JoinBranch, Parallel
from chainette.core.context import coerce
from chainette.core.input_models import resolve_input
from chainette.core.result import StepStats
from chainette.core.row import Row
from chainette.core.step import Step
from chainette.engine.backends.base import truncated
from chainette.engine.protocol import Completion, CompletionRequest, Engine
from chainette.errors import (
    ApplyError,
    ChainetteError,
    DefinitionTypeError,
    EngineError,
    ErrorRecord,
    OutputValidationError,
    TruncatedCompletionError,
    describe_validation_error,
)
from chainette.events import EventBus, ItemFailed
from chainette.run.batching import Batcher
from chainette.run.stop import RunStop
from chainette.utils.ids import child_row_id
from chainette.utils.json_schema import model_schema
from chainette.utils.lazy_import import lazy_module

jinja2 = lazy_module("jinja2")  # imported when a template needs it (see chainette/core/templates.py)


@dataclass
class RunState:
    """What runners share during one run."""

    get_engine: Callable[[str], Any]  # async (engine name) -> Engine
    stats: dict[str, StepStats]
    bus: EventBus
    cache: Any = None  # ItemCache | None
    cache_scope: Callable[[Step], dict[str, Any] | None] | None = None  # None: this step's replies are not cached
    budget: Any = None  # run.budget.Budget | None: asked before each request is sent
    costs: Any = None  # run.costs.CostMeter | None: prices the counters for progress events
    note_spent: Callable[[], Any] | None = None  # records what the run spent (before each commit)
    batchers: dict[str, Any] = field(default_factory=dict)  # batch node id -> run.batching.Batcher
    debug: Any = None  # run.debug.DebugSampler | None: shows the first rows of each step
    stop: RunStop = field(default_factory=RunStop)  # why the run stops reading rows, if it does
    metrics: Any = None  # io.metrics.RunMetrics | None: each answered request's latency and tokens


async def run_from(items: list[ChainItem], start: int, row: Row, state: RunState) -> list[Row] | None:
    """Run ``items[start:]`` on ``row``; return the final rows, or ``None`` if the row failed."""
    i = start
    while i < len(items):
        outs = await run_item(items[i], row, state)
        i += 1
        if outs is None:
            return None
        if len(outs) == 1:
            row = outs[0]
            continue
        if not outs:
            return []
        results: list[list[Row] | None] = [None] * len(outs)

        async def child(k: int, r: Row) -> None:
            # awaited by the task group below, within this iteration: `results` and `i` are this iteration's
            results[k] = await run_from(items, i, r, state)  # noqa: B023

        async with anyio.create_task_group() as tg:
            for k, r in enumerate(outs):
                tg.start_soon(child, k, r)
        return [r for res in results if res for r in res]
    return [row]


async def run_item(item: ChainItem, row: Row, state: RunState) -> list[Row] | None:
    if isinstance(item, Step):
        return await run_step(item, row, state)
    if isinstance(item, ApplyNode):
        return await run_apply(item, row, state)
    if isinstance(item, BatchNode):
        return await run_batch(item, row, state)
    if isinstance(item, Parallel):
        return await run_parallel(item, row, state)
    if isinstance(item, Branch):  # a lone branch in a chain: run it like a one-branch group
        return await run_parallel(Parallel([item]), row, state)
    raise DefinitionTypeError(f"cannot run {item!r}: not a Step, ApplyNode, Branch or parallel group")


def _fail(row: Row, node_id: str, exc: BaseException, state: RunState, attempts: int = 1) -> None:
    rec = ErrorRecord.from_exception(exc, row_id=row.row_id, step_id=node_id, attempts=attempts).to_dict()
    row.records.errors.append(rec)
    state.stats[node_id].errors += 1
    if state.bus:
        state.bus.publish(ItemFailed(node_id, row.row_id, rec["error_type"], rec["message"], attempts))


def _succeed(row: Row, node_id: str, value: Any, reasoning: str | None, state: RunState) -> Row:
    row.records.outputs.append((node_id, row.row_id, value, reasoning))
    state.stats[node_id].outputs += 1
    row.history[node_id] = value
    row.item = value
    return row


# -- steps ----------------------------------------------------------------------------------
_FENCE = re.compile(r"^\s*```(?:json)?\s*(.*?)\s*```\s*$", re.S)


def parse_output(text: str, model: type[BaseModel]) -> BaseModel:
    """Validate a reply against ``model``; tolerate code fences and prose around one JSON object."""
    try:
        return model.model_validate_json(text)
    except ValidationError as first:
        candidate = _extract_json(text)
        if candidate is None or candidate == text:
            raise first
        return model.model_validate_json(candidate)


def _extract_json(text: str) -> str | None:
    m = _FENCE.match(text)
    if m:
        return m.group(1)
    start, end = text.find("{"), text.rfind("}")
    if start != -1 and end > start:
        return text[start : end + 1]
    return None


async def run_step(step: Step, row: Row, state: RunState) -> list[Row] | None:
    stats = state.stats[step.id]
    stats.reached += 1
    try:
        item = resolve_input(row.item, row.history, step.input_model)
        messages = step.render_row(row.row_id, item, row.history)
    except jinja2.UndefinedError as exc:
        _fail(row, step.id, ChainetteError(f"template variable undefined for this row: {exc.message}"), state)
        return None
    except jinja2.TemplateError as exc:  # the sandbox refused something (SecurityError), a filter failed
        _fail(
            row,
            step.id,
            ChainetteError(f"template could not be rendered for this row: {type(exc).__name__}: {exc.message}"),
            state,
        )
        return None
    except ValidationError as exc:
        _fail(
            row,
            step.id,
            ChainetteError(f"input does not fit {_model_name(step.input_model)}: {describe_validation_error(exc)}"),
            state,
        )
        return None
    engine: Engine = await state.get_engine(step.engine_name)
    schema = model_schema(step.output_model)
    request = CompletionRequest(
        messages=messages,
        json_schema=schema,
        schema_name=step.output_model.__name__,
        sampling=step.sampling,
        output_model=step.output_model,
        step_id=step.id,
        row_id=row.row_id,
    )
    attempts = 0
    last_error: Exception | None = None
    for _ in range(step.max_validation_retries + 1):
        attempts += 1
        key = None
        completion: Completion | None = None
        scope = state.cache_scope(step) if state.cache is not None and state.cache_scope else None
        if scope is not None:
            key = state.cache.key(request, scope)
            completion = state.cache.get(key)
            if completion is not None:
                stats.cached += 1
                stats.saved_prompt_tokens += completion.usage.prompt_tokens
                stats.saved_completion_tokens += completion.usage.completion_tokens
        from_cache = completion is not None
        if completion is None:
            if state.stop.by is not None:  # the run is stopping: send nothing more; a resume runs this row
                stats.reached -= 1
                row.records.unfinished = True
                return None
            budget = state.budget
            ticket = None
            if budget is not None:
                ticket = await budget.admit(step.id, request.messages, step.sampling.max_tokens)
                if ticket is None:  # a cap could be passed: the row stops here, uncommitted (resumable)
                    stats.reached -= 1
                    row.records.unfinished = True
                    return None
            try:
                completion = await engine.complete(request)
            except EngineError as exc:
                if exc.stop is not None:  # a systemic fault stopped the engine: stop the run, row uncommitted
                    state.stop.request("engine", str(exc.stop))
                    stats.reached -= 1
                    row.records.unfinished = True
                    return None
                if state.debug is not None:
                    state.debug.sample(step, row.row_id, request.messages, attempt=attempts, error=str(exc))
                _fail(row, step.id, exc, state, attempts=getattr(exc, "attempts", attempts))
                return None
            finally:
                if ticket is not None:
                    budget.settle(ticket, completion.usage if completion is not None else None)
            usage = completion.usage
            stats.requests += 1
            stats.latency_s += completion.latency_s
            stats.prompt_tokens += usage.prompt_tokens
            stats.cached_prompt_tokens += usage.cached_prompt_tokens
            stats.completion_tokens += usage.completion_tokens
            if state.metrics is not None:
                state.metrics.observe(step.id, completion.latency_s, usage.completion_tokens)
        if state.debug is not None:
            state.debug.sample(
                step,
                row.row_id,
                request.messages,
                attempt=attempts,
                reply=completion.text,
                reasoning=completion.reasoning,
                cached=from_cache,
            )
        try:
            value = parse_output(completion.text, step.output_model)
        except ValidationError as exc:
            if completion.finish_reason == "length":  # cut off at max_tokens: a re-ask stops there too
                err = truncated(TruncatedCompletionError("cut off"), request, engine.name)
                _fail(row, step.id, err, state, attempts=attempts)
                return None
            detail = describe_validation_error(exc)
            last_error = OutputValidationError(
                f"reply does not fit {step.output_model.__name__}: {detail}; reply was: {completion.text[:300]!r}"
            )
            request = CompletionRequest(
                messages=[
                    *request.messages,
                    {"role": "assistant", "content": completion.text},
                    {
                        "role": "user",
                        "content": f"That reply is invalid ({detail}). "
                        "Answer again with only a JSON object that fits the schema.",
                    },
                ],
                json_schema=schema,
                schema_name=request.schema_name,
                sampling=step.sampling,
                output_model=step.output_model,
                step_id=step.id,
                row_id=row.row_id,
                attempt=attempts + 1,
            )
            continue
        if key is not None and not from_cache:
            state.cache.put(key, completion, step.engine_name)
        stats.done += 1
        return [_succeed(row, step.id, value, completion.reasoning, state)]
    _fail(row, step.id, last_error or OutputValidationError("no valid reply"), state, attempts=attempts)
    return None


# -- apply ----------------------------------------------------------------------------------
async def run_apply(node: ApplyNode, row: Row, state: RunState) -> list[Row] | None:
    stats = state.stats[node.id]
    stats.reached += 1
    try:
        item = resolve_input(row.item, row.history, node.input_model)
        if node.is_async:
            out = await node.fn(item)
        elif node.blocking:
            out = await anyio.to_thread.run_sync(node.fn, item)
        else:
            out = node.fn(item)
        if out is None:
            out = []
        elif not isinstance(out, (list, tuple)):
            raise ApplyError(
                f"apply '{node.id}' must return a list (empty = filter, several = fan-out), got {type(out).__name__}",
                node_id=node.id,
                row_id=row.row_id,
            )
        if node.output_model is not None:
            out = [coerce(o, node.output_model) for o in out]
    except Exception as exc:  # user code: any exception becomes this row's error record
        _fail(
            row,
            node.id,
            exc if isinstance(exc, ApplyError) else ApplyError.wrap(exc, node_id=node.id, row_id=row.row_id),
            state,
        )
        return None
    stats.done += 1
    return _emit(node, row, out, state)


def _emit(node: ApplyNode | BatchNode, row: Row, out: list[Any], state: RunState) -> list[Row]:
    """An apply's (or batch node's) result for one row: [] filters it, one value maps it (same
    row id), several fan it out (children ``<row_id>.0``, ``<row_id>.1``, ...)."""
    if not out:
        return []
    if len(out) == 1:
        return [_succeed(row, node.id, out[0], None, state)]
    children = []
    for k, value in enumerate(out):
        child = row.fork(row_id=child_row_id(row.row_id, k), item=value)
        children.append(_succeed(child, node.id, value, None, state))
    return children


# -- batch nodes ----------------------------------------------------------------------------
async def run_batch(node: BatchNode, row: Row, state: RunState) -> list[Row] | None:
    """Hand the row to the node's batcher; its entry is handled like an apply's return value."""
    stats = state.stats[node.id]
    stats.reached += 1
    try:
        item = resolve_input(row.item, row.history, node.input_model)
    except ValidationError as exc:
        _fail(
            row,
            node.id,
            ChainetteError(f"input does not fit {_model_name(node.input_model)}: {describe_validation_error(exc)}"),
            state,
        )
        return None
    batcher = state.batchers.get(node.id)
    if batcher is None:
        batcher = state.batchers[node.id] = Batcher(node)
    try:
        entry = await batcher.submit(row.row_id, item, row.history)
        out = [] if entry is None else list(entry) if isinstance(entry, (list, tuple)) else [entry]
        if node.output_model is not None:
            out = [coerce(o, node.output_model) for o in out]
    except Exception as exc:  # this row's entry was an error, or did not fit output_model
        _fail(
            row,
            node.id,
            exc if isinstance(exc, ChainetteError) else ApplyError.wrap(exc, node_id=node.id, row_id=row.row_id),
            state,
        )
        return None
    stats.done += 1
    return _emit(node, row, out, state)


# -- branches -------------------------------------------------------------------------------
async def run_parallel(group: Parallel, row: Row, state: RunState) -> list[Row] | None:
    results: list[list[Row] | None] = [None] * len(group.branches)

    async def one(k: int, branch: Branch) -> None:
        results[k] = await run_from(branch.steps, 0, row.fork(), state)

    if len(group.branches) == 1:
        await one(0, group.branches[0])
    else:
        async with anyio.create_task_group() as tg:
            for k, branch in enumerate(group.branches):
                tg.start_soon(one, k, branch)
    for branch, res in zip(group.branches, results, strict=True):  # merge in declaration order: deterministic
        if not isinstance(branch, JoinBranch):
            continue
        if res is None:
            return None  # the branch's own error record explains it; dependents are skipped
        if not res:
            row.history[branch.alias] = None
        elif len(res) == 1:
            row.history[branch.alias] = res[0].item
        else:
            row.history[branch.alias] = [r.item for r in res]
    return [row]


def _model_name(model: type[BaseModel] | None) -> str:
    return model.__name__ if model is not None else "the declared input model"
