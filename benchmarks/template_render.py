"""Prompt rendering cost per row: the fast path (plain ``{{ name.attr }}`` templates) and the
full jinja2 (sandboxed) path, in nanoseconds per render.

    python benchmarks/template_render.py [--rounds 5] [--number 200000] [--json]
    git show <commit>:chainette/core/templates.py > /tmp/old_templates.py
    python benchmarks/template_render.py --baseline /tmp/old_templates.py   # before vs after

No server, no I/O: it calls the renderer a step uses (``chainette.core.templates.row_renderer``)
on a typical row (an input dict, one earlier step's pydantic output, the row id). CPU time
(``time.process_time``) is measured, and the best of ``--rounds`` rounds is reported (the
least disturbed by other processes). With ``--baseline``
another version of ``templates.py`` is measured in the same process, rounds interleaved, so
that a busy machine slows both alike.
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import sys
import time
import timeit
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from pydantic import BaseModel  # noqa: E402

from chainette.core.templates import compile_fast, row_renderer  # noqa: E402


class Extract(BaseModel):
    answer: str
    score: float


FAST = "Question: {{ text }}\nEarlier answer: {{ extract.answer }} ({{ extract.score }})\nRow {{ row_id }}"
FULL = (
    "Question: {{ text }}\nEarlier answer: {{ extract.answer }} ({{ extract.score }})\nRow {{ row_id }}"
    "{% if extract.score > 0.5 %} (confident){% endif %}"
)


def measure(renderers: dict[str, object], *, rounds: int, number: int) -> dict[str, float]:
    """Best ns per render of each renderer, rounds interleaved."""
    item = {"text": "What is the capital of France?"}
    history = {"extract": Extract(answer="Paris", score=0.9)}
    best = {name: float("inf") for name in renderers}
    outputs = {name: render("0", item, history) for name, render in renderers.items()}
    assert len(set(outputs.values())) == 1, outputs
    for _ in range(rounds):
        for name, render in renderers.items():
            t = timeit.Timer(lambda r=render: r("0", item, history), timer=time.process_time).timeit(number)
            best[name] = min(best[name], t / number * 1e9)
    return best


def _load(path: str) -> object:
    spec = importlib.util.spec_from_file_location("baseline_templates", path)
    assert spec is not None and spec.loader is not None
    mod = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = mod  # dataclasses look their module up
    spec.loader.exec_module(mod)
    return mod


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--rounds", type=int, default=5)
    ap.add_argument("--number", type=int, default=200_000)
    ap.add_argument("--baseline", help="another templates.py to measure alongside (e.g. before a change)")
    ap.add_argument("--json", action="store_true", help="print one JSON object")
    args = ap.parse_args()
    assert compile_fast(FAST) is not None and compile_fast(FULL) is None
    base = _load(args.baseline) if args.baseline else None
    result: dict[str, float] = {}
    for label, source, number in (("fast_path", FAST, args.number), ("jinja_path", FULL, args.number // 4)):
        renderers = {"current": row_renderer(source)}
        if base is not None:
            renderers["baseline"] = base.row_renderer(source)  # type: ignore[attr-defined]
        for name, ns in measure(renderers, rounds=args.rounds, number=number).items():
            result[f"{label}_ns_per_render" + ("" if name == "current" else "_baseline")] = round(ns)
    if args.json:
        print(json.dumps(result))
    else:
        for key, value in result.items():
            print(f"{key}: {value}")


if __name__ == "__main__":
    main()
