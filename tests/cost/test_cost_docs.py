"""docs/cost.md: its Python blocks run, its links resolve, and it is linked from the docs index and README."""

from __future__ import annotations

import re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
PAGE = ROOT / "docs" / "cost.md"


def test_cost_page_python_blocks_run(tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    ns: dict = {"__name__": "__main__"}
    for i, code in enumerate(re.findall(r"```python\n(.*?)```", PAGE.read_text(), re.S)):
        exec(compile(code, f"cost.md:block{i}", "exec", dont_inherit=True), ns)
    assert "max_tokens True" in capsys.readouterr().out


def test_cost_page_links_and_is_linked():
    text = PAGE.read_text()
    for target in re.findall(r"\]\(([^)#]+)(?:#[^)]*)?\)", text):
        if not target.startswith("http"):
            assert (PAGE.parent / target).resolve().exists(), target
    assert "(cost.md)" in (ROOT / "docs" / "index.md").read_text()
    assert "(docs/cost.md)" in (ROOT / "README.md").read_text()
    assert "`4` stopped by" in (ROOT / "docs" / "cli.md").read_text()
