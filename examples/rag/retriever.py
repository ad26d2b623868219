"""A tiny BM25 retriever over the Markdown files in ``docs/``: pure Python, no dependencies."""

from __future__ import annotations

import math
import re
from collections import Counter
from dataclasses import dataclass
from pathlib import Path

DOCS_DIR = Path(__file__).with_name("docs")
_WORD = re.compile(r"[a-z0-9]+")
_STOP = {
    "a",
    "an",
    "the",
    "of",
    "to",
    "in",
    "and",
    "or",
    "is",
    "are",
    "be",
    "for",
    "at",
    "on",
    "per",
    "up",
    "my",
    "i",
    "how",
    "many",
    "what",
    "do",
    "does",
    "can",
    "with",
    "it",
    "by",
    "each",
}


def tokenize(text: str) -> list[str]:
    return [w.rstrip("s") if len(w) > 3 else w for w in _WORD.findall(text.lower()) if w not in _STOP]


@dataclass(frozen=True)
class Doc:
    doc_id: str
    text: str
    terms: Counter


class BM25:
    def __init__(self, docs: list[Doc], k1: float = 1.5, b: float = 0.75) -> None:
        self.docs, self.k1, self.b = docs, k1, b
        self.avg_len = sum(sum(d.terms.values()) for d in docs) / max(len(docs), 1)
        df = Counter(t for d in docs for t in d.terms)
        n = len(docs)
        self.idf = {t: math.log(1 + (n - f + 0.5) / (f + 0.5)) for t, f in df.items()}

    def score(self, query: str, doc: Doc) -> float:
        length = sum(doc.terms.values())
        s = 0.0
        for t in set(tokenize(query)):
            f = doc.terms.get(t, 0)
            if f:
                s += self.idf[t] * f * (self.k1 + 1) / (f + self.k1 * (1 - self.b + self.b * length / self.avg_len))
        return s

    def search(self, query: str, k: int = 1) -> list[tuple[Doc, float]]:
        ranked = sorted(((d, self.score(query, d)) for d in self.docs), key=lambda x: (-x[1], x[0].doc_id))
        return ranked[:k]


def load_docs(folder: Path = DOCS_DIR) -> list[Doc]:
    docs = []
    for p in sorted(folder.glob("*.md")):
        text = " ".join(line for line in p.read_text(encoding="utf-8").splitlines() if not line.startswith("#"))
        docs.append(Doc(doc_id=p.stem, text=text.strip(), terms=Counter(tokenize(text))))
    return docs


INDEX = BM25(load_docs())
