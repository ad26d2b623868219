"""docs/report.md: its Python block runs as written, and the screenshots it shows exist."""

from __future__ import annotations

import re
from pathlib import Path

from .chains import TimedFake, build_chain, inputs

DOCS = Path(__file__).resolve().parents[2] / "docs"


def test_report_page_python_block_runs(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    text = (DOCS / "report.md").read_text(encoding="utf-8")
    blocks = re.findall(r"```python\n(.*?)```", text, re.S)
    assert len(blocks) == 1
    engines = {"fk": TimedFake(name="fk", sleep=False)}
    chain = build_chain()
    chain.run(inputs(20), "runs/tickets", engines=engines, cache=False)
    ns = {"chain": chain, "rows": inputs(20)}

    def run(rows, out, **options):  # the page's chain.run, with this test's engine
        return build_chain().run(rows, out, engines=engines, cache=False, **options)

    ns["chain"] = type("C", (), {"run": staticmethod(run)})()
    exec(compile(blocks[0], "report.md", "exec", dont_inherit=True), ns)
    assert ns["html"].startswith("<!DOCTYPE html>")
    assert (tmp_path / "shared" / "tickets.html").is_file()
    assert (tmp_path / "runs" / "x" / "metrics.json").is_file()
    assert not (tmp_path / "runs" / "x" / "report.html").exists()


def test_report_page_images_exist_and_are_small():
    text = (DOCS / "report.md").read_text(encoding="utf-8")
    images = re.findall(r"!\[[^\]]*\]\(([^)]+)\)", text)
    assert images
    for rel in images:
        path = DOCS / rel
        assert path.is_file() and path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n", rel
        assert path.stat().st_size < 150_000, rel
