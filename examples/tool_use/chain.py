"""Tool use: the model picks a tool and its arguments, Python runs it, the model phrases the answer.

  plan (LLM: ToolCall) ─► run_tool (apply: unit converter / calculator) ─► respond (LLM)

A tool call the Python code cannot run (e.g. km -> kg) raises inside the apply: that row gets
an explicit error record (step run_tool, error_type ValueError) and the other rows go on.
"""

import sys
from pathlib import Path
from typing import Literal

from pydantic import BaseModel, Field

from chainette import Chain, SamplingParams, Step, apply

sys.path.insert(0, str(Path(__file__).parent))
from tools import calculate, convert  # noqa: E402

Unit = Literal["km", "m", "mi", "ft", "kg", "lb", "l", "gal", "c", "f"]


class Request(BaseModel):
    question: str


class ToolCall(BaseModel):
    tool: Literal["convert", "calculate"]
    value: float = 0
    from_unit: Unit = "m"
    to_unit: Unit = "m"
    expression: str = Field(default="", max_length=30)


class ToolResult(BaseModel):
    tool: str
    call: str
    result: float


class Response(BaseModel):
    answer: str = Field(max_length=60)


plan = Step(
    "plan",
    input_model=Request,
    output_model=ToolCall,
    sampling=SamplingParams(temperature=0, max_tokens=80),
    system_prompt=(
        "Pick a tool. convert: value, from_unit, to_unit (units km m mi ft kg lb l gal c f). "
        "calculate: an arithmetic expression such as (3+4)*2."
    ),
    user_prompt="{{ question }}",
)


def run_tool(call: ToolCall) -> list[ToolResult]:
    if call.tool == "convert":
        result = convert(call.value, call.from_unit, call.to_unit)
        text = f"{call.value:g} {call.from_unit} -> {call.to_unit}"
    else:
        result = calculate(call.expression)
        text = call.expression
    return [ToolResult(tool=call.tool, call=text, result=round(result, 4))]


respond = Step(
    "respond",
    output_model=Response,
    sampling=SamplingParams(temperature=0, max_tokens=84),
    system_prompt="Answer the question in one short sentence using the tool result.",
    user_prompt="Question: {{ chain_input.question }}\nTool: {{ call }} = {{ result }}",
)

chain = Chain(name="Tool use", steps=[plan, apply(run_tool), respond])
