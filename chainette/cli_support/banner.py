"""The Rich banner printed at the start of ``chainette run``."""

from __future__ import annotations

from typing import Any

from rich.panel import Panel
from rich.text import Text

__all__ = ["banner"]

_ART = r"""
  ___ _         _           _   _
 / __| |_  __ _(_)_ _  ___ | |_| |_ ___
| (__| ' \/ _` | | ' \/ -_)|  _|  _/ -_)
 \___|_||_\__,_|_|_||_\___| \__|\__\___|
"""


def banner(
    chain_name: str | None = None, *, version: str | None = None, subtitle: str | None = None, compact: bool = False
) -> Any:
    """A renderable banner (ASCII art, version, chain name). ``compact`` drops the art."""
    if version is None:
        from chainette._version import __version__ as version
    text = Text()
    if not compact:
        text.append(_ART.strip("\n") + "\n", style="bold cyan")
    text.append(f"chainette {version}", style="bold")
    if chain_name:
        text.append("  ·  ", style="dim")
        text.append(chain_name, style="bold magenta")
    if subtitle:
        text.append("\n" + subtitle, style="dim")
    return Panel.fit(text, border_style="cyan")
