"""Item cache at scale: lookup and insert cost per entry as the cache grows (issue #17 item 2).

    python benchmarks/cache_scale.py --sizes 10000 100000 1000000

Fills one fresh cache file (``ItemCache`` in a temporary folder) up to each size in turn, in
batches of ``--batch`` entries written the way the cache's writer thread writes them
(:func:`chainette.io.item_cache.write_batch`: one transaction per batch), and at each size
measures, in CPU µs per entry (``time.process_time``, this process only):

* ``insert``: writing the next ``--probe`` entries to SQLite (random keys, as SHA-256 keys are),
  what the cache's writer thread does (the GIL released for the statement);
* ``put``: what a run's loop thread pays per new reply (``ItemCache.put``: queue it for the
  writer, add its key to the key filter), thread CPU time;
* ``hit``: ``ItemCache.get`` of ``--probe`` random keys already stored;
* ``miss``: ``ItemCache.get`` of ``--probe`` keys not stored (a cold cache's lookup: answered by
  the cache's key filter, ~1.4% of them by SQLite);
* ``open``: opening the cache (wall seconds), the second of two opens: it reads the stored key
  filter; the first open after the cache outgrew the stored filter rebuilds it from a full
  scan (reported as ``first_open_s``);
* ``key``: ``ItemCache.key`` of a two-message request (the per-row key hashing);
* bytes on disk per entry (database + WAL, after a checkpoint).

Entries look like the benchmark step's: a ~30-character JSON reply, token counts, a model
name, an engine name. Prints a ``RESULT {json}`` line (``sizes``: one dict per size).
"""

from __future__ import annotations

import argparse
import hashlib
import random
import shutil
import tempfile
import time
from pathlib import Path

from common import emit, peak_rss_mb

ROUNDS = 3
"""Rounds of the lookup, key and put measurements at each size (the best is reported)."""


def _keys(start: int, n: int) -> list[str]:
    return [hashlib.sha256(f"entry {i}".encode()).hexdigest() for i in range(start, start + n)]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--sizes", type=int, nargs="+", default=[10_000, 100_000, 1_000_000])
    ap.add_argument("--probe", type=int, default=5000, help="operations timed at each size")
    ap.add_argument("--batch", type=int, default=2000, help="entries per write transaction")
    ap.add_argument("--keep", help="leave the filled cache (items.sqlite and its files) in this folder")
    a = ap.parse_args()

    from chainette.core.sampling import SamplingParams
    from chainette.engine.protocol import Completion, CompletionRequest, Usage
    from chainette.io.item_cache import ItemCache, _has_json, cache_info, write_batch

    folder = Path(tempfile.mkdtemp(prefix="chainette-cache-scale-"))
    path = folder / "items.sqlite"
    cache = ItemCache(path)
    writer = cache._connect(writer=True)
    one_statement = _has_json(writer)
    rng = random.Random(7)

    def entries(keys: list[str]) -> list[tuple[str, Completion, str]]:
        return [
            (
                k,
                Completion(text='{"answer":"A%d","score":0.5}' % i, reasoning=None, usage=Usage(42, 12), model="mock"),
                "mock",
            )
            for i, k in enumerate(keys)
        ]

    def fill(start: int, n: int) -> None:
        for s in range(start, start + n, a.batch):
            write_batch(writer, entries(_keys(s, min(a.batch, start + n - s))), one_statement)

    sampling = SamplingParams(max_tokens=64)
    schema = {"type": "object", "properties": {"answer": {"type": "string"}, "score": {"type": "number"}}}
    scope = {"model": "mock", "backend": "vllm_api", "endpoint": "http://127.0.0.1:1/v1"}
    requests = [
        CompletionRequest(
            messages=[{"role": "system", "content": "Reply with a JSON object."}, {"role": "user", "content": f"q{i}"}],
            json_schema=schema,
            sampling=sampling,
        )
        for i in range(a.probe)
    ]
    out = []
    stored = 0
    t_all = time.perf_counter()
    try:
        for size in sorted(a.sizes):
            fill(stored, size - a.probe - stored)
            stored = size - a.probe
            batch = entries(_keys(stored, a.probe))
            c0 = time.process_time()
            for s in range(0, a.probe, a.batch):
                write_batch(writer, batch[s : s + a.batch], one_statement)
            insert = (time.process_time() - c0) / a.probe * 1e6
            stored = size
            cache.close()  # stores the key filter, up to date with every row
            # a run opens the cache: time it twice. The first open rebuilds the key filter with a
            # full scan when the cache has outgrown the stored one (its capacity doubles each
            # time: once per doubling); the second is what every other run's open costs.
            w0 = time.perf_counter()
            cache = ItemCache(path)
            first_open_s, first_source = time.perf_counter() - w0, cache.filter_source
            cache.close()
            c0, w0 = time.process_time(), time.perf_counter()
            cache = ItemCache(path, flush_every=3600)  # nothing is written until close
            open_s, open_cpu = time.perf_counter() - w0, time.process_time() - c0
            hits = [hashlib.sha256(f"entry {rng.randrange(stored)}".encode()).hexdigest() for _ in range(a.probe)]
            misses = [hashlib.sha256(f"absent {i}".encode()).hexdigest() for i in range(a.probe)]
            # lookups, keys and puts: the best of ROUNDS rounds (CPU µs this thin move with the
            # machine's load; the best round is the cost itself)
            hit = miss = key = put = float("inf")
            for r in range(ROUNDS):
                c0 = time.process_time()
                found = sum(cache.get(k) is not None for k in hits)
                hit = min(hit, (time.process_time() - c0) / a.probe * 1e6)
                c0 = time.process_time()
                absent = sum(cache.get(k) is None for k in misses)
                miss = min(miss, (time.process_time() - c0) / a.probe * 1e6)
                c0 = time.process_time()
                for req in requests:
                    cache.key(req, scope)
                key = min(key, (time.process_time() - c0) / a.probe * 1e6)
                # what a run's loop thread pays per new reply: put (the SQLite write is the
                # writer thread's, timed as "insert" above); the queued entries are dropped
                fresh = entries(_keys(10**9 + size + r * a.probe, a.probe))
                c0 = time.thread_time()
                for k, c, e in fresh:
                    cache.put(k, c, e)
                put = min(put, (time.thread_time() - c0) / a.probe * 1e6)
                cache._pending.clear()
            writer.execute("PRAGMA wal_checkpoint(TRUNCATE)")
            info = cache_info(path)
            row = {
                "entries": info["entries"],
                "open_s": open_s,
                "open_cpu_s": open_cpu,
                "open_source": cache.filter_source,
                "first_open_s": first_open_s,
                "first_open_source": first_source,
                "insert_us": insert,
                "put_us": put,
                "hit_us": hit,
                "miss_us": miss,
                "key_us": key,
                "bytes_per_entry": info["size_bytes"] / max(1, info["entries"]),
                "size_mb": info["size_bytes"] / 2**20,
                "hits_found": found,
                "misses_absent": absent,
            }
            out.append(row)
            print(
                f"  {row['entries']:>9} entries: put {put:4.1f} us, insert {insert:5.1f} us, hit {hit:5.1f} us, miss {miss:5.1f} us, "
                f"key {key:4.1f} us, open {open_s * 1000:.1f} ms ({cache.filter_source} filter; first open "
                f"{first_open_s * 1000:.0f} ms, {first_source}), {row['bytes_per_entry']:.0f} B/entry "
                f"({row['size_mb']:.0f} MB)",
                flush=True,
            )
    finally:
        writer.close()
        cache.close()
        if a.keep:
            Path(a.keep).mkdir(parents=True, exist_ok=True)
            for f in folder.iterdir():
                shutil.move(str(f), Path(a.keep) / f.name)
        shutil.rmtree(folder, ignore_errors=True)
    emit(
        {
            "client": "chainette",
            "workload": "cache-scale",
            "sizes": out,
            "seconds": time.perf_counter() - t_all,
            "peak_rss_mb": peak_rss_mb(),
        }
    )


if __name__ == "__main__":
    main()
