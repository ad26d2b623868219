"""Pydantic models shared by the core tests."""

from pydantic import BaseModel


class Question(BaseModel):
    text: str


class Answer(BaseModel):
    answer: str
    confidence: float


class Translation(BaseModel):
    translated: str


class Summary(BaseModel):
    summary: str


class Number(BaseModel):
    value: int
