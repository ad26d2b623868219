"""``Chain``: a named list of chain items (steps, applies, parallel branches) you can run."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any, AsyncIterable, Iterable, Mapping

from pydantic import BaseModel

from chainette.core import extensions
from chainette.core.branch import ChainItem, normalize_items
from chainette.core.graph import Graph
from chainette.core.validation import chain_input_model, iter_steps, validate_chain
from chainette.errors import ChainValidationError, Problem

if TYPE_CHECKING:
    from chainette.core.result import RunResult


class Chain:
    """A runnable pipeline.

    ``steps`` is a list whose items are nodes (``Step``, ``ApplyNode``, ``Branch``) or a list
    of branches (a parallel group); ``a >> b`` and ``b | c`` build the same. A ``Graph`` built
    with ``.connect()`` is accepted too (``Chain(name, graph=Graph(roots=[a]))``).
    """

    def __init__(
        self,
        name: str,
        steps: Iterable[Any] | Any = None,
        *,
        graph: Graph | None = None,
        emoji: str = "",
        batch_size: int = 256,
    ) -> None:
        if (steps is None) == (graph is None):
            raise ValueError("Chain needs exactly one of steps=... or graph=...")
        self.name = name
        self.emoji = emoji
        self.batch_size = batch_size
        self.items: list[ChainItem] = graph.to_items() if graph is not None else normalize_items(steps)
        if not self.items:
            raise ValueError(f"Chain '{name}' has no steps")

    # the spec calls the items `steps`
    @property
    def steps(self) -> list[ChainItem]:
        return self.items

    @property
    def graph(self) -> Graph:
        return Graph.from_items(self.items)

    @property
    def input_model(self) -> type[BaseModel] | None:
        """The model chain inputs are validated against (the first node's input model)."""
        return chain_input_model(self.items)

    def validate(self, *, engines: Mapping[str, Any] | None = None) -> None:
        """Raise :class:`ChainValidationError` listing every problem found (or return)."""
        problems = self.problems(engines=engines)
        if problems:
            raise ChainValidationError(problems)

    def problems(self, *, engines: Mapping[str, Any] | None = None) -> list[Problem]:
        """Every problem: structural ones, then the registered checks (unknown engines...).

        ``engines`` maps engine names to instances or configs that override the registry.
        """
        problems = validate_chain(self.items)
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
    ) -> "RunResult":
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
    ) -> "RunResult":
        """Awaitable form of :meth:`run`."""
        return await extensions.get_runner(runner).run_async(self, inputs, output_dir, **options)

    def __repr__(self) -> str:
        return f"Chain(name={self.name!r}, items={[i.id for i in self.items]})"
