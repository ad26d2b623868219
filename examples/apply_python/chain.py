"""Pure-Python apply steps: map, filter and fan-out. No LLM, no engine, runs in well under a second.

  clean (map) ─► keep_long (filter) ─► split_sentences (fan-out) ─► stats (map)

An apply function takes one item and returns a list: one item maps the row (it keeps its
id), an empty list filters it out, several items fan it out into children ``<id>.0``,
``<id>.1``, ... that continue through the rest of the chain on their own.
"""

import re

from pydantic import BaseModel

from chainette import Chain, apply


class Doc(BaseModel):
    title: str
    text: str


class CleanDoc(BaseModel):
    title: str
    text: str
    words: int


class Sentence(BaseModel):
    title: str
    sentence: str


class SentenceStats(BaseModel):
    sentence: str
    words: int
    chars: int
    is_question: bool


def clean(doc: Doc) -> list[CleanDoc]:
    """Map: normalise whitespace and count words."""
    text = " ".join(doc.text.split())
    return [CleanDoc(title=doc.title.strip().title(), text=text, words=len(text.split()))]


def keep_long(doc: CleanDoc) -> list[CleanDoc]:
    """Filter: drop documents shorter than five words (an empty list removes the row)."""
    return [doc] if doc.words >= 5 else []


def split_sentences(doc: CleanDoc) -> list[Sentence]:
    """Fan-out: one child row per sentence."""
    parts = re.split(r"(?<=[.?!])\s+", doc.text)
    return [Sentence(title=doc.title, sentence=p) for p in parts if p]


def stats(s: Sentence) -> list[SentenceStats]:
    return [
        SentenceStats(
            sentence=s.sentence,
            words=len(s.sentence.split()),
            chars=len(s.sentence),
            is_question=s.sentence.endswith("?"),
        )
    ]


chain = Chain(
    name="Pure-Python apply",
    steps=[apply(clean, input_model=Doc), apply(keep_long), apply(split_sentences), apply(stats)],
)
