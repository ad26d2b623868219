"""Generic helpers (ids, canonical hashing, paths, optional imports) and the spec's compatibility paths."""
