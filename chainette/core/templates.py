"""Jinja2 templates in an immutable sandbox with strict undefined, compiled once, plus static
variable analysis and the static safety check chain validation reports.

Prompt templates come from chain files that travel (a YAML chain in a repository, a
colleague's chain), so they render in jinja2's ``ImmutableSandboxedEnvironment``: no
attribute starting with ``_``, no interpreter internals (frames, code, generator state),
no mutating methods, ``str.format`` checked. Values substituted into a template are data:
they are converted with ``str()`` and never parsed as templates themselves.
"""

from __future__ import annotations

import keyword
import re
import types
from collections.abc import Mapping
from dataclasses import dataclass
from functools import lru_cache
from typing import TYPE_CHECKING, Any, TypeGuard

from chainette.utils.lazy_import import lazy_module

if TYPE_CHECKING:
    import jinja2
    from jinja2 import meta, nodes
    from jinja2 import sandbox as jinja2_sandbox
else:  # imported on first use: templates of plain text and {{ name }} never need jinja2
    jinja2 = lazy_module("jinja2")
    meta = lazy_module("jinja2.meta")
    nodes = lazy_module("jinja2.nodes")
    jinja2_sandbox = lazy_module("jinja2.sandbox")


@lru_cache(maxsize=1)
def environment() -> jinja2.Environment:
    """The one environment prompts are parsed and rendered in (sandboxed, strict undefined)."""
    return jinja2_sandbox.ImmutableSandboxedEnvironment(
        undefined=jinja2.StrictUndefined,
        autoescape=False,
        keep_trailing_newline=True,
    )


@lru_cache(maxsize=1024)
def compile_template(source: str) -> jinja2.Template:
    """Compile ``source`` once; raises ``jinja2.TemplateSyntaxError`` on bad syntax."""
    return environment().from_string(source)


@dataclass(frozen=True)
class VariableUse:
    """A variable a template reads: ``name`` and, for ``{{name.attr}}``, the attribute."""

    name: str
    attr: str | None = None

    def __str__(self) -> str:
        return self.name if self.attr is None else f"{self.name}.{self.attr}"


_PLACEHOLDER = re.compile(r"\{\{\s*([A-Za-z_][A-Za-z0-9_]*(?:\.[A-Za-z_][A-Za-z0-9_]*)*)\s*\}\}")
_NEWLINES = re.compile(r"\r\n|\r|\n")
_NOT_PLAIN_NAMES = frozenset(keyword.kwlist) | {
    # jinja2's constants, operators and statement words, and the names its templates define
    *("true", "false", "none", "elif", "endif", "endfor", "block", "endblock", "extends", "include"),
    *("macro", "endmacro", "call", "endcall", "filter", "endfilter", "set", "endset", "without"),
    *("context", "ignore", "missing", "raw", "endraw", "scoped", "required", "recursive", "loop"),
    *("self", "super", "caller", "varargs", "kwargs", "namespace", "range", "dict", "lipsum", "cycler", "joiner"),
}


@lru_cache(maxsize=1024)
def plain_parts(source: str) -> tuple[Any, ...] | None:
    """``source`` as text and ``(name, attrs)`` parts when it is only text and ``{{ name }}`` /
    ``{{ name.attr }}`` placeholders whose attributes the fast path allows: exactly what jinja2
    parses such a template to (its text with newlines normalised to ``\\n``), found without
    importing jinja2. ``None`` for anything else (tags, comments, filters, whitespace control,
    literals, a reserved name, a ``{`` against a placeholder): jinja2 parses those."""
    parts: list[Any] = []
    pos = 0
    for m in _PLACEHOLDER.finditer(source):
        text = source[pos : m.start()]
        if not _plain_text(text) or text.endswith("{"):
            return None
        if text:
            parts.append(_NEWLINES.sub("\n", text))
        name, *attrs = m.group(1).split(".")
        if name in _NOT_PLAIN_NAMES or not all(_fast_attr_ok(a) and a not in _NOT_PLAIN_NAMES for a in attrs):
            return None
        parts.append((name, tuple(attrs)))
        pos = m.end()
    tail = source[pos:]
    if not _plain_text(tail):
        return None
    if tail:
        parts.append(_NEWLINES.sub("\n", tail))
    return tuple(parts)


def _plain_text(text: str) -> bool:
    return "{{" not in text and "{%" not in text and "{#" not in text


def variables(source: str) -> list[VariableUse]:
    """Every top-level variable (and first attribute) a template reads, in source order."""
    plain = plain_parts(source)
    if plain is not None:
        paths = [p for p in plain if p.__class__ is tuple]
        names = list(dict.fromkeys(name for name, _ in paths))
        firsts = sorted({(name, attrs[0]) for name, attrs in paths if attrs})
        return [VariableUse(n) for n in names] + [VariableUse(n, a) for n, a in firsts]
    ast = environment().parse(source)
    undeclared = meta.find_undeclared_variables(ast)
    uses: list[VariableUse] = []
    seen: set[tuple[str, str | None]] = set()
    attrs: dict[str, set[str]] = {}
    for node in ast.find_all(nodes.Getattr):
        if isinstance(node.node, nodes.Name) and node.node.name in undeclared:
            attrs.setdefault(node.node.name, set()).add(node.attr)
    for name_node in ast.find_all(nodes.Name):
        if name_node.name in undeclared and (name_node.name, None) not in seen:
            seen.add((name_node.name, None))
            uses.append(VariableUse(name_node.name))
    for name in sorted(attrs):
        for attr in sorted(attrs[name]):
            uses.append(VariableUse(name, attr))
    return uses


def unsafe_uses(source: str) -> list[str]:
    """The names in ``source`` that reach for Python internals, found statically (for validation).

    The rule: a name starting with ``_`` used as an attribute (``{{ text.__class__ }}``), as a
    constant subscript (``{{ x['__dict__'] }}``) or as a constant argument of a filter, test or
    call (``{{ x|attr('__class__') }}``, ``{{ xs|map(attribute='__class__') }}``). Every route
    from a value to Python internals (classes, globals, builtins, ``__subclasses__``) goes
    through such a name, and the sandbox refuses those at render time; validation reports them
    before the run instead of failing every row. (The rule also refuses the rare legitimate use,
    a dict key starting with ``_``.) What cannot be seen statically, a name built at render time
    (``x[key]``), and the internals that need no ``_`` (a generator's ``gi_frame``) are refused
    by the sandbox when the template renders. Raises ``jinja2.TemplateSyntaxError`` on bad syntax.
    """
    if plain_parts(source) is not None:  # its attributes passed the fast path's rule: none private
        return []
    ast = environment().parse(source)
    found: list[str] = []

    def note(text: str) -> None:
        if text not in found:
            found.append(text)

    def private(node: Any) -> TypeGuard[nodes.Const]:
        return isinstance(node, nodes.Const) and isinstance(node.value, str) and node.value.startswith("_")

    for node in ast.find_all((nodes.Getattr, nodes.Getitem, nodes.Filter, nodes.Test, nodes.Call)):
        if isinstance(node, nodes.Getattr):
            if node.attr.startswith("_"):
                note(f".{node.attr}")
        elif isinstance(node, nodes.Getitem):
            if private(node.arg):
                note(f"[{node.arg.value!r}]")
        elif isinstance(node, (nodes.Filter, nodes.Test, nodes.Call)):  # all that is left
            for arg in [*node.args, *(kw.value for kw in node.kwargs)]:
                if private(arg):
                    note(repr(arg.value))
    return sorted(found, key=lambda text: source.find(text.strip(".[]'")))  # in source order


_SLOW_ATTR_PREFIXES = ("_", "gi_", "cr_", "ag_", "tb_", "f_", "co_", "func_", "im_")
"""Attributes the fast path leaves to the sandbox: private/dunder names and the prefixes of
interpreter internals (generators, coroutines, tracebacks, frames, code objects)."""

_OPAQUE_TYPES = frozenset({types.CodeType, types.FrameType, types.TracebackType})
"""Objects on which the sandbox allows no attribute at all (these types cannot be subclassed)."""


def _fast_attr_ok(attr: str) -> bool:
    return attr != "mro" and not attr.startswith(_SLOW_ATTR_PREFIXES)


class FastTemplate:
    """A template made only of text and ``{{ name }}`` / ``{{ name.attr }}`` substitutions,
    rendered without building a jinja2 context (the common case, ~10x faster).

    Semantics match the sandboxed jinja2 environment with strict undefined: a name is
    looked up in the row's history first, then ``row_id``, then the current item's fields;
    an unknown name or attribute raises ``jinja2.UndefinedError``; values are rendered with
    ``str()``. Only attributes the sandbox allows on every object are compiled here (see
    ``_fast_attr_ok``); the one remaining sandbox rule, that code, frame and traceback
    objects expose nothing, is checked on the value (a set lookup).
    """

    __slots__ = ("parts",)

    def __init__(self, parts: list[Any]) -> None:
        self.parts = parts  # str literals, or (name, attrs) tuples

    def render_row(self, row_id: str, item: Any, history: Mapping[str, Any]) -> str:
        out = []
        opaque = _OPAQUE_TYPES
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
                if value.__class__ in opaque:
                    value = _attr(value, attr, name)  # raises SecurityError
                    continue
                try:
                    value = getattr(value, attr)
                except AttributeError:
                    value = _attr(value, attr, name)  # a mapping's key, or UndefinedError
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
    if value.__class__ in _OPAQUE_TYPES:
        raise jinja2_sandbox.SecurityError(
            f"access to attribute '{attr}' of '{type(value).__name__}' object is unsafe."
        )
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
    plain = plain_parts(source)
    if plain is not None:
        return FastTemplate(list(plain))
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
            if path is None or not all(_fast_attr_ok(attr) for attr in path[1]):
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
