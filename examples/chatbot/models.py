"""Models and the one Python function the YAML chain (chain.yml) refers to as `models.py:NAME`."""

from typing import Literal

from pydantic import BaseModel, Field


class Turn(BaseModel):
    """One user message, with an optional summary of the conversation so far."""

    message: str
    context: str = ""


class Intent(BaseModel):
    intent: Literal["greeting", "question", "complaint", "goodbye", "other"]


class Reply(BaseModel):
    reply: str = Field(max_length=80)


class FinalReply(BaseModel):
    reply: str
    escalate: bool


def route(reply: Reply) -> list[FinalReply]:
    """Python after the LLM: flag replies that promise things a bot must not promise."""
    escalate = any(w in reply.reply.lower() for w in ("refund", "manager", "lawyer"))
    return [FinalReply(reply=reply.reply.strip(), escalate=escalate)]
