"""``Step``: one LLM call with a typed input and a typed, schema-enforced output."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from pydantic import BaseModel

from chainette.core.names import check_name
from chainette.core.node import Node
from chainette.core.sampling import SamplingParams
from chainette.core.templates import row_renderer
from chainette.errors import DefinitionTypeError
from chainette.utils.json_schema import generate_json_output_prompt

DEFAULT_ENGINE_NAME = "default"
"""The engine a step uses when it names none. Unless an engine is registered under this name
(e.g. ``name: default`` in an engines.yml pointing at OpenAI), it is the embedded llama.cpp
server, like the built-in ``local`` engine."""


class Step(Node):
    """One LLM call per row.

    Templates are jinja2 with strict undefined. They see the current input's fields at top
    level, ``{{chain_input.field}}``, ``{{<step_id>.field}}`` for every earlier step,
    ``{{<alias>.field}}`` for joined branches and ``{{row_id}}``.

    The system prompt gets a JSON-schema instruction generated from ``output_model``
    unless ``output_format_instruction`` is given (``""`` adds none).
    """

    kind = "step"
    output_model: type[BaseModel]  # required (a Node's may be None)

    def __init__(
        self,
        id: str,
        *,
        output_model: type[BaseModel],
        input_model: type[BaseModel] | None = None,
        name: str | None = None,
        engine_name: str | None = None,
        sampling: SamplingParams | Mapping[str, Any] | None = None,
        system_prompt: str = "",
        user_prompt: str = "{{ text }}",
        output_format_instruction: str | None = None,
        max_validation_retries: int = 2,
        emoji: str = "",
    ) -> None:
        super().__init__()
        check_name(id, "step id")
        if not (isinstance(output_model, type) and issubclass(output_model, BaseModel)):
            raise DefinitionTypeError(f"Step '{id}': output_model must be a pydantic BaseModel subclass")
        self.id = id
        self.name = name or id
        self.input_model = input_model
        self.output_model = output_model
        self.engine_name = engine_name or DEFAULT_ENGINE_NAME
        if sampling is None:
            sampling = SamplingParams()
        elif not isinstance(sampling, SamplingParams):
            sampling = SamplingParams(**dict(sampling))
        self.sampling: SamplingParams = sampling
        self.user_system_prompt = system_prompt
        self.user_prompt = user_prompt
        self.output_format_instruction = output_format_instruction
        self.max_validation_retries = max_validation_retries
        self.emoji = emoji
        self._compiled_key: tuple[Any, ...] | None = None
        self._system_renderer: Any = None
        self._user_renderer: Any = None

    @property
    def system_prompt(self) -> str:
        """The full system prompt template: the user's text plus the JSON instruction."""
        instruction = (
            generate_json_output_prompt(self.output_model)
            if self.output_format_instruction is None
            else self.output_format_instruction
        )
        parts = [p for p in (self.user_system_prompt.strip(), instruction) if p]
        return "\n\n".join(parts)

    def render_row(self, row_id: str, item: Any, history: Mapping[str, Any]) -> list[dict[str, str]]:
        """Render the chat messages for one row (pure; templates compiled once per prompt)."""
        key = (self.user_system_prompt, self.output_format_instruction, self.output_model, self.user_prompt)
        if self._compiled_key != key:
            system = self.system_prompt
            self._system_renderer = row_renderer(system) if system else None
            self._user_renderer = row_renderer(self.user_prompt)
            self._compiled_key = key
        messages = []
        if self._system_renderer is not None:
            messages.append({"role": "system", "content": self._system_renderer(row_id, item, history)})
        messages.append({"role": "user", "content": self._user_renderer(row_id, item, history)})
        return messages

    def render_messages(self, context: Mapping[str, Any]) -> list[dict[str, str]]:
        """Render the chat messages from a ready template context (names at top level)."""
        return self.render_row(str(context.get("row_id", "")), None, context)

    def describe(self) -> dict[str, Any]:
        d = super().describe()
        d.update(
            engine=self.engine_name,
            sampling=self.sampling.model_dump(exclude_none=True),
            system_prompt=self.user_system_prompt,
            user_prompt=self.user_prompt,
        )
        return d

    # fluent setters used by the DSL ------------------------------------------
    def engine(self, name: str) -> Step:
        """The engine name this step sends its requests to."""
        self.engine_name = name
        return self
