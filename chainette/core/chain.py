"""``Chain``: a named list of chain items (steps, applies, parallel branches) you can run."""

from __future__ import annotations

import warnings
from collections.abc import AsyncIterable, Iterable, Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any

from pydantic import BaseModel

from chainette.core import extensions
from chainette.core.branch import ChainItem, Parallel, normalize_items
from chainette.core.graph import Graph
from chainette.core.legacy import adapt_legacy_nodes
from chainette.core.validation import chain_input_model, check_chain, iter_steps
from chainette.errors import ChainValidationError, ChainWarning, DefinitionError, Problem

if TYPE_CHECKING:
    from chainette.core.result import RunResult


class Chain:
    """A runnable pipeline.

    ``steps`` is a list whose items are nodes (``Step``, ``ApplyNode``, ``Branch``) or a list
    of branches (a parallel group); ``a >> b`` and ``b | c`` build the same. A ``Graph`` built
    with ``.connect()`` is accepted too (``Chain(name, graph=Graph(roots=[a]))``).

    ``strict_input_models=True`` makes every declared ``input_model`` that differs from the
    previous output an error (by default only those that cannot work are; the others are
    warnings, see :mod:`chainette.core.input_models`).
    """

    def __init__(
        self,
        name: str,
        steps: Iterable[Any] | Any = None,
        *,
        graph: Graph | None = None,
        emoji: str = "",
        batch_size: int = 256,
        strict_input_models: bool = False,
    ) -> None:
        if (steps is None) == (graph is None):
            raise DefinitionError("Chain needs exactly one of steps=... or graph=...")
        self.name = name
        self.emoji = emoji
        self.batch_size = batch_size
        self.strict_input_models = strict_input_models
        items = graph.to_items() if graph is not None else normalize_items(steps)
        self.items: list[ChainItem] = adapt_legacy_nodes(items)  # original-style execute() nodes
        if not self.items:
            raise DefinitionError(f"Chain '{name}' has no steps")

    @property
    def steps(self) -> list[Any]:
        """The chain as the spec writes it: nodes, and lists of branches run in parallel (a lone
        branch as itself). The runtime works on :attr:`items`, where both are ``Parallel`` groups."""
        out: list[Any] = []
        for item in self.items:
            if isinstance(item, Parallel):
                out.append(item.branches[0] if len(item.branches) == 1 else list(item.branches))
            else:
                out.append(item)
        return out

    @property
    def graph(self) -> Graph:
        """The chain as a :class:`Graph` (nodes and edges), built from its items."""
        return Graph.from_items(self.items)

    @property
    def input_model(self) -> type[BaseModel] | None:
        """The model chain inputs are validated against (the first node's input model)."""
        return chain_input_model(self.items)

    def validate(self, *, engines: Mapping[str, Any] | None = None) -> None:
        """Raise :class:`ChainValidationError` listing every error found; warn
        (:class:`~chainette.errors.ChainWarning`) about each warning."""
        report = self.report(engines=engines)
        errors = [p for p in report if p.is_error]
        if errors:
            raise ChainValidationError(errors)
        for p in report:  # runs, but maybe not as meant: say so (shown once per place by Python)
            warnings.warn(f"chain '{self.name}': {p}", ChainWarning, stacklevel=2)

    def problems(self, *, engines: Mapping[str, Any] | None = None) -> list[Problem]:
        """Every error: structural ones, then the registered checks (unknown engines...).

        ``engines`` maps engine names to instances or configs that override the registry.
        Warnings are not included: see :meth:`warnings`.
        """
        return [p for p in self.report(engines=engines) if p.is_error]

    def warnings(self, *, engines: Mapping[str, Any] | None = None) -> list[Problem]:
        """What may not work as meant although the chain runs (e.g. an ``input_model`` that
        differs from the previous output but is validated at run time)."""
        return [p for p in self.report(engines=engines) if not p.is_error]

    def report(
        self, *, engines: Mapping[str, Any] | None = None, strict_input_models: bool | None = None
    ) -> list[Problem]:
        """Errors and warnings together (``Problem.severity`` tells them apart);
        ``strict_input_models`` overrides the chain's setting for this report."""
        strict = self.strict_input_models if strict_input_models is None else strict_input_models
        problems = check_chain(self.items, strict_input_models=strict)
        for check in extensions.chain_checks():
            problems += check(self, engines or {})
        return problems

    def engine_names(self) -> list[str]:
        """Engines used by the chain's steps, in execution order, without duplicates."""
        seen: dict[str, None] = {}
        for step in iter_steps(self.items):
            seen.setdefault(step.engine_name, None)
        return list(seen)

    # -- running -------------------------------------------------------------------
    def run(
        self,
        inputs: Iterable[Any],
        output_dir: str | Path | None = None,
        *,
        runner: str = "local",
        **options: Any,
    ) -> RunResult:
        """Run the chain (blocking) with ``runner`` (default ``"local"``).

        See :meth:`chainette.run.async_executor.AsyncExecutor.run` for the options.
        """
        return extensions.get_runner(runner).run(self, inputs, output_dir, **options)

    async def run_async(
        self,
        inputs: Iterable[Any] | AsyncIterable[Any],
        output_dir: str | Path | None = None,
        *,
        runner: str = "local",
        **options: Any,
    ) -> RunResult:
        """Awaitable form of :meth:`run`."""
        return await extensions.get_runner(runner).run_async(self, inputs, output_dir, **options)

    def __repr__(self) -> str:
        return f"Chain(name={self.name!r}, items={[i.id for i in self.items]})"
