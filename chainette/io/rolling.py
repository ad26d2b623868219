"""Append-only JSONL files that roll at ``max_lines`` (``000.jsonl``, ``001.jsonl``, ...)."""

from __future__ import annotations

import os
from pathlib import Path
from typing import BinaryIO

from chainette.utils.paths import ensure_within


class RollingJsonl:
    """One output folder. Lines are written whole; ``state()`` / ``restore()`` support resume.

    With ``root`` (the run directory), every file opened for writing or truncated is checked
    to resolve inside it (see :mod:`chainette.utils.paths`).
    """

    def __init__(self, folder: Path, max_lines: int, *, root: Path | None = None) -> None:
        self.folder = folder
        self.root = root
        self.max_lines = max_lines
        self.index = 0
        self.lines = 0
        self._fh: BinaryIO | None = None
        self._dirty = False

    def path(self, index: int | None = None) -> Path:
        return self.folder / f"{self.index if index is None else index:03d}.jsonl"

    def _open(self) -> BinaryIO:
        if self._fh is None:
            self.folder.mkdir(parents=True, exist_ok=True)
            self._fh = open(self._checked(self.path()), "ab")
        return self._fh

    def write(self, lines: list[bytes]) -> None:
        pos = 0
        while pos < len(lines):
            if self.lines >= self.max_lines:
                self._close_current()
                self.index += 1
                self.lines = 0
            room = self.max_lines - self.lines
            chunk = lines[pos : pos + room]
            self._open().write(b"".join(chunk))
            self.lines += len(chunk)
            pos += len(chunk)
            self._dirty = True

    def flush(self, durable: bool) -> None:
        if self._fh is not None and self._dirty:
            self._fh.flush()
            if durable:
                os.fsync(self._fh.fileno())
            self._dirty = False

    def state(self) -> dict[str, int]:
        size = self._fh.tell() if self._fh is not None else (self.path().stat().st_size if self.path().exists() else 0)
        return {"index": self.index, "lines": self.lines, "size": size}

    def restore(self, state: dict[str, int]) -> None:
        """Truncate back to a committed state: later files are removed, the current one cut."""
        self._close_current()
        self.index, self.lines = state["index"], state["lines"]
        if self.folder.exists():
            for p in self.folder.glob("*.jsonl"):
                if p.stem.isdigit() and int(p.stem) > self.index:
                    p.unlink()
        current = self.path()
        if current.exists():
            with open(self._checked(current), "r+b") as f:
                f.truncate(state["size"])

    def _checked(self, path: Path) -> Path:
        return path if self.root is None else ensure_within(self.root, path)

    def rollback(self, state: dict[str, int]) -> None:
        """After a failed write (e.g. a full disk): drop the handle, ignoring a failing flush of
        the half-written batch, and cut the folder back to the committed ``state``."""
        fh, self._fh = self._fh, None
        if fh is not None:
            try:
                fh.close()
            except OSError:
                pass
        self._dirty = False
        self.restore(state)

    def reset(self) -> None:
        """Forget uncommitted state for a fresh run (folder is assumed empty)."""
        self._close_current()
        self.index = self.lines = 0

    def _close_current(self) -> None:
        if self._fh is not None:
            self._fh.close()
            self._fh = None

    def close(self) -> None:
        self.flush(durable=True)
        self._close_current()

    def files(self) -> list[Path]:
        if not self.folder.exists():
            return []
        return sorted(p for p in self.folder.glob("*.jsonl") if p.stem.isdigit())
