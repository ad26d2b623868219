"""An optional dependency that is missing is named with the extra that brings it."""

import sys

import pytest

from chainette.errors import ConfigError
from chainette.utils.optional import require


def test_require_returns_the_module():
    assert require("json", extra="x", feature="y").dumps({}) == "{}"


def test_a_missing_module_names_the_extra(monkeypatch):
    monkeypatch.setitem(sys.modules, "pyarrow", None)
    monkeypatch.delitem(sys.modules, "pyarrow.parquet", raising=False)
    with pytest.raises(
        ConfigError, match=r"reading Parquet files needs the 'pyarrow' package: pip install 'chainette\[parquet\]'"
    ):
        require("pyarrow.parquet", extra="parquet", feature="reading Parquet files")


def test_format_parquet_without_pyarrow_fails_before_the_run(tmp_path, monkeypatch):
    from chainette.io.stream_writer import StreamWriter

    monkeypatch.setitem(sys.modules, "pyarrow", None)
    monkeypatch.delitem(sys.modules, "pyarrow.parquet", raising=False)
    with pytest.raises(
        ConfigError, match=r"--format parquet needs the 'pyarrow' package: pip install 'chainette\[parquet\]'"
    ):
        StreamWriter(tmp_path / "out", fmt="parquet")
    StreamWriter(tmp_path / "out2", fmt="jsonl")  # other formats need nothing
