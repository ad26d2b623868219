"""The item cache: completed LLM replies, content-addressed, shared across runs.

The key is :func:`chainette.utils.canonical.canonical_hash` of two parts: a header holding
the format version (``CACHE_VERSION``), the output schema, model, backend, endpoint kind and
sampling parameters (seed included), then the rendered messages.
Editing one step's prompt changes only that step's keys, so only its rows (and the rows
downstream, whose prompts change with its outputs) are requested again.

Stored in SQLite (WAL) under the user cache directory (``$CHAINETTE_CACHE_DIR`` or
``~/.cache/chainette/items.sqlite``). The cache holds every prompt and reply, so it is private
to the user: the cache directory is made 0700 and the database and its WAL/SHM files 0600
(an existing cache's permissions are fixed when it is opened). ``chainette cache info`` shows
it, ``chainette cache clear`` deletes it (:func:`cache_info`, :func:`clear_cache`). Reads
happen inline (a primary-key lookup); writes are appended to a list and committed in
batches by a background thread (one SQL statement per batch where SQLite has JSON functions,
so the thread releases the GIL once per batch, not once per row) and never block the loop.

Lookups first ask a Bloom filter of the stored keys (:class:`KeyFilter`), so a cold cache
answers "absent" without a SQLite call on the event loop. The filter is stored beside the
database (``items.sqlite-filter``) when a run closes the cache, with the last row it covers; the
next open reads it and adds only the rows written since (by any process), so opening a cache of
a million entries costs milliseconds, not the second a full scan of its keys takes. A missing,
damaged or stale filter file (the row it names is gone or different: a pruned or replaced
database) is rebuilt from a full scan; pruning and clearing delete it.

Each entry records when it was written (``created``, Unix seconds) and the engine that
answered (``engine``, the engine's name), so ``chainette cache prune --older-than DAYS
--engine NAME`` can remove entries (:func:`prune_cache`). A cache written before those
columns existed is migrated in place when it is opened (``ALTER TABLE ... ADD COLUMN``: no
rewrite, keys unchanged); its old entries count as written at the migration and have no
engine. Versions before the migration cannot add entries to a migrated cache (they still
run, uncached).
"""

from __future__ import annotations

import hashlib
import os
import sqlite3
import struct
import threading
import time
from pathlib import Path
from typing import Any

from chainette.engine.protocol import Completion, CompletionRequest, Usage
from chainette.errors import ConfigError
from chainette.utils.canonical import canonical_hasher, canonical_json

try:  # orjson is several times faster than the stdlib encoder
    from orjson import OPT_SORT_KEYS as _SORT_KEYS
    from orjson import dumps as _dumps
except ImportError:  # pragma: no cover - depends on the environment
    import json

    _SORT_KEYS = None  # type: ignore[assignment]  # only passed back to _dumps below

    def _dumps(obj: Any, /, default: Any = None, option: Any = None) -> bytes:  # type: ignore[misc]  # orjson's signature
        return json.dumps(obj, ensure_ascii=False).encode()


def _messages_json(messages: Any) -> bytes:
    """``canonical_json(messages)``, the same bytes, from orjson when every message is a dict of
    strings (the common case: orjson with sorted keys then writes exactly what the canonical
    encoder writes; floats and other values take the canonical path)."""
    if _SORT_KEYS is not None and type(messages) is list:
        for m in messages:
            if type(m) is not dict:
                break
            for k, v in m.items():
                if type(k) is not str or type(v) is not str:
                    break
            else:
                continue
            break
        else:
            try:
                return _dumps(messages, option=_SORT_KEYS)
            except TypeError:  # e.g. a lone surrogate: let the canonical encoder decide
                pass
    return canonical_json(messages)


CACHE_VERSION = "chainette-item-v2"
WRITER_CACHE_KB = 32768
"""SQLite page cache of the writer thread's connection (KiB, used as the cache grows): inserts
into a cache of a million entries find the key index in memory instead of re-reading it."""


def default_cache_path() -> Path:
    base = os.environ.get("CHAINETTE_CACHE_DIR")
    root = Path(base) if base else Path(os.environ.get("XDG_CACHE_HOME", Path.home() / ".cache")) / "chainette"
    return root / "items.sqlite"


SQLITE_SUFFIXES = ("", "-wal", "-shm", "-journal")
"""The database file and the files SQLite keeps beside it."""
FILTER_SUFFIX = "-filter"
"""The stored key filter beside the database (see :class:`KeyFilter`)."""


def _make_private(path: Path, mode: int) -> None:
    """``chmod`` ``path`` to ``mode`` when it exists and differs (best effort: a file or
    directory owned by someone else is left alone)."""
    try:
        if path.exists() and (path.stat().st_mode & 0o777) != mode:
            os.chmod(path, mode)
    except OSError:
        pass


def _files(path: Path) -> list[Path]:
    return [path.with_name(path.name + suffix) for suffix in (*SQLITE_SUFFIXES, FILTER_SUFFIX)]


def cache_info(path: str | Path | None = None) -> dict[str, Any]:
    """Where the item cache is, whether it exists, its size on disk and its number of entries."""
    p = Path(path) if path else default_cache_path()
    size = sum(f.stat().st_size for f in _files(p) if f.exists())
    entries = 0
    engines: dict[str, int] = {}
    oldest = newest = None
    if p.exists():
        try:
            conn = sqlite3.connect(f"{p.resolve().as_uri()}?mode=ro", uri=True, timeout=30)
            try:
                entries = conn.execute("SELECT count(*) FROM items").fetchone()[0]
                if {"created", "engine"} <= _columns(conn):
                    oldest, newest = conn.execute("SELECT min(created), max(created) FROM items").fetchone()
                    engines = {
                        e if e is not None else "(unknown)": n
                        for e, n in conn.execute(
                            "SELECT engine, count(*) FROM items GROUP BY engine ORDER BY count(*) DESC"
                        )
                    }
            finally:
                conn.close()
        except sqlite3.Error:
            entries = 0
    info: dict[str, Any] = {"path": str(p), "exists": p.exists(), "size_bytes": size, "entries": entries}
    if p.exists():  # what prune works with: bytes per entry, when entries were written, by which engine
        info.update(
            bytes_per_entry=round(size / entries) if entries else None, oldest=oldest, newest=newest, engines=engines
        )
    return info


def prune_cache(
    path: str | Path | None = None,
    *,
    older_than_days: float | None = None,
    engine: str | None = None,
    now: float | None = None,
) -> dict[str, Any]:
    """Delete the entries written more than ``older_than_days`` ago and/or answered by
    ``engine`` (both given: entries matching both); return ``cache_info`` after, with
    ``removed`` (entries deleted). The file is compacted (``VACUUM``) when anything was removed."""
    if older_than_days is None and engine is None:
        raise ConfigError("cache prune needs --older-than DAYS, --engine NAME or both")
    if older_than_days is not None and not older_than_days >= 0:
        raise ConfigError(f"--older-than must be a number of days >= 0, got {older_than_days!r}")
    p = Path(path) if path else default_cache_path()
    removed = 0
    if p.exists():
        conn = sqlite3.connect(p, timeout=30)
        try:
            conn.execute("PRAGMA journal_mode=WAL")
            _migrate(conn)
            where: list[str] = []
            args: list[int | str] = []
            if older_than_days is not None:
                where.append("created < ?")
                args.append(int((time.time() if now is None else now) - older_than_days * 86400))
            if engine is not None:
                where.append("engine = ?")
                args.append(engine)
            with conn:
                removed = conn.execute(f"DELETE FROM items WHERE {' AND '.join(where)}", args).rowcount
            if removed:
                conn.execute("VACUUM")  # may renumber rows: the stored filter is rebuilt on next open
                p.with_name(p.name + FILTER_SUFFIX).unlink(missing_ok=True)
            conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
        finally:
            conn.close()
    return {**cache_info(p), "removed": removed}


_SCHEMA = (
    "CREATE TABLE IF NOT EXISTS items (key TEXT PRIMARY KEY, text TEXT NOT NULL, reasoning TEXT, "
    "prompt_tokens INTEGER, completion_tokens INTEGER, model TEXT, created INTEGER NOT NULL DEFAULT 0, "
    "engine TEXT)"
)
_COLUMNS = "key, text, reasoning, prompt_tokens, completion_tokens, model, created, engine"
_INSERT = f"INSERT OR REPLACE INTO items ({_COLUMNS}) VALUES (?,?,?,?,?,?,?,?)"
# one statement for a whole batch: the rows travel as one JSON array (SQLite >= 3.38)
_INSERT_JSON = (
    f"INSERT OR REPLACE INTO items ({_COLUMNS}) SELECT value->>0, value->>1, value->>2, "
    "value->>3, value->>4, value->>5, value->>6, value->>7 FROM json_each(?)"
)


def _columns(conn: sqlite3.Connection) -> set[str]:
    return {row[1] for row in conn.execute("PRAGMA table_info(items)")}


def _migrate(conn: sqlite3.Connection) -> None:
    """Create the table, or add the ``created`` / ``engine`` columns to a cache from before them."""
    conn.execute(_SCHEMA)
    conn.commit()
    if {"created", "engine"} <= _columns(conn):
        return
    conn.execute("BEGIN IMMEDIATE")  # one migrator at a time; re-check under the lock
    try:
        cols = _columns(conn)
        if "created" not in cols:  # old entries count as written now (a constant default: no rewrite)
            conn.execute(f"ALTER TABLE items ADD COLUMN created INTEGER NOT NULL DEFAULT {int(time.time())}")
        if "engine" not in cols:
            conn.execute("ALTER TABLE items ADD COLUMN engine TEXT")
        conn.commit()
    except BaseException:
        conn.rollback()
        raise


def _batch_json(rows: list[tuple[Any, ...]]) -> str | None:
    """The batch as one JSON array for ``_INSERT_JSON``; ``None`` when a value cannot travel
    that way unchanged (a NUL character, a lone surrogate): then the rows go one by one."""
    try:
        payload = _dumps(rows).decode()
    except (TypeError, ValueError):
        return None
    return None if "\\u0000" in payload else payload


def write_batch(
    conn: sqlite3.Connection, batch: list[tuple[str, Completion, str | None]], one_statement: bool = True
) -> tuple[int, int]:
    """Insert ``(key, completion, engine)`` entries in one transaction (what the writer thread
    does every ``flush_every`` seconds; ``benchmarks/cache_scale.py`` times it). Returns the
    rows the transaction added, ``(before, after)``: rowids ``before < rowid <= after``. It
    holds the write lock from its start, so no other process adds a row in that range."""
    now = int(time.time())
    rows = [
        (k, c.text, c.reasoning, c.usage.prompt_tokens, c.usage.completion_tokens, c.model, now, e) for k, c, e in batch
    ]
    payload = _batch_json(rows) if one_statement else None
    conn.execute("BEGIN IMMEDIATE")
    try:
        before = _last_rowid(conn)
        if payload is not None:  # the GIL is released once for the whole batch
            conn.execute(_INSERT_JSON, (payload,))
        else:
            conn.executemany(_INSERT, rows)
        after = _last_rowid(conn)
        conn.commit()
    except BaseException:
        conn.rollback()
        raise
    return before, after


def _last_rowid(conn: sqlite3.Connection) -> int:
    return int(conn.execute("SELECT max(rowid) FROM items").fetchone()[0] or 0)


def _has_json(conn: sqlite3.Connection) -> bool:
    try:
        return conn.execute("SELECT value->>0 FROM json_each('[[1]]')").fetchone()[0] == 1
    except sqlite3.Error:
        return False


def clear_cache(path: str | Path | None = None) -> dict[str, Any]:
    """Delete the item cache (the database and its WAL/SHM files); return what was removed."""
    p = Path(path) if path else default_cache_path()
    info = cache_info(p)
    removed = []
    for f in _files(p):
        if f.exists():
            f.unlink()
            removed.append(str(f))
    return {**info, "removed": removed}


def _header(request: CompletionRequest, scope: dict[str, Any]) -> dict[str, Any]:
    """The step-constant part of a key (the same for every row of a step)."""
    return {
        "v": CACHE_VERSION,
        "schema": request.json_schema,
        "sampling": request.sampling.model_dump(exclude_none=True),
        **scope,
    }


def _positions(key: str) -> tuple[int, int]:
    """Two 64-bit numbers from a key: its own hex digits when it is a digest (every key
    :meth:`ItemCache.key` makes is a SHA-256 hex digest), else a BLAKE2 hash of it. Deterministic
    across processes, so a filter can be stored and read again."""
    head = key[:32]
    if len(head) == 32 and head.isalnum():  # no sign, space or underscore: int() reads digits only
        try:
            h = int(head, 16)
            return h & 0xFFFFFFFFFFFFFFFF, h >> 64
        except ValueError:
            pass
    d = hashlib.blake2b(key.encode("utf-8", "surrogatepass"), digest_size=16).digest()
    return int.from_bytes(d[:8], "little"), int.from_bytes(d[8:], "little")


FILTER_MAGIC = b"chainette-key-filter-2\n"
_FILTER_HEADER = struct.Struct("<qIIq")  # the last row covered, its key's length, layers, room left
_LAYER_BITS = struct.Struct("<Q")
MIN_FILTER_BITS = 1 << 20
"""the smallest layer: 128 KiB, 65,536 keys at the designed rate"""
BITS_PER_KEY = 16


class KeyFilter:
    """A Bloom filter of the keys a cache holds, fed by every ``put``: a lookup of a key it never
    saw answers "absent" without touching SQLite (what a cold cache does for every row). 16 bits
    per key, two positions from the key (:func:`_positions`): about 1.4% of absent keys still go
    to SQLite. It grows with the keys instead of being sized for the largest run: when its
    newest layer holds its designed number of keys, a layer twice as big takes the next ones
    (a lookup checks each layer; the next open of a cache whose filter grew rebuilds it as one
    layer of the right size). Stored beside the database with the last row it covers
    (:meth:`dump`, :meth:`load`). Entries another process adds while this one runs are not in
    it (a miss here: the request is sent again); the next open reads them from the database."""

    def __init__(self, capacity: int) -> None:
        self.layers: list[tuple[int, bytearray]] = []  # (mask, bits), oldest first
        self.room = 0  # keys the newest layer still takes at its designed rate
        self._add_layer(capacity)

    def _add_layer(self, capacity: int) -> None:
        nbits = MIN_FILTER_BITS
        while nbits < BITS_PER_KEY * capacity:
            nbits <<= 1
        self.layers.append((nbits - 1, bytearray(nbits >> 3)))
        self.room = nbits // BITS_PER_KEY

    @property
    def capacity(self) -> int:
        """Keys it holds at its designed false-positive rate (every layer's)."""
        return sum((mask + 1) // BITS_PER_KEY for mask, _ in self.layers)

    @property
    def nbytes(self) -> int:
        """Bytes its layers take in memory (and in the stored file, besides the header)."""
        return sum(len(bits) for _, bits in self.layers)

    def add(self, key: str) -> None:
        if self.room <= 0:  # the newest layer is full: a layer twice as big takes the next keys
            self._add_layer(2 * ((self.layers[-1][0] + 1) // BITS_PER_KEY))
        self.room -= 1
        mask, bits = self.layers[-1]
        for h in _positions(key):
            p = h & mask
            bits[p >> 3] |= 1 << (p & 7)

    def __contains__(self, key: str) -> bool:
        a, b = _positions(key)
        for mask, bits in self.layers:
            p = a & mask
            if bits[p >> 3] & (1 << (p & 7)):
                p = b & mask
                if bits[p >> 3] & (1 << (p & 7)):
                    return True
        return False

    def dump(self, path: Path, covered: int, anchor: str) -> None:
        """Write the filter to ``path`` atomically (0600): ``covered`` is the last row it holds,
        ``anchor`` that row's key (how :meth:`load`'s caller recognises the same database)."""
        tmp = path.with_name(f"{path.name}.{os.getpid()}.tmp")
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        try:
            with os.fdopen(fd, "wb") as f:
                a = anchor.encode("utf-8", "surrogatepass")
                f.write(FILTER_MAGIC + _FILTER_HEADER.pack(covered, len(a), len(self.layers), self.room) + a)
                f.write(b"".join(_LAYER_BITS.pack(mask + 1) for mask, _ in self.layers))
                for _, bits in self.layers:
                    f.write(bits)
            os.replace(tmp, path)
        except BaseException:
            tmp.unlink(missing_ok=True)
            raise

    @classmethod
    def load(cls, path: Path) -> tuple[KeyFilter, int, str] | None:
        """``(filter, covered, anchor)`` from a file :meth:`dump` wrote; ``None`` when it is
        missing or not a whole filter (an older format included: the caller rebuilds it)."""
        head = len(FILTER_MAGIC) + _FILTER_HEADER.size
        try:
            with path.open("rb") as fh:
                start = fh.read(head)
                if len(start) < head or not start.startswith(FILTER_MAGIC):
                    return None
                covered, alen, nlayers, room = _FILTER_HEADER.unpack_from(start, len(FILTER_MAGIC))
                if not 1 <= nlayers <= 64:
                    return None
                anchor = fh.read(alen).decode("utf-8", "surrogatepass")
                sizes = fh.read(nlayers * _LAYER_BITS.size)
                if len(anchor.encode("utf-8", "surrogatepass")) != alen or len(sizes) != nlayers * _LAYER_BITS.size:
                    return None
                widths = [_LAYER_BITS.unpack_from(sizes, i * _LAYER_BITS.size)[0] for i in range(nlayers)]
                if any(n < 8 or n & (n - 1) for n in widths):
                    return None
                whole = head + alen + len(sizes) + sum(n // 8 for n in widths)
                if os.fstat(fh.fileno()).st_size != whole:
                    return None
                layers = []
                for nbits in widths:
                    bits = bytearray(nbits // 8)
                    if fh.readinto(bits) != len(bits):  # read straight into the filter: no copy
                        return None
                    layers.append((nbits - 1, bits))
        except (OSError, UnicodeDecodeError):
            return None
        f = cls.__new__(cls)
        f.layers, f.room = layers, room
        return f, covered, anchor


class ItemCache:
    """SQLite-backed reply cache. Use as ``cache.get(key)`` / ``cache.put(key, completion)``."""

    def __init__(self, path: str | Path | None = None, *, flush_every: float = 0.2) -> None:
        self.path = Path(path) if path else default_cache_path()
        folder = self.path.parent
        own_folder = path is None or not folder.exists()  # the cache directory, or one made for it
        folder.mkdir(mode=0o700, parents=True, exist_ok=True)
        if own_folder:
            _make_private(folder, 0o700)
        os.close(os.open(self.path, os.O_RDWR | os.O_CREAT, 0o600))  # created private, never 0644
        self._read = self._connect()
        for f in _files(self.path):  # an existing cache, and the WAL/SHM files SQLite made
            _make_private(f, 0o600)
        _migrate(self._read)
        self._filter_path = self.path.with_name(self.path.name + FILTER_SUFFIX)
        self._filter_changed = False  # whether the stored filter file lacks keys this one holds
        self._filter, self._covered, self.filter_source = self._open_filter()
        self._own_rows_until: int | None = self._covered  # see _write_loop
        self._pending: list[tuple[str, Completion, str | None]] = []  # appended by put (atomic under the GIL)
        self._wake = threading.Event()  # set by close
        self._closing = False
        self._flush_every = flush_every
        self._writer = threading.Thread(target=self._write_loop, name="chainette-cache", daemon=True)
        self._writer.start()
        self.hits = 0
        self.misses = 0
        self._prefixes: dict[tuple[Any, ...], tuple[Any, Any, Any]] = {}

    def _open_filter(self) -> tuple[KeyFilter, int, str]:
        """The stored filter brought up to date with the rows written since it was stored, or a
        new one from a full scan; with the last row covered and where it came from."""
        top = _last_rowid(self._read)
        stored = KeyFilter.load(self._filter_path)
        if stored is not None:
            keys, covered, anchor = stored
            row = self._read.execute("SELECT key FROM items WHERE rowid=?", (covered,)).fetchone()
            same_db = (row[0] == anchor) if row else (covered == 0 and anchor == "")
            # a filter that grew past its first layer is rebuilt as one layer of the right size
            if same_db and covered <= top and top < keys.capacity and len(keys.layers) == 1:
                last = self._scan(keys, covered)
                self._filter_changed = last != covered
                return keys, last, "stored"
        keys = KeyFilter(2 * top)  # room for as many new keys (at least a first layer: MIN_FILTER_BITS)
        self._filter_changed = True
        return keys, self._scan(keys, 0), "rebuilt"

    def _scan(self, keys: KeyFilter, after: int) -> int:
        """Add the keys of the rows after row ``after``; return the last row added."""
        last = after
        for rowid, k in self._read.execute("SELECT rowid, key FROM items WHERE rowid > ? ORDER BY rowid", (after,)):
            keys.add(k)
            last = rowid
        return last

    def _store_filter(self) -> None:
        """Store the filter, brought up to date with every row written until now (this run's
        and other processes'), so the next open reads it instead of scanning every key."""
        top = _last_rowid(self._read)
        if self._own_rows_until == top:  # every row since the filter's last one is this cache's own
            covered = top
        else:  # another process wrote too: add its keys
            covered = self._scan(self._filter, self._covered)
        if covered == self._covered and not self._filter_changed:
            return
        row = self._read.execute("SELECT key FROM items WHERE rowid=?", (covered,)).fetchone()
        if covered and row is None:  # the rows moved under us (a concurrent prune): rebuild next time
            self._filter_path.unlink(missing_ok=True)
            return
        try:
            self._filter.dump(self._filter_path, covered, row[0] if row else "")
        except OSError:
            pass  # a read-only or full disk: the next open scans the keys instead

    def _connect(self, writer: bool = False) -> sqlite3.Connection:
        conn = sqlite3.connect(self.path, check_same_thread=False, timeout=30)
        conn.execute("PRAGMA journal_mode=WAL")
        conn.execute("PRAGMA synchronous=NORMAL")
        if writer:  # a large cache's index pages stay in memory
            conn.execute(f"PRAGMA cache_size=-{WRITER_CACHE_KB}")
        return conn

    def key(self, request: CompletionRequest, scope: dict[str, Any]) -> str:
        """``canonical_hash(header, request.messages)``, with the header hashed once per step."""
        memo_key = (id(request.json_schema), id(request.sampling), tuple(sorted(scope.items())))
        hit = self._prefixes.get(memo_key)
        if hit is None or hit[0] is not request.json_schema or hit[1] is not request.sampling:
            if len(self._prefixes) > 256:
                self._prefixes.clear()
            hit = self._prefixes[memo_key] = (
                request.json_schema,
                request.sampling,
                canonical_hasher(_header(request, scope)),
            )
        digest = hit[2].copy()
        digest.update(_messages_json(request.messages))
        return digest.hexdigest()

    def get(self, key: str) -> Completion | None:
        if key not in self._filter:  # never stored: no SQLite call
            self.misses += 1
            return None
        row = self._read.execute(
            "SELECT text, reasoning, prompt_tokens, completion_tokens, model FROM items WHERE key=?", (key,)
        ).fetchone()
        if row is None:
            self.misses += 1
            return None
        self.hits += 1
        # the usage the reply cost when it was first made: what this hit saves (not spent again)
        return Completion(text=row[0], reasoning=row[1], usage=Usage(row[2] or 0, row[3] or 0), model=row[4])

    def put(self, key: str, completion: Completion, engine: str | None = None) -> None:
        """Queue a reply for the writer thread (``engine``: the name of the engine that answered)."""
        self._filter.add(key)
        self._filter_changed = True
        self._pending.append((key, completion, engine))
        if self._flush_every <= 0:  # write at once
            self._wake.set()

    def _write_loop(self) -> None:
        """Write queued replies in one transaction per ``flush_every`` seconds (not one per reply)."""
        conn = self._connect(writer=True)
        one_statement = _has_json(conn)
        try:
            while True:
                self._wake.wait(self._flush_every if self._flush_every > 0 else None)
                self._wake.clear()
                closing = self._closing
                batch, self._pending = self._pending, []
                if batch:
                    before, after = write_batch(conn, batch, one_statement)
                    # the rows since the filter's last one are all this cache's while no other
                    # process wrote between its transactions (their keys are in the filter)
                    self._own_rows_until = after if self._own_rows_until == before else None
                if closing and not self._pending:
                    break
        finally:
            conn.close()

    def close(self) -> None:
        """Flush pending writes and stop the writer thread."""
        if self._writer.is_alive():
            self._closing = True
            self._wake.set()
            self._writer.join(timeout=30)
            if not self._writer.is_alive():
                try:
                    self._store_filter()
                except sqlite3.Error:
                    self._filter_path.unlink(missing_ok=True)
        self._read.close()
