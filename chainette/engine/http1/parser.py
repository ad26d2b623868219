"""Reading one HTTP/1.x response from bytes that arrive in pieces (RFC 9112), with no I/O.

:class:`ResponseParser` is fed what the socket delivers and hands back the :class:`Response`
once it is complete: a body framed by ``Content-Length``, by ``Transfer-Encoding: chunked``, or
by the server closing the connection; ``1xx`` interim responses are skipped; ``gzip`` and
``deflate`` content codings are decoded. Anything that does not follow the protocol raises
:class:`~chainette.errors.HTTPProtocolError` (an ``EngineConnectionError``: the connection
cannot be trusted afterwards and the request may be retried), never a wrong body.
"""

from __future__ import annotations

import re
import zlib
from dataclasses import dataclass

from chainette.errors import HTTPProtocolError, ServerDisconnectedError

MAX_HEAD_BYTES = 64 * 1024
"""The longest status line plus header block accepted (a larger one is an error, not a read)."""
MAX_CHUNK_LINE = 4096

_FIELD = rb"[!#$%&'*+\-.^_`|~0-9A-Za-z]+:[^\r\n\0]*"  # a token, a colon, a value without CR, LF or NUL
_FIELDS = re.compile(_FIELD + rb"(?:\r\n" + _FIELD + rb")*")
_STATUS = re.compile(rb"HTTP/1\.([01]) ([0-9]{3})(?: (.*))?")
_DIGITS = re.compile(r"[0-9]+")
_NO_BODY = frozenset({204, 304})


@dataclass
class Response:
    """A complete response: header names are lower case, repeated fields joined by ``", "``."""

    status: int
    reason: str
    headers: dict[str, str]
    body: bytes
    keep_alive: bool
    """Whether the connection may carry another request (HTTP/1.1 unless ``Connection: close``)."""


# the parser's states
_HEAD, _LENGTH, _CHUNK_SIZE, _CHUNK_DATA, _CHUNK_END, _TRAILERS, _UNTIL_CLOSE, _DONE = range(8)


class ResponseParser:
    """One response on one connection: call :meth:`feed` with each piece received and
    :meth:`feed_eof` when the server closes; each returns the response once it is complete."""

    __slots__ = ("_buf", "_state", "_need", "_body", "_head", "_no_body", "_close", "started")

    def __init__(self, *, head_request: bool = False) -> None:
        self._buf = bytearray()
        self._state = _HEAD
        self._need = 0
        self._body: list[bytes] = []
        self._head: tuple[int, int, str, dict[str, str]] | None = None  # (minor, status, reason, headers)
        self._no_body = head_request
        self._close = False  # framing that forbids reusing the connection (RFC 9112 §6.1, §6.3)
        self.started = False
        """Whether any byte of the response has arrived."""

    def feed(self, data: bytes) -> Response | None:
        """Take the next bytes; the response when they complete it, else ``None``."""
        if data:
            self.started = True
        if self._state == _DONE:
            raise HTTPProtocolError("bytes after the end of the response")
        if self._state == _UNTIL_CLOSE:
            self._body.append(bytes(data))
            return None
        self._buf += data
        return self._advance()

    def feed_eof(self) -> Response:
        """The server closed the connection: the response, if that completes it."""
        if self._state == _UNTIL_CLOSE:
            return self._finish(keep_alive=False)
        if not self.started:
            raise ServerDisconnectedError("the server closed the connection without replying")
        raise HTTPProtocolError("the server closed the connection in the middle of its reply")

    # -- states -------------------------------------------------------------------
    def _advance(self) -> Response | None:
        buf = self._buf
        while True:
            state = self._state
            if state == _HEAD:
                head = self._take_until(b"\r\n\r\n", MAX_HEAD_BYTES, "response head")
                if head is None:
                    return None
                if self._read_head(head):
                    continue  # an interim 1xx response: the real one follows
                if self._state == _DONE:
                    return self._finish(keep_alive=self._keep_alive() and not buf)
                if self._state == _UNTIL_CLOSE:
                    if buf:
                        self._body.append(bytes(buf))
                        buf.clear()
                    return None
            elif state == _LENGTH:
                if not self._take_body():
                    return None
                return self._finish(keep_alive=self._keep_alive() and not buf)
            elif state == _CHUNK_SIZE:
                line = self._take_until(b"\r\n", MAX_CHUNK_LINE, "chunk size line")
                if line is None:
                    return None
                size = line.split(b";", 1)[0].strip()
                if not size or any(c not in b"0123456789abcdefABCDEF" for c in size):
                    raise HTTPProtocolError(f"bad chunk size {size[:40]!r}")
                self._need = int(size, 16)
                self._state = _CHUNK_DATA if self._need else _TRAILERS
            elif state == _CHUNK_DATA:
                if not self._take_body():
                    return None
                self._state = _CHUNK_END
            elif state == _CHUNK_END:
                if len(buf) < 2:
                    return None
                if buf[:2] != b"\r\n":
                    raise HTTPProtocolError("chunk data not followed by CRLF")
                del buf[:2]
                self._state = _CHUNK_SIZE
            elif state == _TRAILERS:
                line = self._take_until(b"\r\n", MAX_HEAD_BYTES, "trailer line")
                if line is None:
                    return None
                if not line:  # the empty line that ends the trailers (their fields are not used)
                    return self._finish(keep_alive=self._keep_alive() and not buf)
            else:  # pragma: no cover - _UNTIL_CLOSE and _DONE return before looping
                raise AssertionError(state)

    def _take_body(self) -> bool:
        """Move the ``_need`` bytes of a body or chunk from the buffer to the body, once all are there."""
        buf = self._buf
        if len(buf) < self._need:
            return False
        self._body.append(bytes(buf[: self._need]))
        del buf[: self._need]
        return True

    def _take_until(self, end_mark: bytes, limit: int, what: str) -> bytes | None:
        """The bytes before the next ``end_mark`` (both taken from the buffer); ``None`` until
        the mark has arrived; an error once more than ``limit`` bytes wait without it."""
        buf = self._buf
        end = buf.find(end_mark)
        if end < 0:
            if len(buf) > limit:
                raise HTTPProtocolError(f"{what} longer than {limit} bytes")
            return None
        taken = bytes(buf[:end])
        del buf[: end + len(end_mark)]
        return taken

    def _read_head(self, head: bytes) -> bool:
        """Read a status line and header block; ``True`` for an interim (1xx) response."""
        status_line, _, rest = head.partition(b"\r\n")
        m = _STATUS.fullmatch(status_line)
        if m is None:
            raise HTTPProtocolError(f"not an HTTP/1.x status line: {status_line[:80]!r}")
        minor, status = int(m.group(1)), int(m.group(2))
        headers: dict[str, str] = {}
        if rest:
            if not _FIELDS.fullmatch(rest):  # one check for the whole block, then plain splits
                bad = next(x for x in rest.split(b"\r\n") if not _FIELDS.fullmatch(x))
                raise HTTPProtocolError(f"malformed header line {bad[:80]!r}")
            for line in rest.decode("latin-1").split("\r\n"):
                name, _, value = line.partition(":")
                key = name.lower()
                text = value.strip(" \t")
                headers[key] = f"{headers[key]}, {text}" if key in headers else text
        if 100 <= status < 200:
            if status == 101:
                raise HTTPProtocolError("the server switched protocols (101)")
            return True
        self._head = (minor, status, (m.group(3) or b"").decode("latin-1"), headers)
        if self._no_body or status in _NO_BODY:
            self._state = _DONE
            return False
        coding = headers.get("transfer-encoding")
        if coding is not None:  # it overrides any Content-Length (RFC 9112 §6.3)
            self._close = minor == 0 or "content-length" in headers  # a smuggling risk: not reused
            codings = [c.strip().lower() for c in coding.split(",")]
            if codings[-1] == "chunked":
                if any(c not in ("chunked", "identity") for c in codings[:-1]):
                    raise HTTPProtocolError(f"unsupported transfer coding {coding!r}")
                self._state = _CHUNK_SIZE
            else:
                raise HTTPProtocolError(f"unsupported transfer coding {coding!r}")
            return False
        length = headers.get("content-length")
        if length is not None:
            values = {v.strip() for v in length.split(",")}
            if len(values) != 1 or not _DIGITS.fullmatch(next(iter(values))):
                raise HTTPProtocolError(f"bad Content-Length {length[:40]!r}")
            self._need = int(values.pop())
            self._state = _LENGTH if self._need else _DONE
            return False
        self._state = _UNTIL_CLOSE  # neither: the body is everything until the server closes
        return False

    def _keep_alive(self) -> bool:
        assert self._head is not None
        minor, _, _, headers = self._head
        if self._close:
            return False
        tokens = {t.strip().lower() for t in headers.get("connection", "").split(",")}
        return "close" not in tokens if minor == 1 else "keep-alive" in tokens

    def _finish(self, *, keep_alive: bool) -> Response:
        assert self._head is not None
        _, status, reason, headers = self._head
        self._state = _DONE
        body = self._body[0] if len(self._body) == 1 else b"".join(self._body)
        self._body = []
        coding = headers.get("content-encoding")
        if coding and body:  # an empty body (HEAD, 204, 304, length 0) has nothing to decode
            body = decode_content(body, coding)
        return Response(status, reason, headers, body, keep_alive)


def decode_content(body: bytes, coding: str) -> bytes:
    """Undo the content codings of ``Content-Encoding`` (applied in order, undone in reverse);
    every gzip member is read and a stream that ends early or has bytes after its end is refused."""
    for name in reversed([c.strip().lower() for c in coding.split(",") if c.strip()]):
        if name in ("gzip", "x-gzip"):
            body = _inflate(body, 16 + zlib.MAX_WBITS, name, members=True)
        elif name == "deflate":  # zlib-wrapped as the RFC says, or raw as some servers send it
            try:
                body = _inflate(body, zlib.MAX_WBITS, name, members=False)
            except HTTPProtocolError:
                body = _inflate(body, -zlib.MAX_WBITS, name, members=False)
        elif name != "identity":
            raise HTTPProtocolError(f"unsupported content coding {name!r} (Chainette asks for gzip or deflate)")
    return body


def _inflate(data: bytes, wbits: int, name: str, *, members: bool) -> bytes:
    out = []
    try:
        while True:
            stream = zlib.decompressobj(wbits)
            out.append(stream.decompress(data))
            if not stream.eof:
                raise HTTPProtocolError(f"body does not decode as {name}: the stream ends early")
            data = stream.unused_data
            if not data:
                return b"".join(out)
            if not members:
                raise HTTPProtocolError(f"body does not decode as {name}: bytes after the end of the stream")
    except zlib.error as exc:
        raise HTTPProtocolError(f"body does not decode as {name}: {exc}") from None
