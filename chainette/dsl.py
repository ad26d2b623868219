"""Fluent builders: ``step()``, ``apply()``, ``branch()``, ``parallel()`` and ``chain()``.

```python
from chainette.dsl import step, apply, branch, chain

pipeline = (
    step("extract", output=Facts).engine("gpt4").prompt("Extract facts: {{text}}")
    >> (branch("fr", step("translate_fr", output=Text).prompt("In French: {{extract.facts}}")).join("fr")
        | branch("es", step("translate_es", output=Text).prompt("In Spanish: {{extract.facts}}")).join("es"))
    >> step("summarize", output=Text).prompt("{{fr.text}} / {{es.text}}")
)
qa = chain("Translate", pipeline)
```

``a >> b`` builds a sequence, ``a | b`` a parallel group; ``.join(alias)`` merges a branch's
output back under ``alias``. A step without an output model produces :class:`Text`.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from pydantic import BaseModel

from chainette.core.apply import apply
from chainette.core.branch import Branch, JoinBranch, Parallel, Sequence
from chainette.core.chain import Chain
from chainette.core.step import Step
from chainette.errors import DefinitionTypeError

__all__ = ["FluentStep", "Text", "apply", "branch", "chain", "join", "parallel", "pipe", "step"]


class Text(BaseModel):
    """The default output of a DSL step that declares no model: free text."""

    text: str


class FluentStep(Step):
    """A :class:`Step` with chainable setters (each returns the step itself)."""

    def prompt(self, user: str, *, system: str | None = None) -> FluentStep:
        self.user_prompt = user
        if system is not None:
            self.user_system_prompt = system
        return self

    def system(self, text: str) -> FluentStep:
        self.user_system_prompt = text
        return self

    def output(self, model: type[BaseModel]) -> FluentStep:
        if not (isinstance(model, type) and issubclass(model, BaseModel)):
            raise DefinitionTypeError(f"step '{self.id}': output must be a pydantic BaseModel subclass")
        self.output_model = model
        return self

    def input(self, model: type[BaseModel]) -> FluentStep:
        self.input_model = model
        return self

    def with_sampling(self, **params: Any) -> FluentStep:
        from chainette.engine.protocol import SamplingParams

        self.sampling = SamplingParams(**{**self.sampling.model_dump(exclude_none=True), **params})
        return self

    def named(self, name: str) -> FluentStep:
        self.name = name
        return self


def step(
    id: str,
    output: type[BaseModel] | None = None,
    *,
    engine: str | None = None,
    prompt: str | None = None,
    system: str = "",
    input: type[BaseModel] | None = None,
    **kwargs: Any,
) -> FluentStep:
    """A step: ``step("qa", Answer).engine("gpt4").prompt("Q: {{text}}")``."""
    if prompt is not None:
        kwargs["user_prompt"] = prompt
    return FluentStep(
        id, output_model=output or Text, input_model=input, engine_name=engine, system_prompt=system, **kwargs
    )


def branch(name: str, *steps: Any) -> Branch:
    """A named branch; ``branch("fr", a, b)`` or ``branch("fr", [a, b])``. Use ``.join(alias)`` to merge."""
    items: list[Any] = []
    for s in steps:
        if isinstance(s, (list, tuple)) and not isinstance(s, Sequence):
            items.extend(s)
        else:
            items.append(s)
    return Branch(name, Sequence(items) if items else items)


def parallel(*branches: Any) -> Parallel:
    """Branches (or nodes) run concurrently on the same rows; same as ``a | b | c``."""
    if len(branches) == 1 and isinstance(branches[0], (list, tuple)):
        branches = tuple(branches[0])
    return Parallel(branches)


def chain(name: str, steps: Any, **kwargs: Any) -> Chain:
    """A :class:`Chain` from a DSL expression (``a >> b``) or a list of items."""
    return Chain(name=name, steps=steps, **kwargs)


def join(branch_: Branch | Iterable[Any], alias: str) -> JoinBranch:
    """``join(branch("fr", s), "fr")`` is ``branch("fr", s).join("fr")``."""
    if isinstance(branch_, Branch):
        return branch_.join(alias)
    return Sequence(branch_).join(alias)


def pipe(node: Any) -> Sequence:
    """Deprecated (the original Chainette's DSL): ``pipe(a) >> b`` is ``a >> b`` and
    ``(...).to_chain(name)`` is ``chain(name, ...)`` (see docs/migrating.md)."""
    import warnings

    warnings.warn(
        "chainette.dsl.pipe() is deprecated: nodes combine directly (a >> b, a | b); "
        "build the chain with chain(name, a >> b) or Chain(name, steps=...)",
        DeprecationWarning,
        stacklevel=2,
    )
    return Sequence.coerce(node)
