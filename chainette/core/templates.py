"""Jinja2 templates with strict undefined, compiled once, plus static variable analysis."""

from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache
from typing import Any, Mapping

import jinja2
from jinja2 import meta, nodes


@lru_cache(maxsize=1)
def environment() -> jinja2.Environment:
    return jinja2.Environment(
        undefined=jinja2.StrictUndefined,
        autoescape=False,
        keep_trailing_newline=True,
    )


@lru_cache(maxsize=1024)
def compile_template(source: str) -> jinja2.Template:
    """Compile ``source`` once; raises ``jinja2.TemplateSyntaxError`` on bad syntax."""
    return environment().from_string(source)


def render(source: str, context: Mapping[str, Any]) -> str:
    """Render a template string against ``context`` (strict: unknown names raise)."""
    return compile_template(source).render(context)


@dataclass(frozen=True)
class VariableUse:
    """A variable a template reads: ``name`` and, for ``{{name.attr}}``, the attribute."""

    name: str
    attr: str | None = None

    def __str__(self) -> str:
        return self.name if self.attr is None else f"{self.name}.{self.attr}"


def variables(source: str) -> list[VariableUse]:
    """Every top-level variable (and first attribute) a template reads, in source order."""
    ast = environment().parse(source)
    undeclared = meta.find_undeclared_variables(ast)
    uses: list[VariableUse] = []
    seen: set[tuple[str, str | None]] = set()
    attrs: dict[str, set[str]] = {}
    for node in ast.find_all(nodes.Getattr):
        if isinstance(node.node, nodes.Name) and node.node.name in undeclared:
            attrs.setdefault(node.node.name, set()).add(node.attr)
    for node in ast.find_all(nodes.Name):
        if node.name in undeclared and (node.name, None) not in seen:
            seen.add((node.name, None))
            uses.append(VariableUse(node.name))
    for name in sorted(attrs):
        for attr in sorted(attrs[name]):
            uses.append(VariableUse(name, attr))
    return uses


class FastTemplate:
    """A template made only of text and ``{{ name }}`` / ``{{ name.attr }}`` substitutions,
    rendered without building a jinja2 context (the common case, ~10x faster).

    Semantics match jinja2 with strict undefined: a name is looked up in the row's history
    first, then ``row_id``, then the current item's fields; an unknown name or attribute
    raises ``jinja2.UndefinedError``; values are rendered with ``str()``.
    """

    __slots__ = ("parts",)

    def __init__(self, parts: list[Any]) -> None:
        self.parts = parts  # str literals, or (name, attrs) tuples

    def render_row(self, row_id: str, item: Any, history: Mapping[str, Any]) -> str:
        out = []
        for part in self.parts:
            if part.__class__ is str:
                out.append(part)
                continue
            name, attrs = part
            if name in history:
                value = history[name]
            elif name == "row_id":
                value = row_id
            else:
                value = _item_field(item, name)
            for attr in attrs:
                value = _attr(value, attr, name)
            out.append(value if value.__class__ is str else str(value))
        return "".join(out)


def _item_field(item: Any, name: str) -> Any:
    if isinstance(item, dict):
        if name in item:
            return item[name]
    elif item is not None and name in getattr(type(item), "model_fields", ()):
        return getattr(item, name)
    raise jinja2.UndefinedError(f"'{name}' is undefined")


def _attr(value: Any, attr: str, name: str) -> Any:
    if value is None:
        raise jinja2.UndefinedError(f"'{name}' is None: it has no attribute '{attr}'")
    try:
        return getattr(value, attr)
    except AttributeError:
        pass
    try:
        return value[attr]
    except (TypeError, KeyError, IndexError):
        raise jinja2.UndefinedError(f"'{type(value).__name__} object' has no attribute '{attr}'") from None


def _lookup_path(node: Any) -> tuple[str, tuple[str, ...]] | None:
    attrs: list[str] = []
    while isinstance(node, nodes.Getattr):
        attrs.append(node.attr)
        node = node.node
    if isinstance(node, nodes.Name) and node.ctx == "load":
        return node.name, tuple(reversed(attrs))
    return None


@lru_cache(maxsize=1024)
def compile_fast(source: str) -> FastTemplate | None:
    """A :class:`FastTemplate` for ``source``, or ``None`` when it needs full jinja2."""
    ast = environment().parse(source)
    parts: list[Any] = []
    for stmt in ast.body:
        if not isinstance(stmt, nodes.Output):
            return None
        for node in stmt.nodes:
            if isinstance(node, nodes.TemplateData):
                parts.append(node.data)
                continue
            path = _lookup_path(node)
            if path is None:
                return None
            parts.append(path)
    return FastTemplate(parts)


def row_renderer(source: str) -> Any:
    """``fn(row_id, item, history) -> str`` for ``source``: a constant, a fast template, or jinja2."""
    fast = compile_fast(source)
    if fast is not None:
        if all(p.__class__ is str for p in fast.parts):
            text = "".join(fast.parts)
            return lambda row_id, item, history: text
        return fast.render_row
    template = compile_template(source)

    def render_jinja(row_id: str, item: Any, history: Mapping[str, Any]) -> str:
        from chainette.core.context import build_context

        return template.render(build_context(row_id, item, history))

    return render_jinja
