"""04 - Branching + join with pure-Python nodes."""

from pydantic import BaseModel

from chainette import Branch, Chain
from chainette.core.apply import ApplyNode


class Number(BaseModel):
    value: int


class Result(BaseModel):
    new_value: int


def inc(x: Number):
    return [Result(new_value=x.value + 1)]


def dec(x: Number):
    return [Result(new_value=x.value - 1)]


inc_step = ApplyNode(inc, id="inc", input_model=Number)
dec_step = ApplyNode(dec, id="dec", input_model=Number)

inc_branch = Branch(name="inc_branch", steps=[inc_step]).join("inc")
dec_branch = Branch(name="dec_branch", steps=[dec_step]).join("dec")

branching_chain = Chain(name="Branching Demo", steps=[[inc_branch, dec_branch]])
