"""Property-based tests: malformed and adversarial input files (JSONL, JSON, CSV, Parquet bytes)
through ``chainette run`` in process, with a FakeEngine chain.

For every generated file, in both ``--on-bad-input`` modes: no traceback and no unexpected
exception type (exit 0, or exit 1 with one ``Error:`` line naming the file); with ``skip``,
every input row is accounted for (an output, an error record or a skip record, row ids
0..N-1 without a gap) and, wherever an independent oracle can say what the rows are, exactly
those rows come out at exactly those positions; nothing is written outside the run directory.

Bounded for CI (well under a minute in all, derandomized); ``CHAINETTE_FUZZ_EXAMPLES=500`` runs
more, with fresh random examples; ``CHAINETTE_FUZZ_NOSHRINK=1`` reports a failure without
shrinking it (each example runs the CLI twice, so shrinking can take minutes).
"""

from __future__ import annotations

import csv
import gzip
import io
import json
import os
import re
import shutil
from itertools import count
from typing import Any

import pytest

hypothesis = pytest.importorskip("hypothesis")
from hypothesis import HealthCheck, Phase, given, settings  # noqa: E402
from hypothesis import strategies as st  # noqa: E402

from .input_cli import account, assert_clean_failure, tree  # noqa: E402

EXAMPLES = int(os.environ.get("CHAINETTE_FUZZ_EXAMPLES", "25"))
FUZZ = settings(
    max_examples=EXAMPLES,
    deadline=None,
    derandomize=not os.environ.get("CHAINETTE_FUZZ_EXAMPLES"),
    phases=(Phase.explicit, Phase.reuse, Phase.generate) if os.environ.get("CHAINETTE_FUZZ_NOSHRINK") else tuple(Phase),
    database=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow, HealthCheck.data_too_large],
)
_runs = count()

# -- strategies ------------------------------------------------------------------------------------
_texts = st.text(st.characters(codec="utf-8"), max_size=30)
_json_leaf = st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | _texts
_json = st.recursive(
    _json_leaf, lambda kids: st.lists(kids, max_size=4) | st.dictionaries(_texts, kids, max_size=4), max_leaves=12
)
_good_row = st.builds(
    lambda t, extra: json.dumps({"text": t, **extra}),
    _texts,
    st.dictionaries(st.sampled_from(["n", "meta", "tags"]), _json, max_size=2),
)
_odd_line = st.one_of(
    _json.map(json.dumps),  # JSON, maybe not an object
    st.binary(max_size=40),  # any bytes, bad UTF-8 included
    _good_row.map(lambda s: s[: len(s) // 2]),  # a line cut in the middle
    st.just('{"text": "\\ud800"}'),  # a lone surrogate
    st.just('{"text": "a", "text": "b"}'),  # a repeated key
    st.integers(90, 130).map(lambda n: '{"text": "x", "d": ' + "[" * n + "]" * n + "}"),  # deep nesting
    st.just('{"text": "x", "n": 1' + "0" * 4400 + "}"),  # too many digits for int()
    st.just("   \t"),
    st.just(""),  # blank lines
    st.just('{"text": "' + "y" * 3000 + '"}'),  # over the test's line limit
)
_line = st.one_of(_good_row.map(str.encode), _odd_line.map(lambda x: x if isinstance(x, bytes) else x.encode()))


def _mutate(data: bytes, edits: list[tuple[int, int, bytes]]) -> bytes:
    """Apply (position, how many bytes to drop, bytes to insert) edits, positions taken modulo the size."""
    for pos, drop, insert in edits:
        at = pos % (len(data) + 1)
        data = data[:at] + insert + data[at + drop :]
    return data


_edits = st.lists(
    st.tuples(
        st.integers(0, 10**6),
        st.integers(0, 3),
        st.sampled_from([b"", b'"', b"\n", b"\r", b",", b"\xff", b"\x00", b"\xc3", b"{", b"]"]),
    ),
    max_size=4,
)


# -- running and checking ------------------------------------------------------------------------
LINE_LIMIT = 2000  # a small ReadLimits.max_line_bytes, so over-long lines are cheap to generate


@pytest.fixture
def fuzz_project(input_project, monkeypatch):
    from chainette.io.readers import ReadLimits, source

    monkeypatch.setattr(source, "DEFAULT_LIMITS", ReadLimits(max_line_bytes=LINE_LIMIT))
    return input_project


def _run_both(project, name: str, data: bytes):
    """Run with --on-bad-input fail and skip; check what holds for any input; return (fail, skip accounting)."""
    project.write(name, data)
    before = tree(project.dir)
    assert not any(k.startswith("out-") for k in before)
    outs = []
    for mode in ("fail", "skip"):
        out = f"out-{next(_runs)}"
        outcome = project.run(name, out, "--on-bad-input", mode)
        if outcome.exit_code != 0:
            msg = assert_clean_failure(outcome)
            assert mode == "fail", f"--on-bad-input skip failed: {msg}"
            assert name in msg, msg
        after = {k: v for k, v in tree(project.dir).items() if not k.startswith("out-")}
        assert after == before, "something was written outside the run directory"
        assert not any(project.home.rglob("*")), "something was written under HOME / the cache dirs"
        outs.append(outcome)
    fail, skip = outs
    acc = account(skip.out)
    assert not acc.errors, acc.errors  # the FakeEngine never fails: rows end as outputs or skips
    for rec in acc.skipped.values():
        assert rec["source"] == name and rec["error"] and isinstance(rec["line"], int) and rec["line"] >= 1
    for out in outs:
        shutil.rmtree(out.out, ignore_errors=True)
    return fail, acc


class _Repeats(dict):
    """The oracle's mark for an object whose text repeats a key."""


def _oracle_loads(text: str) -> Any:
    def hook(pairs):
        obj = dict(pairs)
        return obj if len(obj) == len(pairs) else _Repeats(obj)

    return json.loads(text, object_pairs_hook=hook)


def _usable(value: Any) -> bool:
    """The oracle: can this parsed JSON value be a row of the test chain (``text: str``, extra allowed)?"""
    if not isinstance(value, dict) or not isinstance(value.get("text"), str):
        return False
    try:
        json.dumps(value, ensure_ascii=False).encode("utf-8")  # lone surrogates do not encode
    except (UnicodeEncodeError, ValueError, RecursionError):
        return False

    def depth(v: Any) -> int:
        if isinstance(v, _Repeats):
            return 10**6
        if isinstance(v, dict):
            return 1 + max((depth(x) for x in v.values()), default=0)
        if isinstance(v, list):
            return 1 + max((depth(x) for x in v), default=0)
        return 0

    return depth(value) <= 100


def _expected_jsonl(data: bytes) -> list[str | None]:
    """Per non-blank line: the row's text, or None when it must be skipped."""
    pieces = data.split(b"\n")
    if pieces and pieces[-1] == b"":
        pieces.pop()
    rows: list[str | None] = []
    for k, piece in enumerate(pieces):
        if k == 0 and piece.startswith(b"\xef\xbb\xbf"):
            piece = piece[3:]
        if not piece.strip(b" \t\r"):
            continue
        if len(piece) + 1 > LINE_LIMIT:
            rows.append(None)
            continue
        try:
            value = _oracle_loads(piece.decode("utf-8"))
        except (ValueError, RecursionError):
            rows.append(None)
            continue
        rows.append(value["text"] if _usable(value) else None)
    return rows


def _check_rows(fail, acc, expected: list[str | None]) -> None:
    """Exactly the expected rows at exactly their positions; fail mode stops iff one is bad."""
    assert acc.rows == len(expected), (acc.rows, len(expected))
    for i, text in enumerate(expected):
        if text is None:
            assert str(i) in acc.skipped, (i, acc.outputs.get(str(i)))
        else:
            assert acc.outputs[str(i)]["chain_input.text"] == text
    assert (fail.exit_code == 0) == (bool(expected) and None not in expected), fail.output[-2000:]
    if not expected:
        assert acc.file_problems, "an input with no rows is reported"


# -- the properties --------------------------------------------------------------------------------
@FUZZ
@given(
    lines=st.lists(_line, max_size=8),
    sep=st.sampled_from([b"\n", b"\r\n"]),
    bom=st.booleans(),
    final_newline=st.booleans(),
)
def test_jsonl_files(fuzz_project, lines, sep, bom, final_newline):
    data = (b"\xef\xbb\xbf" if bom else b"") + sep.join(lines) + (sep if final_newline and lines else b"")
    fail, acc = _run_both(fuzz_project, "in.jsonl", data)
    _check_rows(fail, acc, _expected_jsonl(data))


@FUZZ
@given(lines=st.lists(_good_row.map(str.encode), min_size=1, max_size=30), cut=st.floats(0, 1), edits=_edits)
def test_gzipped_jsonl_cut_or_corrupted(fuzz_project, lines, cut, edits):
    packed = gzip.compress(b"\n".join(lines) + b"\n")
    data = _mutate(packed[: max(1, int(len(packed) * cut))], edits)
    fail, acc = _run_both(fuzz_project, "in.jsonl.gz", data)
    try:
        whole = gzip.decompress(data)
    except Exception:  # noqa: BLE001 - the oracle only says "broken"
        whole = None
    if whole is not None:
        _check_rows(fail, acc, _expected_jsonl(whole))
    else:
        assert acc.file_problems or acc.skipped or not acc.rows, "a broken stream is reported"
        assert fail.exit_code == 1


@FUZZ
@given(
    value=st.one_of(
        st.lists(_json | _good_row.map(json.loads), max_size=6),
        _json,
        st.dictionaries(st.just("data"), st.lists(_good_row.map(json.loads), max_size=4), max_size=1),
    ),
    edits=_edits,
)
def test_json_files(fuzz_project, value, edits):
    data = _mutate(json.dumps(value, indent=None if edits else 1).encode(), edits)
    fail, acc = _run_both(fuzz_project, "in.json", data)
    try:
        parsed = _oracle_loads(data.decode("utf-8-sig"))
    except (ValueError, RecursionError):
        return  # broken or JSON Lines-like: checked by the invariants in _run_both only
    if isinstance(parsed, _Repeats):
        parsed = [parsed]
    elif isinstance(parsed, dict):
        lists = [v for v in parsed.values() if isinstance(v, list)]
        parsed = lists[0] if len(lists) == 1 and len(parsed) == 1 else [parsed]
    if not isinstance(parsed, list):
        assert fail.exit_code == 1 and acc.rows == 0 and acc.file_problems
        return
    _check_rows(fail, acc, [v["text"] if _usable(v) else None for v in parsed])


_cell = st.text(st.characters(codec="utf-8", exclude_characters="\r"), max_size=12) | st.sampled_from(
    ['"', '""', 'a"b', "x,y", "line\nbreak", " ", ""]
)


@FUZZ
@given(rows=st.lists(st.lists(_cell, min_size=1, max_size=3), max_size=8), edits=_edits)
def test_csv_files(fuzz_project, rows, edits):
    buf = io.StringIO()
    writer = csv.writer(buf, lineterminator="\n")
    writer.writerow(["text", "n"])
    writer.writerows(rows)
    data = _mutate(buf.getvalue().encode(), edits)
    fail, acc = _run_both(fuzz_project, "in.csv", data)
    # The oracle: the csv module in strict mode over the same \n-terminated lines, when it reads
    # the whole file without an error (otherwise only the invariants of _run_both are checked).
    try:
        lines = [piece.decode("utf-8") for piece in re.split(b"(?<=\n)", data) if piece]
        if lines:
            lines[0] = lines[0].removeprefix("\ufeff")
        if any(len(x.encode()) > LINE_LIMIT for x in lines):
            return
        records = [r for r in csv.reader(lines, strict=True) if r]
    except (UnicodeDecodeError, csv.Error):
        return
    if not records or len(set(records[0])) != len(records[0]):
        assert fail.exit_code == 1 and acc.rows == 0 and acc.file_problems
        return
    header = records[0]
    expected = []
    for rec in records[1:]:
        row = dict(zip(header, rec, strict=False))
        expected.append(row["text"] if len(rec) == len(header) and "text" in row else None)
    if "text" not in header and expected:
        assert fail.exit_code == 1 and "required by Item" in fail.output
        assert acc.rows == len(expected) and not acc.outputs
        return
    _check_rows(fail, acc, expected)


@FUZZ
@given(
    texts=st.lists(st.none() | _texts, min_size=1, max_size=40),
    group=st.integers(1, 16),
    cut=st.none() | st.floats(0, 1),
    edits=_edits,
    flips=st.lists(st.tuples(st.integers(0, 10**6), st.integers(1, 255)), max_size=3),
)
def test_parquet_bytes(fuzz_project, texts, group, cut, edits, flips):
    import pyarrow as pa
    import pyarrow.parquet as pq

    buf = io.BytesIO()
    pq.write_table(
        pa.table({"text": pa.array(texts, pa.string())}), buf, row_group_size=group, write_page_checksum=True
    )
    original = buf.getvalue()
    data = bytearray(original[: max(1, int(len(original) * cut))] if cut is not None else original)
    for pos, xor in flips:
        data[pos % len(data)] ^= xor
    data = _mutate(bytes(data), edits)
    fail, acc = _run_both(fuzz_project, "in.parquet", data)
    if data == original:
        _check_rows(fail, acc, texts)
        return
    for out in acc.outputs.values():  # checksummed pages: whatever is read was in the file
        assert out["chain_input.text"] in texts
