"""Static chain validation: every problem at once, before any request is sent.

Checks: duplicate ids, reserved names, ids and aliases that are not names (see
:mod:`chainette.core.names`), input/output model compatibility between connected nodes,
template syntax, unsafe templates (names starting with ``_``, see
:func:`chainette.core.templates.unsafe_uses`), and template variables that cannot resolve
(naming the step and the variable).
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

from pydantic import BaseModel

from chainette.core.apply import ApplyNode
from chainette.core.branch import ChainItem, JoinBranch, Parallel
from chainette.core.context import RESERVED_NAMES
from chainette.core.input_models import check_input
from chainette.core.names import RUN_DIR_NAMES, name_problem
from chainette.core.step import Step
from chainette.core.templates import unsafe_uses, variables
from chainette.errors import Problem
from chainette.utils.lazy_import import lazy_module

jinja2 = lazy_module("jinja2")  # imported when a template needs it (see chainette/core/templates.py)

_UNKNOWN = object()  # a name whose model is not known statically (apply without output_model)


def iter_nodes(items: list[ChainItem]) -> Iterator[Any]:
    """Every node in execution order, descending into branches."""
    for item in items:
        if isinstance(item, Parallel):
            for branch in item.branches:
                yield branch
                yield from iter_nodes(branch.steps)
        else:
            yield item


def iter_steps(items: list[ChainItem]) -> Iterator[Step]:
    return (n for n in iter_nodes(items) if isinstance(n, Step))


def chain_input_model(items: list[ChainItem]) -> type[BaseModel] | None:
    first = items[0]
    while isinstance(first, Parallel):
        first = first.branches[0].steps[0]
    return first.input_model


def validate_chain(items: list[ChainItem], *, strict_input_models: bool = False) -> list[Problem]:
    """Every structural error of a chain: ids, input/output models, templates (no warnings).

    Problems that need the runtime (unknown engines, missing API keys) are found by the
    checks registered in :mod:`chainette.core.extensions` (see ``Chain.problems``).
    """
    return [p for p in check_chain(items, strict_input_models=strict_input_models) if p.is_error]


def check_chain(items: list[ChainItem], *, strict_input_models: bool = False) -> list[Problem]:
    """Every structural error and warning of a chain (see :mod:`chainette.core.input_models`
    for which input-model mismatches are warnings)."""
    problems: list[Problem] = []
    _check_ids(items, problems)
    _check_names(items, problems)
    input_model = chain_input_model(items)
    scope: dict[str, Any] = {"chain_input": input_model or _UNKNOWN}
    _walk(items, scope, input_model, "input", problems, strict_input_models)
    return problems


def _check_ids(items: list[ChainItem], problems: list[Problem]) -> None:
    """Ids and join aliases are unique, except that a join alias may equal the id of a node
    inside its own branch (as the spec's examples write): that node is visible only inside
    the branch, the alias only after it, so a template name never means two things."""
    seen: set[str] = set()
    inner_alias: dict[int, str] = {}  # id(node inside a join branch) -> that branch's alias
    for node in iter_nodes(items):
        names = {node.id}
        if isinstance(node, JoinBranch):
            names.add(node.alias)  # a branch may share its name with its alias
            for inner in iter_nodes(node.steps):
                inner_alias.setdefault(id(inner), node.alias)
        for name in sorted(names):
            if name in RESERVED_NAMES:
                problems.append(Problem(node.id, f"'{name}' is reserved for templates; choose another id"))
            if name in seen and inner_alias.get(id(node)) != name:
                problems.append(Problem(node.id, f"duplicate id '{name}' (ids and join aliases must be unique)"))
            seen.add(name)


def _check_names(items: list[ChainItem], problems: list[Problem]) -> None:
    """The id rule again (ids can be reassigned after construction), and the run directory's own
    folder names, which a step's or apply's output folder must not take."""
    for node in iter_nodes(items):
        labels = [("id", node.id)]
        if isinstance(node, JoinBranch):
            labels.append(("join alias", node.alias))
        for label, value in labels:
            problem = name_problem(value)
            if problem:
                problems.append(
                    Problem(
                        str(node.id),
                        f"{label} {value!r} is not a valid name ({problem}); "
                        "use letters, digits and '_' (see docs/security.md)",
                    )
                )
        if getattr(node, "kind", "") in ("step", "apply", "batch") and node.id in RUN_DIR_NAMES:
            problems.append(
                Problem(
                    node.id,
                    f"'{node.id}' is a folder the run directory uses itself "
                    f"({', '.join(RUN_DIR_NAMES)}); choose another id",
                )
            )


def _walk(
    items: list[ChainItem],
    scope: dict[str, Any],
    current: Any,
    current_from: str,
    problems: list[Problem],
    strict: bool = False,
) -> tuple[Any, str]:
    for item in items:
        if isinstance(item, Parallel):
            joins: list[tuple[str, Any]] = []
            for branch in item.branches:
                out, _ = _walk(branch.steps, dict(scope), current, current_from, problems, strict)
                if isinstance(branch, JoinBranch):
                    joins.append((branch.alias, out))
            for alias, model in joins:
                scope[alias] = model
            continue
        problem = check_input(item, current, current_from, scope, strict=strict)
        if problem is not None:
            problems.append(problem)
        if isinstance(item, Step):
            visible_item = item.input_model or current
            _check_templates(item, scope, visible_item, problems)
        produced = (
            item.output_model
            if item.output_model is not None
            else (_UNKNOWN if isinstance(item, ApplyNode) or getattr(item, "kind", "") == "batch" else current)
        )
        scope[item.id] = produced
        current, current_from = produced, item.id
    return current, current_from


def _check_templates(step: Step, scope: dict[str, Any], item_model: Any, problems: list[Problem]) -> None:
    item_names: set[str] | None
    if isinstance(item_model, type) and issubclass(item_model, BaseModel):
        item_names = set(item_model.model_fields)
    else:
        item_names = None  # unknown: cannot check top-level names
    for label, source in (("system_prompt", step.system_prompt), ("user_prompt", step.user_prompt)):
        try:
            uses = variables(source)
        except jinja2.TemplateSyntaxError as exc:
            problems.append(
                Problem(step.id, f"{label} has a template syntax error at line {exc.lineno}: {exc.message}")
            )
            continue
        unsafe = unsafe_uses(source)
        if unsafe:
            problems.append(
                Problem(
                    step.id,
                    f"{label} is unsafe: it uses {', '.join(unsafe)}; names starting with "
                    "'_' reach Python internals and the template sandbox refuses them",
                )
            )
        for use in uses:
            msg = _resolve(use.name, use.attr, scope, item_names, item_model)
            if msg:
                problems.append(Problem(step.id, f"{label} uses '{{{{ {use} }}}}': {msg}"))


def _resolve(
    name: str, attr: str | None, scope: dict[str, Any], item_names: set[str] | None, item_model: Any
) -> str | None:
    if name == "row_id":
        return None
    if name in scope:
        model = scope[name]
    elif item_names is None:
        return None
    elif name in item_names:
        if attr is None:
            return None
        model = _field_model(item_model, name)
    else:
        known = sorted(set(scope) | (item_names or set()) | {"row_id"})
        return f"'{name}' is not defined here. Available: {', '.join(known)}"
    if attr is None or model is _UNKNOWN or model is None:
        return None
    if isinstance(model, type) and issubclass(model, BaseModel) and attr not in model.model_fields:
        return f"'{name}' ({model.__name__}) has no field '{attr}'. Fields: {', '.join(model.model_fields)}"
    return None


def _field_model(model: Any, name: str) -> Any:
    ann = model.model_fields[name].annotation
    return ann if isinstance(ann, type) and issubclass(ann, BaseModel) else _UNKNOWN
