"""Reading a text file as numbered UTF-8 lines, within a length limit.

The file is read in binary and each line decoded on its own, so an invalid byte is reported
with its line and the lines after it still read. A line longer than the limit is reported
and skipped while it is read (it is never held whole in memory). A ``.gz`` file that is cut
short or corrupt ends the lines with a *fatal* :class:`Line` naming where it broke.
"""

from __future__ import annotations

import gzip
import time
import zlib
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO

__all__ = ["Line", "count_lines", "open_binary", "read_lines", "utf8_problem"]

_DRAIN = 1 << 20  # how much of an over-long line is read (and dropped) at a time
_BOM = "\ufeff"


@dataclass(slots=True)
class Line:
    """Line ``number`` (from 1) with its text, newline included; ``text`` is ``None`` when the
    line cannot be used (``error`` says why). ``fatal``: nothing after it can be read."""

    number: int
    text: str | None
    error: str | None = None
    fatal: bool = False


def open_binary(path: Path) -> BinaryIO:
    """Open ``path`` for reading bytes, decompressing a ``.gz`` file."""
    if path.suffix == ".gz":
        return gzip.open(path, "rb")  # type: ignore[return-value]
    return open(path, "rb")


def _size(n: int) -> str:
    for unit, size in (("GiB", 1 << 30), ("MiB", 1 << 20), ("KiB", 1 << 10)):
        if n >= size:
            return f"{n / size:g} {unit}"
    return f"{n} bytes"


def utf8_problem(data: bytes, exc: UnicodeDecodeError, *, where: str = "of the line") -> str:
    """Describe an invalid UTF-8 byte and how to fix the file."""
    byte = data[exc.start] if exc.start < len(data) else 0
    return (
        f"invalid UTF-8: byte 0x{byte:02x} at byte {exc.start + 1} {where} ({exc.reason}); "
        "the file must be UTF-8: re-encode it (e.g. iconv -f latin1 -t utf-8)"
    )


def _decode(raw: bytes, number: int) -> Line:
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        return Line(number, None, utf8_problem(raw, exc))
    if number == 1 and text.startswith(_BOM):
        text = text[1:]
    return Line(number, text)


def _broken(number: int, exc: BaseException) -> Line:
    what = (
        "the compressed file is cut short or corrupt"
        if isinstance(exc, (EOFError, zlib.error, gzip.BadGzipFile))
        else "the file cannot be read"
    )
    return Line(number, None, f"{what} at line {number}: {exc}; nothing after this point was read", fatal=True)


def read_lines(fh: BinaryIO, max_line_bytes: int) -> Iterator[Line]:
    """Yield every line of ``fh`` (blank ones too) as a :class:`Line`, numbered from 1."""
    number = 0
    while True:
        number += 1
        try:
            raw = fh.readline(max_line_bytes + 1)
        except (OSError, EOFError, zlib.error) as exc:
            yield _broken(number, exc)
            return
        if not raw:
            return
        if len(raw) <= max_line_bytes or raw.endswith(b"\n"):
            yield _decode(raw, number)
            continue
        total = len(raw)
        try:
            while not raw.endswith(b"\n"):
                raw = fh.readline(_DRAIN)
                if not raw:
                    break
                total += len(raw)
        except (OSError, EOFError, zlib.error) as exc:
            yield _broken(number, exc)
            return
        yield Line(
            number,
            None,
            f"line is {_size(total)} long, over the limit of {_size(max_line_bytes)} "
            "(ReadLimits.max_line_bytes); it was not read",
        )


def count_lines(path: str | Path, *, budget_s: float = 1.5) -> int | None:
    """Count lines with a buffered newline count (blank lines included, so it is an upper
    bound); ``None`` when counting takes longer than ``budget_s``, the file is compressed or
    it cannot be read."""
    path = Path(path)
    if path.suffix == ".gz":
        return None
    deadline = time.monotonic() + budget_s
    n = 0
    last = b"\n"
    try:
        with open(path, "rb") as fh:
            while True:
                chunk = fh.read(1 << 20)
                if not chunk:
                    break
                n += chunk.count(b"\n")
                last = chunk[-1:]
                if time.monotonic() > deadline:
                    return None
    except OSError:
        return None
    return n + (0 if last == b"\n" else 1)
