"""Canonical JSON and the one content hash built on it.

Every hash Chainette stores or compares (the item cache's keys, a run's chain and input
fingerprints, the fake engine's per-request seed) is a SHA-256 over :func:`canonical_json`:
keys sorted, no whitespace, UTF-8 (``ensure_ascii=False``), Pydantic models as their JSON
dump and anything else JSON cannot encode as its ``str()``. Several parts are hashed one per
line, so the same values always give the same hash and different splits never collide.

A hash that outlives a run (a cache key) starts with a header naming its format version
(``{"v": "chainette-item-v2", ...}``): changing what goes into the key means bumping that
version, which leaves old entries unused instead of wrong.
"""

from __future__ import annotations

import hashlib
import json
from typing import Any

__all__ = ["canonical_json", "canonical_hash", "canonical_hasher"]


def _default(obj: Any) -> Any:
    dump = getattr(obj, "model_dump", None)  # a Pydantic model (no import needed here)
    if callable(dump):
        return dump(mode="json")
    return str(obj)


def canonical_json(obj: Any) -> bytes:
    """``obj`` as canonical JSON bytes (sorted keys, compact, UTF-8)."""
    return json.dumps(obj, sort_keys=True, separators=(",", ":"), ensure_ascii=False, default=_default).encode()


def canonical_hasher(*parts: Any) -> hashlib._Hash:
    """A SHA-256 fed with ``parts`` one canonical-JSON line each, every line ending in a newline.

    For keys with a part shared by many requests: hash it once, then per request
    ``h = base.copy(); h.update(canonical_json(last_part))`` gives
    ``canonical_hash(*parts, last_part)``.
    """
    h = hashlib.sha256()
    for part in parts:
        h.update(canonical_json(part))
        h.update(b"\n")
    return h


def canonical_hash(*parts: Any, length: int | None = None) -> str:
    """The hex SHA-256 of ``parts`` (canonical JSON, one per line, no newline after the last),
    cut to ``length`` characters when given."""
    *head, last = parts
    h = canonical_hasher(*head)
    h.update(canonical_json(last))
    digest = h.hexdigest()
    return digest if length is None else digest[:length]
