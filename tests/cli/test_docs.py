"""docs/cli.md is generated from the typer app; this fails when it is stale."""

from __future__ import annotations

import importlib.util
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def _generator():
    spec = importlib.util.spec_from_file_location("gen_cli_docs", ROOT / "scripts" / "gen_cli_docs.py")
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


def test_cli_docs_are_up_to_date():
    gen = _generator()
    committed = (ROOT / "docs" / "cli.md").read_text()
    assert committed == gen.render(), "docs/cli.md is stale: run `python scripts/gen_cli_docs.py`"


def test_cli_docs_cover_every_command_and_option():
    import typer.main

    from chainette.cli import app

    text = (ROOT / "docs" / "cli.md").read_text()
    group = typer.main.get_command(app)
    for name, cmd in group.commands.items():
        assert f"## chainette {name}" in text
        for param in cmd.params:
            if param.param_type_name == "option" and not param.hidden:
                assert f"`{param.opts[0]}`" in text, (name, param.opts)
