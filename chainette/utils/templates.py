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
