"""Headless Chromium for the report tests, and a tiny PNG reader (zlib only, no Pillow)."""

from __future__ import annotations

import shutil
import struct
import subprocess
import zlib
from pathlib import Path

CANDIDATES = ("chromium", "chromium-browser", "google-chrome", "google-chrome-stable")


def find_chromium() -> str | None:
    for name in CANDIDATES:
        path = shutil.which(name)
        if path:
            return path
    return None


def _argv(binary: str, profile: Path) -> list[str]:
    return [
        binary,
        "--headless",
        "--disable-gpu",
        "--no-sandbox",
        "--no-first-run",
        "--disable-extensions",
        "--disable-dev-shm-usage",
        "--hide-scrollbars",
        f"--user-data-dir={profile}",
        "--virtual-time-budget=5000",
    ]


def dump_dom(binary: str, url: str, profile: Path, timeout: float = 90) -> str:
    """The DOM after the page's scripts ran (``--dump-dom``)."""
    done = subprocess.run(
        [*_argv(binary, profile), "--dump-dom", url], capture_output=True, timeout=timeout, check=False
    )
    assert done.returncode == 0, done.stderr.decode(errors="replace")[-2000:]
    return done.stdout.decode("utf-8")


def screenshot(
    binary: str, url: str, target: Path, profile: Path, size: str = "1280,2000", timeout: float = 90
) -> Path:
    done = subprocess.run(
        [*_argv(binary, profile), f"--screenshot={target}", f"--window-size={size}", url],
        capture_output=True,
        timeout=timeout,
        check=False,
    )
    assert done.returncode == 0 and target.is_file(), done.stderr.decode(errors="replace")[-2000:]
    return target


def read_png(path: Path) -> tuple[int, int, list[bytes]]:
    """``(width, height, rows)``: each row the RGB(A) bytes of one line, filters undone.
    Handles what Chromium writes: 8-bit RGB or RGBA, not interlaced."""
    data = path.read_bytes()
    assert data[:8] == b"\x89PNG\r\n\x1a\n", "not a PNG file"
    pos, idat = 8, b""
    width = height = channels = 0
    while pos < len(data):
        length, kind = struct.unpack(">I4s", data[pos : pos + 8])
        body = data[pos + 8 : pos + 8 + length]
        pos += 12 + length
        if kind == b"IHDR":
            width, height, depth, colour, _, _, interlace = struct.unpack(">IIBBBBB", body)
            assert depth == 8 and colour in (2, 6) and interlace == 0, (depth, colour, interlace)
            channels = 3 if colour == 2 else 4
        elif kind == b"IDAT":
            idat += body
        elif kind == b"IEND":
            break
    raw = zlib.decompress(idat)
    stride = width * channels
    rows: list[bytes] = []
    prev = bytearray(stride)
    for y in range(height):
        start = y * (stride + 1)
        kind, line = raw[start], bytearray(raw[start + 1 : start + 1 + stride])
        for i in range(stride):
            a = line[i - channels] if i >= channels else 0
            b = prev[i]
            c = prev[i - channels] if i >= channels else 0
            if kind == 1:
                line[i] = (line[i] + a) & 0xFF
            elif kind == 2:
                line[i] = (line[i] + b) & 0xFF
            elif kind == 3:
                line[i] = (line[i] + (a + b) // 2) & 0xFF
            elif kind == 4:
                p = a + b - c
                pa, pb, pc = abs(p - a), abs(p - b), abs(p - c)
                pred = a if pa <= pb and pa <= pc else (b if pb <= pc else c)
                line[i] = (line[i] + pred) & 0xFF
        rows.append(bytes(line))
        prev = line
    return width, height, [r if channels == 3 else bytes(v for k, v in enumerate(r) if k % 4 != 3) for r in rows]


def colour_stats(path: Path, step: int = 3) -> tuple[int, float]:
    """Distinct colours and the share of pixels that are not the most common colour (the
    background), sampling every ``step``-th pixel of every ``step``-th row."""
    width, _, rows = read_png(path)
    counts: dict[bytes, int] = {}
    for row in rows[::step]:
        for x in range(0, width, step):
            px = row[3 * x : 3 * x + 3]
            counts[px] = counts.get(px, 0) + 1
    total = sum(counts.values())
    background = max(counts.values())
    return len(counts), 1 - background / total
