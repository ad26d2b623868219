"""Shared test setup: an isolated item cache and state directory per test."""

from __future__ import annotations

import pytest


@pytest.fixture(autouse=True)
def _isolated_dirs(tmp_path_factory, monkeypatch):
    base = tmp_path_factory.mktemp("chainette-home")
    monkeypatch.setenv("CHAINETTE_CACHE_DIR", str(base / "cache"))
    monkeypatch.setenv("CHAINETTE_STATE_DIR", str(base / "state"))
    yield
