"""Broken input files, through ``chainette run`` in process: each is reported with the file, the
line (or row) and what is wrong; ``--on-bad-input skip`` goes on and records what it skipped in
``skipped_inputs.jsonl``; later rows keep ids equal to their position; nothing is silently
merged, cut or dropped (docs/reliability.md, "Broken input files")."""

from __future__ import annotations

import gzip
import json
import os
from itertools import count

import pytest

from chainette.errors import InputError

from .input_cli import account, assert_clean_failure

_runs = count()


def _fails(project, name, *needles):
    """The run stops with one line naming ``name`` and every needle; ``--debug`` shows an InputError."""
    msg = assert_clean_failure(project.run(name, f"out-fail-{next(_runs)}"))
    for needle in (name, *needles):
        assert needle in msg, (needle, msg)
    assert isinstance(project.raised(name, f"out-debug-{next(_runs)}"), InputError)
    return msg


def _skips(project, name):
    """The run completes with ``--on-bad-input skip``; returns where every row went."""
    outcome = project.run(name, f"out-skip-{next(_runs)}", "--on-bad-input", "skip")
    assert outcome.exit_code == 0, outcome.output[-3000:]
    return account(outcome.out)


def _texts(acc):
    return {rid: rec["chain_input.text"] for rid, rec in acc.outputs.items()}


# -- the two cases from the issue ----------------------------------------------------------------
def test_jsonl_with_an_invalid_utf8_byte_names_file_and_line_and_can_be_skipped(input_project):
    input_project.write("in.jsonl", b'{"text": "a"}\n{"text": "hello \xff world"}\n{"text": "c"}\n')
    msg = _fails(input_project, "in.jsonl", "in.jsonl:2:", "invalid UTF-8", "0xff", "--on-bad-input skip")
    assert "UnicodeDecodeError" not in msg
    acc = _skips(input_project, "in.jsonl")
    assert _texts(acc) == {"0": "a", "2": "c"}  # the row after the bad one keeps its position
    assert acc.skipped["1"]["line"] == 2 and "invalid UTF-8" in acc.skipped["1"]["error"]


def test_csv_with_an_unterminated_quote_is_reported_not_read_as_one_row(input_project):
    input_project.write("in.csv", 'text\na\n"b unterminated\nc\nd\n')
    msg = _fails(input_project, "in.csv", "in.csv:3:", "unbalanced quotes", "never closed")
    assert "line 5" in msg  # how far the reader looked for the closing quote
    acc = _skips(input_project, "in.csv")
    # only the line with the stray quote is skipped: the lines after it are rows of their own
    assert _texts(acc) == {"0": "a", "2": "c", "3": "d"}
    assert acc.skipped["1"]["line"] == 3 and "end_line" not in acc.skipped["1"]


# -- JSON Lines ------------------------------------------------------------------------------------
def test_a_line_over_the_limit_is_reported_without_being_read(input_project, monkeypatch):
    from chainette.io.readers import ReadLimits, source

    monkeypatch.setattr(source, "DEFAULT_LIMITS", ReadLimits(max_line_bytes=1000))
    input_project.write("in.jsonl", '{"text": "a"}\n{"text": "' + "x" * 5000 + '"}\n{"text": "b"}\n')
    _fails(input_project, "in.jsonl", "in.jsonl:2:", "over the limit of 1000 bytes", "max_line_bytes")
    acc = _skips(input_project, "in.jsonl")
    assert _texts(acc) == {"0": "a", "2": "b"} and acc.skipped["1"]["line"] == 2


def test_the_default_line_limit_is_16_mib():
    from chainette.io.readers import DEFAULT_LIMITS

    assert DEFAULT_LIMITS.max_line_bytes == 16 * 1024 * 1024  # the value docs/cli.md documents


@pytest.mark.parametrize(
    ("line", "needle"),
    [
        ('{"text": "unterminated', "malformed JSON: Unterminated string"),
        ('{"text": "a",}', "malformed JSON"),
        ("[1, 2]", "expected a JSON object, got an array"),
        ('"just a string"', "expected a JSON object, got a string"),
        ("null", "expected a JSON object, got null"),
        ('{"text": "\\ud800"}', "lone UTF-16 surrogate"),
        ('{"text": "a", "text": "b"}', "repeats the key 'text'"),
        ('{"text": "a", "deep": ' + "[" * 150 + "]" * 150 + "}", "nested more than 100 levels"),
        ('{"text": "a", "n": 1' + "0" * 5000 + "}", "more digits than Python converts"),
    ],
)
def test_a_jsonl_line_that_is_not_a_usable_object(input_project, line, needle):
    input_project.write("in.jsonl", '{"text": "a"}\n' + line + '\n{"text": "b"}\n')
    _fails(input_project, "in.jsonl", "in.jsonl:2:", needle)
    acc = _skips(input_project, "in.jsonl")
    assert _texts(acc) == {"0": "a", "2": "b"} and needle in acc.skipped["1"]["error"]


def test_blank_lines_and_a_bom_are_not_rows(input_project):
    input_project.write("in.jsonl", b'\xef\xbb\xbf{"text": "a"}\n\n  \r\n{"text": "b"}')
    outcome = input_project.run("in.jsonl")
    assert outcome.exit_code == 0, outcome.output
    assert _texts(account(outcome.out)) == {"0": "a", "1": "b"}


def test_a_truncated_gzip_keeps_the_rows_before_and_reports_where_it_broke(input_project):
    data = gzip.compress(b"".join(b'{"text": "row %d"}\n' % i for i in range(2000)))
    input_project.write("in.jsonl.gz", data[: len(data) // 2])
    _fails(input_project, "in.jsonl.gz", "cut short or corrupt", "nothing after this point was read")
    acc = _skips(input_project, "in.jsonl.gz")
    assert 0 < len(acc.outputs) < 2000 and not acc.skipped
    (problem,) = acc.file_problems
    assert problem["line"] == len(acc.outputs) + 1 and "cut short" in problem["error"]


# -- JSON ------------------------------------------------------------------------------------------
def test_json_file_problems_name_the_line(input_project):
    input_project.write("bad.json", b'[{"text": "a"},\n {"text": "b\xff"}]')
    _fails(input_project, "bad.json", "bad.json:2:", "invalid UTF-8")
    input_project.write("syntax.json", '[{"text": "a"},\n {"text": "b"]')
    _fails(input_project, "syntax.json", "syntax.json:2:", "malformed JSON")
    input_project.write("scalar.json", "42")
    _fails(input_project, "scalar.json", "expected a JSON array of objects, got a number")
    acc = _skips(input_project, "syntax.json")
    assert acc.rows == 0 and acc.file_problems[0]["line"] == 2


def test_json_array_items_that_are_not_objects(input_project):
    input_project.write("in.json", '[{"text": "a"}, 3, {"text": "b"}]')
    _fails(input_project, "in.json", "row 2", "expected a JSON object, got a number")
    acc = _skips(input_project, "in.json")
    assert _texts(acc) == {"0": "a", "2": "b"} and acc.skipped["1"]["unit"] == "row"
    input_project.write("dupes.json", '[{"text": "a"}, {"text": "b", "text": "c"}, {"text": "d"}]')
    _fails(input_project, "dupes.json", "row 2", "repeats the key 'text'")
    assert _texts(_skips(input_project, "dupes.json")) == {"0": "a", "2": "d"}


def test_a_json_file_over_the_limit_is_refused_with_the_fix(input_project, monkeypatch):
    from chainette.io.readers import ReadLimits, source

    monkeypatch.setattr(source, "DEFAULT_LIMITS", ReadLimits(max_json_bytes=100))
    input_project.write("big.json", json.dumps([{"text": f"row {i}"} for i in range(50)]))
    _fails(input_project, "big.json", "max_json_bytes", "JSON Lines")
    # JSON Lines saved under a .json name is still read, lazily
    input_project.write("lines.json", "".join(json.dumps({"text": f"row {i}"}) + "\n" for i in range(50)))
    outcome = input_project.run("lines.json", "out-lines")
    assert outcome.exit_code == 0 and account(outcome.out).rows == 50


# -- CSV -------------------------------------------------------------------------------------------
def test_csv_rows_with_the_wrong_number_of_fields(input_project):
    input_project.write("in.csv", "text,n\na,1\nb\nc,1,2\n\nd,4\n")
    _fails(input_project, "in.csv", "in.csv:3:", "1 value, fewer than the 2 header columns (text, n)")
    acc = _skips(input_project, "in.csv")
    assert _texts(acc) == {"0": "a", "3": "d"}
    assert [acc.skipped[i]["line"] for i in ("1", "2")] == [3, 4]
    assert "3 values, more than" in acc.skipped["2"]["error"]


def test_csv_text_after_a_closing_quote_is_not_glued_on(input_project):
    input_project.write("in.csv", 'text\n"a"b\nc\n')
    _fails(input_project, "in.csv", "in.csv:2:", "a closing quote is followed by more text")
    acc = _skips(input_project, "in.csv")
    assert _texts(acc) == {"1": "c"}


def test_csv_quoted_newlines_are_one_row_and_bad_bytes_are_per_line(input_project):
    input_project.write("in.csv", b'text\n"a\nb"\nc\xff\nd\n')
    _fails(input_project, "in.csv", "in.csv:4:", "invalid UTF-8")
    acc = _skips(input_project, "in.csv")
    assert _texts(acc) == {"0": "a\nb", "2": "d"} and acc.skipped["1"]["line"] == 4


def test_csv_with_old_mac_line_endings_says_so(input_project):
    input_project.write("in.csv", "text\ra\rb\r")
    _fails(input_project, "in.csv", "in.csv:1:", "bare carriage return", "old Mac line endings")


def test_csv_header_problems(input_project):
    input_project.write("dup.csv", "text,text\na,b\n")
    _fails(input_project, "dup.csv", "dup.csv:1:", "repeats column name(s) 'text'")
    input_project.write("cols.csv", "body\nx\n")
    _fails(input_project, "cols.csv", "column(s) text required by Item are not in the input (it has body)")
    acc = _skips(input_project, "cols.csv")
    assert acc.skipped["0"]["field"] == "text"


# -- Parquet ---------------------------------------------------------------------------------------
def _parquet(path, rows, **kw):
    import pyarrow as pa
    import pyarrow.parquet as pq

    pq.write_table(pa.table({"text": [f"row {i}" for i in range(rows)]}), path, **kw)
    return path


def test_a_truncated_parquet_file(input_project):
    good = _parquet(input_project.dir / "good.parquet", 500).read_bytes()
    input_project.write("cut.parquet", good[: len(good) // 2])
    _fails(input_project, "cut.parquet", "cannot read the Parquet file", "cut short")
    acc = _skips(input_project, "cut.parquet")
    assert acc.rows == 0 and "cannot read the Parquet file" in acc.file_problems[0]["error"]


def test_a_corrupt_parquet_page_keeps_the_rows_before_it(input_project):
    import pyarrow.parquet as pq

    path = _parquet(
        input_project.dir / "in.parquet",
        300,
        row_group_size=100,
        write_page_checksum=True,
        use_dictionary=False,
        compression="none",
    )
    chunk = pq.ParquetFile(path).metadata.row_group(1).column(0)
    data = bytearray(path.read_bytes())
    data[chunk.data_page_offset + chunk.total_compressed_size // 2] ^= 0x01
    path.write_bytes(bytes(data))
    _fails(input_project, "in.parquet", "row 101", "row group 2 of 3", "cannot be read")
    acc = _skips(input_project, "in.parquet")
    assert acc.rows == 100 and acc.file_problems[0]["line"] == 101


def test_a_parquet_file_with_the_wrong_columns(input_project):
    import pyarrow as pa
    import pyarrow.parquet as pq

    pq.write_table(pa.table({"body": ["x", "y"]}), input_project.dir / "in.parquet")
    _fails(input_project, "in.parquet", "column(s) text required by Item are not in the input (it has body)")
    acc = _skips(input_project, "in.parquet")
    assert set(acc.skipped) == {"0", "1"} and acc.skipped["1"]["line"] == 2
    msg = assert_clean_failure(input_project.run("in.parquet", "out-cols", "--columns", "text"))
    assert "column(s) text required by Item are not in the input (it has body; --columns keeps text)" in msg
    outcome = input_project.run("in.parquet", "out-cols-skip", "--columns", "text", "--on-bad-input", "skip")
    acc = account(outcome.out)
    assert acc.skipped["0"]["error"] == "missing column(s) text (from --columns); it has body"


# -- empty inputs ----------------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("name", "data", "needle"),
    [
        ("in.jsonl", b"", "the file is empty"),
        ("in.jsonl", b"\n \n", "the file is empty"),
        ("in.json", b"[]", "holds no rows"),
        ("in.json", b"", "holds no rows"),
        ("in.csv", b"", "not even a header line"),
        ("in.csv", b"text\n", "a header line but no rows"),
    ],
)
def test_an_empty_input_is_reported(input_project, name, data, needle):
    input_project.write(name, data)
    _fails(input_project, name, needle, "--on-bad-input skip")
    acc = _skips(input_project, name)
    assert acc.rows == 0 and needle in acc.file_problems[0]["error"]


def test_an_empty_parquet_file_is_reported(input_project):
    _parquet(input_project.dir / "zero.parquet", 0)
    _fails(input_project, "zero.parquet", "has no rows")
    input_project.write("nothing.parquet", b"")
    _fails(input_project, "nothing.parquet", "cannot read the Parquet file")


# -- Hugging Face: offline without process-wide state ----------------------------------------------
def test_hub_offline_changes_no_environment(monkeypatch, tmp_path):
    pytest.importorskip("datasets")
    from chainette.io.readers import hf, open_input

    monkeypatch.delenv("HF_HUB_OFFLINE", raising=False)
    monkeypatch.delenv("HF_DATASETS_OFFLINE", raising=False)
    monkeypatch.setattr(hf, "hub_reachable", lambda timeout=3.0: False)
    monkeypatch.setattr(hf, "cached_snapshot", lambda name, hub_cache=None: None)
    before = dict(os.environ)
    source = open_input("someone/nothing-cached/test")
    with pytest.raises(InputError, match="not reachable and the dataset is not in the local Hub cache"):
        list(source)
    assert dict(os.environ) == before


def test_hub_offline_reads_the_local_hub_cache(monkeypatch, tmp_path):
    pytest.importorskip("datasets")
    from chainette.io.readers import hf

    monkeypatch.delenv("HF_HUB_OFFLINE", raising=False)
    monkeypatch.delenv("HF_DATASETS_OFFLINE", raising=False)
    repo = tmp_path / "hub" / "datasets--someone--tiny"
    commit = "0123456789abcdef0123456789abcdef01234567"
    (repo / "refs").mkdir(parents=True)
    (repo / "refs" / "main").write_text(commit)
    data = repo / "snapshots" / commit / "data"
    data.mkdir(parents=True)
    (data / "test.jsonl").write_text('{"text": "a"}\n{"text": "b"}\n')
    before = dict(os.environ)
    ds = hf.load_hub_dataset(
        "someone/tiny", "test", offline=True, hub_cache=tmp_path / "hub", datasets_cache=str(tmp_path / "ds-cache")
    )
    assert ds["text"] == ["a", "b"]
    assert dict(os.environ) == before
