# 11 - Tool use: the LLM picks a tool (calculator or weather), an ApplyNode runs it.
from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, Field

from chainette import ApplyNode, Chain, Step, register_engine
from chainette.core.step import SamplingParams


class Question(BaseModel):
    question: str = Field(..., description="Natural language user query")


class ToolChoice(BaseModel):
    tool: Literal["calculator", "weather"] = Field(..., description="Selected tool")
    expression: str | None = Field(None, description="Math expression to evaluate, e.g. '3 * 4 + 2'")
    location: str | None = Field(None, description="City or place name for weather lookup")


class Answer(BaseModel):
    answer: str


ToolChoice.model_rebuild()

# ported: engine registration points at the fake backend (was: OpenAI gpt-4.1-mini, with an OPENAI_API_KEY check)
register_engine("openai_default", backend="fake")

tool_selector = Step(
    id="choose_tool",
    name="Tool Selector",
    engine_name="openai_default",
    input_model=Question,
    output_model=ToolChoice,
    sampling=SamplingParams(temperature=0.0),
    system_prompt="Pick the tool (calculator or weather) for the user question and give its arguments as JSON.",
    user_prompt="{{chain_input.question}}",
)


def _execute_tool(choice: ToolChoice) -> list[Answer]:
    if choice.tool == "calculator":
        allowed = set("0123456789+-*/(). %")
        if not choice.expression or not set(choice.expression) <= allowed:
            return [Answer(answer="[error] invalid expression")]
        try:
            return [Answer(answer=str(eval(choice.expression, {"__builtins__": {}}, {})))]  # noqa: S307
        except Exception as e:  # noqa: BLE001
            return [Answer(answer=f"[error] {e}")]
    return [Answer(answer=f"It's sunny in {choice.location or 'unknown'} (stubbed)")]


execute_tool_node: ApplyNode[ToolChoice, Answer] = ApplyNode(
    fn=_execute_tool,
    id="execute_tool",
    name="Execute Tool",
    input_model=ToolChoice,
    output_model=Answer,
)

tool_use_chain = Chain(name="Tool Use Demo", steps=[tool_selector, execute_tool_node])
