"""Issue #17 item 2: the item cache records when and by which engine each entry was written,
migrates a cache from before those columns in place, prunes by age and by engine (library and
`chainette cache prune`), writes batches in one statement without changing what is stored, and
hashes messages to the same keys on its fast path."""

from __future__ import annotations

import json
import random
import sqlite3
import time

import pytest
from typer.testing import CliRunner

from chainette.cli import app
from chainette.engine.protocol import Completion, Usage
from chainette.errors import ConfigError
from chainette.io.item_cache import (
    ItemCache,
    KeyFilter,
    _messages_json,
    cache_info,
    prune_cache,
    write_batch,
)
from chainette.utils.canonical import canonical_json

DAY = 86400


def _completion(text: str = '{"a": 1}', reasoning: str | None = None) -> Completion:
    return Completion(text=text, reasoning=reasoning, usage=Usage(7, 3), model="m")


def _old_cache(path) -> None:
    """A cache as versions before issue #17 wrote it (six columns, no created/engine)."""
    conn = sqlite3.connect(path)
    conn.execute(
        "CREATE TABLE items (key TEXT PRIMARY KEY, text TEXT NOT NULL, reasoning TEXT, "
        "prompt_tokens INTEGER, completion_tokens INTEGER, model TEXT)"
    )
    conn.executemany(
        "INSERT INTO items VALUES (?,?,?,?,?,?)", [(f"old{i}", f"reply {i}", None, 5, 6, "m") for i in range(3)]
    )
    conn.commit()
    conn.close()


def test_an_old_cache_is_migrated_in_place_and_keeps_its_entries(tmp_path):
    path = tmp_path / "items.sqlite"
    _old_cache(path)
    before = time.time()
    cache = ItemCache(path)
    try:
        hit = cache.get("old1")
        assert hit is not None and hit.text == "reply 1" and hit.usage.prompt_tokens == 5
        cache.put("new", _completion(), "gpt")
    finally:
        cache.close()
    conn = sqlite3.connect(path)
    rows = dict(conn.execute("SELECT key, engine FROM items").fetchall())
    created = [c for (c,) in conn.execute("SELECT created FROM items")]
    conn.close()
    assert rows == {"old0": None, "old1": None, "old2": None, "new": "gpt"}
    assert all(before - 1 <= c <= time.time() + 1 for c in created)  # old entries: written at the migration
    ItemCache(path).close()  # opening a migrated cache again changes nothing


def test_prune_by_age_by_engine_and_both(tmp_path):
    path = tmp_path / "items.sqlite"
    cache = ItemCache(path, flush_every=0)
    for i in range(4):
        cache.put(f"k{i}", _completion(), "a" if i % 2 else "b")
    cache.close()
    now = time.time()
    conn = sqlite3.connect(path)
    conn.execute("UPDATE items SET created = ? WHERE key IN ('k0', 'k1')", (int(now - 40 * DAY),))
    conn.commit()
    conn.close()
    info = cache_info(path)
    assert info["entries"] == 4 and info["engines"] == {"a": 2, "b": 2} and info["bytes_per_entry"] > 0
    assert info["oldest"] < info["newest"]

    assert prune_cache(path, older_than_days=100, now=now)["removed"] == 0
    both = prune_cache(path, older_than_days=30, engine="a", now=now)
    assert both["removed"] == 1 and both["entries"] == 3  # k1: old and engine a
    by_age = prune_cache(path, older_than_days=30, now=now)
    assert by_age["removed"] == 1 and by_age["entries"] == 2  # k0
    by_engine = prune_cache(path, engine="b")
    assert by_engine["removed"] == 1 and by_engine["engines"] == {"a": 1}
    cache = ItemCache(path)
    try:
        assert cache.get("k3") is not None and cache.get("k0") is None
    finally:
        cache.close()
    with pytest.raises(ConfigError, match="--older-than"):
        prune_cache(path)
    with pytest.raises(ConfigError, match="days >= 0"):
        prune_cache(path, older_than_days=-1)
    assert prune_cache(tmp_path / "absent.sqlite", engine="x")["removed"] == 0


def test_cache_prune_through_the_cli(tmp_path, monkeypatch):
    monkeypatch.setenv("CHAINETTE_CACHE_DIR", str(tmp_path))
    cache = ItemCache(flush_every=0)
    cache.put("k1", _completion(), "gpt")
    cache.put("k2", _completion(), "local")
    cache.close()
    runner = CliRunner()
    shown = runner.invoke(app, ["cache", "info"], catch_exceptions=False)
    assert shown.exit_code == 0 and "by engine:" in shown.output and "gpt 1" in shown.output
    as_json = json.loads(runner.invoke(app, ["cache", "info", "--json"], catch_exceptions=False).output)
    assert as_json["entries"] == 2 and as_json["engines"] == {"gpt": 1, "local": 1}
    pruned = runner.invoke(app, ["cache", "prune", "--engine", "gpt"], catch_exceptions=False)
    said = " ".join(pruned.output.split())
    assert pruned.exit_code == 0 and "Removed 1 entries" in said and "1 left" in said
    aged = runner.invoke(app, ["cache", "prune", "--older-than", "0.5"], catch_exceptions=False)
    assert aged.exit_code == 0 and "Removed 0 entries" in " ".join(aged.output.split())
    bare = runner.invoke(app, ["cache", "prune"])
    assert bare.exit_code != 0 and "--older-than" in bare.output
    assert "prune" in runner.invoke(app, ["cache", "--help"]).output


@pytest.mark.parametrize("one_statement", [True, False])
def test_a_written_batch_reads_back_exactly(tmp_path, one_statement):
    path = tmp_path / "items.sqlite"
    cache = ItemCache(path)
    conn = cache._connect()
    texts = ['{"a": "é ✓ 日本"}', "with\x00nul", 'quote " and \\ backslash', "\n\t", "x" * 5000]
    batch = [
        (f"k{i}", _completion(t, reasoning="why" if i % 2 else None), None if i % 2 else "e")
        for i, t in enumerate(texts)
    ]
    try:
        write_batch(conn, batch, one_statement)
        cache.close()
        cache = ItemCache(path)  # written behind its back: a new cache object knows the keys
        for key, comp, _ in batch:
            got = cache.get(key)
            assert got is not None and (got.text, got.reasoning, got.usage.prompt_tokens, got.model) == (
                comp.text,
                comp.reasoning,
                7,
                "m",
            )
        engines = dict(conn.execute("SELECT key, engine FROM items"))
        assert engines == {k: e for k, _, e in batch}
    finally:
        conn.close()
        cache.close()


def test_close_writes_everything_queued(tmp_path):
    path = tmp_path / "items.sqlite"
    cache = ItemCache(path, flush_every=5.0)  # close must not wait for the next flush
    for i in range(1000):
        cache.put(f"k{i}", _completion(), "e")
    started = time.monotonic()
    cache.close()
    assert time.monotonic() - started < 4.0
    assert cache_info(path)["entries"] == 1000


def test_the_key_filter_answers_absent_keys_without_sqlite(tmp_path):
    path = tmp_path / "items.sqlite"
    cache = ItemCache(path, flush_every=0)
    cache.put("stored", _completion(), "e")
    cache.close()
    cache = ItemCache(path)
    try:
        assert "stored" in cache._filter and cache.get("stored") is not None
        cache._read.close()  # any SQLite call would now fail: absent keys must not make one
        absent = [f"absent{i}" for i in range(2000)]
        assert sum(k in cache._filter for k in absent) < 100  # ~1.4% false positives
        assert all(cache.get(k) is None for k in absent if k not in cache._filter)
        cache.put("new", _completion(), "e")
        assert "new" in cache._filter  # a key put in this run is looked up (a duplicate row)
    finally:
        cache._read = sqlite3.connect(path)
        cache.close()


def test_the_fast_message_encoding_is_the_canonical_one():
    rng = random.Random(3)
    alphabet = [chr(c) for c in range(0, 0x250)] + ["日", "✓", "\u2028", "\U0001f600", '"', "\\"]
    for _ in range(2000):
        text = "".join(rng.choice(alphabet) for _ in range(rng.randrange(0, 30)))
        messages = [{"role": "system", "content": text[::-1]}, {"role": "user", "content": text}]
        assert _messages_json(messages) == canonical_json(messages)
    odd = [{"role": "user", "content": [{"type": "text", "text": "hi"}]}, {"role": "user", "content": 1.5e16}]
    assert _messages_json(odd) == canonical_json(odd)  # not all strings: the canonical path
    with pytest.raises(UnicodeEncodeError):
        _messages_json([{"role": "user", "content": "\ud800"}])  # as canonical_json does


def _hexkey(i: int, salt: str = "k") -> str:
    import hashlib

    return hashlib.sha256(f"{salt}{i}".encode()).hexdigest()


def _fill(path, keys, flush_every: float = 0) -> None:
    cache = ItemCache(path, flush_every=flush_every)
    for k in keys:
        cache.put(k, _completion(), "e")
    cache.close()


def test_the_key_filter_is_stored_at_close_and_read_at_the_next_open(tmp_path, monkeypatch):
    path = tmp_path / "items.sqlite"
    keys = [_hexkey(i) for i in range(500)]
    _fill(path, keys)
    stored = tmp_path / "items.sqlite-filter"
    assert stored.exists() and (stored.stat().st_mode & 0o777) == 0o600
    scanned: list[int] = []
    real_scan = ItemCache._scan
    monkeypatch.setattr(ItemCache, "_scan", lambda self, f, after: scanned.append(after) or real_scan(self, f, after))
    cache = ItemCache(path)
    try:
        assert cache.filter_source == "stored"
        assert scanned == [500], "only the rows after the stored filter's last row are read"
        assert all(k in cache._filter for k in keys) and cache.get(keys[7]) is not None
        assert sum(_hexkey(i, "absent") in cache._filter for i in range(2000)) < 100
    finally:
        cache.close()


def test_rows_another_process_wrote_after_the_filter_was_stored_are_found(tmp_path):
    path = tmp_path / "items.sqlite"
    _fill(path, [_hexkey(i) for i in range(100)])  # stores a filter covering rows 1..100
    # another writer that never stores a filter (an older version, or a process that crashed)
    conn = sqlite3.connect(path)
    later = [_hexkey(i, "later") for i in range(50)]
    write_batch(conn, [(k, _completion(), "e") for k in later])
    conn.close()
    cache = ItemCache(path)
    try:
        assert cache.filter_source == "stored"
        assert all(cache.get(k) is not None for k in later), "rows written after the stored filter were missed"
    finally:
        cache.close()
    assert KeyFilter.load(tmp_path / "items.sqlite-filter")[1] == 150  # the next open starts from row 150


def test_two_caches_open_at_once_both_keep_their_keys_in_the_stored_filter(tmp_path):
    path = tmp_path / "items.sqlite"
    _fill(path, [])
    a, b = ItemCache(path, flush_every=0), ItemCache(path, flush_every=0)
    mine, theirs = [_hexkey(i, "a") for i in range(30)], [_hexkey(i, "b") for i in range(30)]
    for k in mine:
        a.put(k, _completion(), "e")
    for k in theirs:
        b.put(k, _completion(), "e")
    b.close()
    a.close()  # the last to close stores the filter: it must hold b's keys too
    keys, covered, _ = KeyFilter.load(tmp_path / "items.sqlite-filter")
    assert covered == 60 and all(k in keys for k in mine + theirs)


@pytest.mark.parametrize("damage", ["truncated", "garbage", "replaced database", "pruned"])
def test_a_damaged_or_stale_stored_filter_is_rebuilt(tmp_path, damage):
    path = tmp_path / "items.sqlite"
    keys = [_hexkey(i) for i in range(200)]
    _fill(path, keys)
    stored = tmp_path / "items.sqlite-filter"
    if damage == "truncated":
        stored.write_bytes(stored.read_bytes()[:-10])
    elif damage == "garbage":
        stored.write_bytes(b"not a filter at all")
    elif damage == "replaced database":  # another cache copied over this one, filter left behind
        for suffix in ("", "-wal", "-shm"):
            (tmp_path / f"items.sqlite{suffix}").unlink(missing_ok=True)
        conn = sqlite3.connect(path)
        conn.close()
        keys = [_hexkey(i, "other") for i in range(300)]
        saved = stored.read_bytes()
        _fill(path, keys)
        stored.write_bytes(saved)  # the old database's filter, naming a row that now holds another key
    else:
        assert prune_cache(path, older_than_days=0, now=time.time() + DAY)["removed"] == 200
        assert not stored.exists(), "prune must delete the stored filter (VACUUM may renumber rows)"
        keys = []
    cache = ItemCache(path)
    try:
        assert cache.filter_source == "rebuilt"
        assert all(cache.get(k) is not None for k in keys)
    finally:
        cache.close()


def test_clear_removes_the_stored_filter(tmp_path):
    from chainette.io.item_cache import clear_cache

    path = tmp_path / "items.sqlite"
    _fill(path, [_hexkey(1)])
    assert (tmp_path / "items.sqlite-filter").exists()
    removed = clear_cache(path)["removed"]
    assert str(tmp_path / "items.sqlite-filter") in removed and not (tmp_path / "items.sqlite-filter").exists()


def test_any_key_finds_its_place_in_the_key_filter():
    from chainette.io.item_cache import _positions

    keys = [_hexkey(1), "-" + "1" * 40, "+" + "f" * 40, " " + "a" * 40, "1_2" * 20, "short", "é" * 40, ""]
    keys += ["ffffffffffffffffffffffffffffffff", "0" * 64]
    f = KeyFilter(100)
    for k in keys:
        a, b = _positions(k)
        assert 0 <= a < 2**64 and 0 <= b < 2**64, k
        f.add(k)
    assert all(k in f for k in keys)


def test_the_key_filter_grows_a_layer_when_full_and_keeps_every_key():
    from chainette.io.item_cache import MIN_FILTER_BITS

    f = KeyFilter(10)
    assert f.nbytes == MIN_FILTER_BITS // 8, "a new cache's filter starts small, not sized for the largest run"
    first = f.capacity
    keys = [_hexkey(i) for i in range(first + 1000)]
    for k in keys:
        f.add(k)
    assert len(f.layers) == 2 and f.layers[1][0] + 1 == 2 * MIN_FILTER_BITS
    assert all(k in f for k in keys), "a key of any layer is found"
    absent = sum(_hexkey(i, "absent") in f for i in range(20_000))
    assert absent < 20_000 * 0.04, f"{absent} false positives: each full layer adds ~1.4% at most"


def test_a_grown_filter_is_stored_whole_and_rebuilt_as_one_layer_at_the_next_open(tmp_path, monkeypatch):
    from chainette.io import item_cache

    monkeypatch.setattr(item_cache, "MIN_FILTER_BITS", 1 << 10)  # 64 keys per first layer
    path = tmp_path / "items.sqlite"
    keys = [_hexkey(i) for i in range(300)]
    _fill(path, keys)
    stored, covered, _ = KeyFilter.load(tmp_path / "items.sqlite-filter")
    assert len(stored.layers) > 1 and covered == 300 and all(k in stored for k in keys)
    cache = ItemCache(path)
    try:
        assert cache.filter_source == "rebuilt" and len(cache._filter.layers) == 1
        assert cache._filter.capacity >= 2 * 300, "room for the cache's keys and as many new ones"
        assert all(cache.get(k) is not None for k in keys)
    finally:
        cache.close()
    again = ItemCache(path)
    try:
        assert again.filter_source == "stored"
    finally:
        again.close()


def test_a_filter_file_of_the_earlier_format_is_rebuilt(tmp_path):
    path = tmp_path / "items.sqlite"
    keys = [_hexkey(i) for i in range(50)]
    _fill(path, keys)
    stored = tmp_path / "items.sqlite-filter"
    import struct

    old = b"chainette-key-filter-1\n" + struct.pack("<QqI", 1 << 23, 50, 0) + bytes((1 << 23) // 8)
    stored.write_bytes(old)
    assert KeyFilter.load(stored) is None
    cache = ItemCache(path)
    try:
        assert cache.filter_source == "rebuilt" and all(cache.get(k) is not None for k in keys)
    finally:
        cache.close()


def test_a_written_batch_reports_the_rows_it_added(tmp_path):
    path = tmp_path / "items.sqlite"
    _fill(path, [_hexkey(i) for i in range(10)])
    conn = sqlite3.connect(path)
    try:
        assert write_batch(conn, [(_hexkey(i, "n"), _completion(), "e") for i in range(5)]) == (10, 15)
        assert write_batch(conn, [(_hexkey(0, "n"), _completion(), "e")]) == (15, 16)  # replaced: a new row
    finally:
        conn.close()


def test_a_cache_that_alone_wrote_since_its_open_stores_its_filter_without_reading_rows_back(tmp_path, monkeypatch):
    path = tmp_path / "items.sqlite"
    _fill(path, [_hexkey(i) for i in range(100)])
    cache = ItemCache(path, flush_every=0)
    scanned: list[int] = []
    real_scan = ItemCache._scan
    monkeypatch.setattr(ItemCache, "_scan", lambda self, f, after: scanned.append(after) or real_scan(self, f, after))
    mine = [_hexkey(i, "mine") for i in range(200)]
    for k in mine:
        cache.put(k, _completion(), "e")
    cache.close()
    assert scanned == [], "its own rows are in the filter already: nothing to read back"
    keys, covered, _ = KeyFilter.load(tmp_path / "items.sqlite-filter")
    assert covered == 300 and all(k in keys for k in mine)


def _rows(path) -> int:
    conn = sqlite3.connect(path)
    try:
        return conn.execute("SELECT count(*) FROM items").fetchone()[0]
    finally:
        conn.close()


def test_rows_another_writer_added_between_this_caches_batches_are_in_its_stored_filter(tmp_path):
    path = tmp_path / "items.sqlite"
    _fill(path, [])
    cache = ItemCache(path, flush_every=0)
    try:
        cache.put(_hexkey(1, "mine"), _completion(), "e")
        deadline = time.time() + 10
        while _rows(path) < 1 and time.time() < deadline:
            time.sleep(0.01)
        conn = sqlite3.connect(path)
        theirs = [_hexkey(i, "theirs") for i in range(20)]
        write_batch(conn, [(k, _completion(), "e") for k in theirs])
        conn.close()
        cache.put(_hexkey(2, "mine"), _completion(), "e")
    finally:
        cache.close()
    keys, covered, _ = KeyFilter.load(tmp_path / "items.sqlite-filter")
    assert covered == 22 and all(k in keys for k in theirs), "another writer's rows must be read into the filter"
