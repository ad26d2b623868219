"""Fixtures for the engine tests."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from ._support import STANDINS


@pytest.fixture
def standin_path(monkeypatch: pytest.MonkeyPatch) -> Path:
    """Put the stand-in ``vllm`` executable first on PATH."""
    monkeypatch.setenv("PATH", f"{STANDINS}{os.pathsep}{os.environ.get('PATH', '')}")
    return STANDINS / "vllm"
