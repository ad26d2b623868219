"""Input readers: JSONL, JSON, CSV, Parquet, saved and Hub Hugging Face datasets.

``open_input(spec)`` returns an :class:`InputSource`, an iterable of :class:`RawRow`
read lazily (a 5 GB JSONL file is never loaded into memory). ``validate_rows`` turns
those into rows validated against a chain's input model, reporting a bad row with
file, line and field, and either raising :class:`~chainette.errors.InputError` or
recording it in ``<output_dir>/skipped_inputs.jsonl``.

One job per module:

``source``       :class:`RawRow`, :class:`InputSource`, :class:`ReadLimits` (what every reader yields)
``lines``        numbered, length-bounded, per-line UTF-8 decoding of text files (and ``.gz``)
``json_values``  one JSON text to one row object, or why not (syntax, type, depth, surrogates, repeated keys)
``jsonl``        JSON Lines          ``json_file``  a whole ``.json`` file
``csv_file``     CSV / TSV, strict records with resynchronisation after a broken one
``parquet``      Parquet, batch by batch
``hf``           Hugging Face datasets: saved directories, the Hub (offline without global state)
``open``         ``open_input``: which reader for ``-i``
``validate``     ``validate_rows``: model validation and ``--on-bad-input`` fail / skip
``skip_log``     ``SkipLog``: ``<output_dir>/skipped_inputs.jsonl``

Heavy libraries (``pyarrow``, ``datasets``) are imported only when their format is used.
"""

from __future__ import annotations

from chainette.io.readers.lines import count_lines
from chainette.io.readers.open import open_input
from chainette.io.readers.skip_log import SkipLog
from chainette.io.readers.source import DEFAULT_LIMITS, InputSource, RawRow, ReadLimits
from chainette.io.readers.validate import OnBad, validate_rows

__all__ = [
    "DEFAULT_LIMITS",
    "InputSource",
    "OnBad",
    "RawRow",
    "ReadLimits",
    "SkipLog",
    "count_lines",
    "open_input",
    "validate_rows",
]
