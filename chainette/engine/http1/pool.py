"""Keep-alive HTTP/1.1 connections to one server, for the engines' JSON requests.

Why not aiohttp here: a chat-completion request is one small POST and one small JSON reply, and
at hundreds of rows in flight the client's own CPU per request is what limits a run against a
fast server (``vllm serve`` on a GPU, a mock). aiohttp spends ~100-125 µs of CPU per such
request on the benchmark machine; this client, which does only what these requests need,
~35-45 µs (``benchmarks/transport_bench.py``, table in ``docs/benchmarks.md``).

What it does: ``http`` and ``https`` (the system's trust store through
:func:`ssl.create_default_context`, the host name verified), persistent connections reused most
recent first and closed after ``keepalive_s`` idle or the server's own ``Keep-Alive: timeout``,
one request per connection at a time, a total deadline per request (connecting included), bodies
framed by length, chunks or close, ``gzip``/``deflate`` replies. What it does not: redirects
(a 3xx is returned as it is: the engine reports it rather than re-sending a key to another
host), proxies, cookies, HTTP/2. A kept-alive connection that the server had already closed
when a request went out (no byte of reply came back) is retried once on a new connection; every
other failure is the caller's to retry.
"""

from __future__ import annotations

import asyncio
import collections
import functools
import ssl
from collections.abc import Mapping
from urllib.parse import urlsplit

from chainette.engine.http1.parser import Response, ResponseParser
from chainette.errors import ConfigError, EngineConnectionError, HTTPProtocolError, ServerDisconnectedError

_DEFAULT_PORTS = {"http": 80, "https": 443}
_ssl_context: ssl.SSLContext | None = None


def default_ssl_context() -> ssl.SSLContext:
    """The system's trust store, certificates and host names verified (made once per process,
    when it first talks to an ``https`` server)."""
    global _ssl_context
    if _ssl_context is None:
        _ssl_context = ssl.create_default_context()
    return _ssl_context


def parse_origin(url: str) -> tuple[str, str, int, str]:
    """``(scheme, host, port, Host header)`` of an ``http``/``https`` URL, the host in its ASCII
    (IDNA) form; a :class:`ConfigError` saying what is wrong otherwise (never printing
    credentials)."""
    shown = repr(url) if "@" not in url else "(not shown: it has an @)"
    try:
        parts = urlsplit(url)
        port = parts.port
    except ValueError as exc:  # a port that is not a number or out of range, a bad IPv6 literal
        raise ConfigError(f"URL {shown} is not valid: {exc}") from None
    if parts.scheme not in _DEFAULT_PORTS:
        raise ConfigError(f"URL {shown} must start with http:// or https://")
    if not parts.hostname:
        raise ConfigError(f"URL {shown} has no host")
    if parts.username is not None or parts.password is not None:
        raise ConfigError(
            "the URL has a user:password part: credentials in URLs end up in logs and run files; "
            "send them as a header (an engine's api_key / api_key_env)"
        )
    try:
        host = parts.hostname.encode("idna").decode("ascii")
    except UnicodeError:
        raise ConfigError(f"URL {shown}: {parts.hostname!r} is not a valid host name") from None
    default = _DEFAULT_PORTS[parts.scheme]
    header = f"[{host}]" if ":" in host else host
    if port is not None and port != default:
        header = f"{header}:{port}"
    return parts.scheme, host, port or default, header


def header_block(headers: Mapping[str, str]) -> bytes:
    """``Name: value\\r\\n`` lines; a name or value that would break the request is refused,
    naming the header (never its value: it may be a key)."""
    lines = []
    for name, value in headers.items():
        if not name or any(c in name for c in " \t\r\n:") or not name.isascii():
            raise ConfigError(f"HTTP header name {name!r} is not a valid token")
        if any(c in value for c in "\r\n\0"):
            raise ConfigError(f"HTTP header {name!r} has a line break or NUL in its value")
        try:
            value.encode("latin-1")
        except UnicodeEncodeError:
            raise ConfigError(f"HTTP header {name!r} has characters outside Latin-1 in its value") from None
        lines.append(f"{name}: {value}\r\n")
    return "".join(lines).encode("latin-1")


class _Connection(asyncio.Protocol):
    """One socket; at most one request on it at a time."""

    __slots__ = ("transport", "parser", "waiter", "closed", "idle_until", "timer")

    def __init__(self) -> None:
        self.transport: asyncio.Transport | None = None
        self.parser: ResponseParser | None = None
        self.waiter: asyncio.Future[Response] | None = None
        self.closed = False
        self.idle_until = 0.0
        self.timer: asyncio.TimerHandle | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]

    def usable(self, now: float) -> bool:
        """An idle connection that may carry the next request."""
        t = self.transport
        return not self.closed and self.idle_until > now and t is not None and not t.is_closing()

    def send(self, data: bytes, waiter: asyncio.Future[Response], head_request: bool) -> None:
        self.waiter = waiter
        transport = self.transport
        if self.closed or transport is None or transport.is_closing():
            # closed before the request went out (its close was handled first): nothing would
            # ever answer a write to it, so the request fails now, as never sent
            waiter.set_exception(
                ServerDisconnectedError("the server closed the connection before the request was sent")
            )
            return
        self.parser = ResponseParser(head_request=head_request)
        transport.write(data)

    def data_received(self, data: bytes) -> None:
        parser = self.parser
        if parser is None:  # bytes nobody asked for: this connection cannot be trusted
            self.abort()
            return
        try:
            response = parser.feed(data)
        except HTTPProtocolError as exc:
            self._fail(exc)
            return
        if response is not None:
            self._done(response)

    def eof_received(self) -> bool:
        self.closed = True  # the server will not read another request on it
        parser = self.parser
        if parser is not None:
            try:
                self._done(parser.feed_eof())
            except EngineConnectionError as exc:
                self._fail(exc)
        return False  # close the transport

    def connection_lost(self, exc: Exception | None) -> None:
        self.closed = True
        if self.parser is not None:
            parser, self.parser = self.parser, None
            if not parser.started:
                err: EngineConnectionError = ServerDisconnectedError(
                    "the server closed the connection without replying"
                )
            else:
                err = HTTPProtocolError("the connection was lost in the middle of the reply")
            if exc is not None:
                err.__cause__ = exc
            self._settle(err)

    def time_out(self) -> None:
        self._fail(asyncio.TimeoutError())

    def _done(self, response: Response) -> None:
        self.parser = None
        waiter = self.waiter
        if waiter is not None and not waiter.done():
            waiter.set_result(response)

    def _fail(self, exc: BaseException) -> None:
        self.parser = None
        self._settle(exc)
        self.abort()

    def _settle(self, exc: BaseException) -> None:
        waiter = self.waiter
        if waiter is not None and not waiter.done():
            waiter.set_exception(exc)

    def abort(self) -> None:
        self.closed = True
        if self.transport is not None:
            self.transport.abort()

    def close(self) -> None:
        self.closed = True
        if self.transport is not None:
            self.transport.close()


class HTTPPool:
    """Connections to the server of ``url`` (scheme, host and port; its path is not used).

    ``headers`` go with every request (``Host``, ``Content-Length`` and ``Accept-Encoding`` are
    added); a URL with ``user:password@`` is refused. Made outside or inside a loop; used from
    one event loop (:meth:`aclose` it there)."""

    def __init__(
        self,
        url: str,
        *,
        headers: Mapping[str, str] | None = None,
        max_idle: int = 256,
        keepalive_s: float = 30.0,
        ssl_context: ssl.SSLContext | None = None,
    ) -> None:
        self.scheme, self.host, self.port, host_header = parse_origin(url)
        self.max_idle = max_idle
        self.keepalive_s = keepalive_s
        self._ssl = (ssl_context or default_ssl_context()) if self.scheme == "https" else None
        fixed = {"Host": host_header, "Accept-Encoding": "gzip, deflate"}
        self._headers = header_block({**fixed, **(headers or {})})
        self._idle: collections.deque[_Connection] = collections.deque()
        self._open: set[_Connection] = set()
        self.closed = False

    async def request(
        self, method: str, target: str, body: bytes | None = None, timeout: float | None = None
    ) -> Response:
        """Send one request (``target``: the path and query) and return the complete response.

        Raises :class:`asyncio.TimeoutError` past ``timeout`` seconds (connecting included),
        :class:`OSError` (refused, reset, ``ssl.SSLError``, name resolution) or
        :class:`~chainette.errors.EngineConnectionError` (the server closed the connection, a
        malformed reply) when the exchange fails. A cancelled request closes its connection."""
        if self.closed:
            raise EngineConnectionError("the HTTP pool is closed")
        loop = asyncio.get_running_loop()
        deadline = None if timeout is None else loop.time() + timeout
        data = b"%s %s HTTP/1.1\r\n%s" % (method.encode("ascii"), target.encode("ascii"), self._headers)
        data += b"\r\n" if body is None else b"Content-Length: %d\r\n\r\n%s" % (len(body), body)
        head_request = method == "HEAD"
        retried = False
        while True:
            conn = None if retried else self._take_idle(loop.time())
            reused = conn is not None
            if conn is None:
                conn = await self._connect(loop, deadline)
            waiter: asyncio.Future[Response] = loop.create_future()
            conn.send(data, waiter, head_request)
            if deadline is not None:
                conn.timer = loop.call_at(deadline, conn.time_out)
            try:
                response = await waiter
            except ServerDisconnectedError:
                self._drop(conn)
                if reused and not self.closed:  # it had gone stale while idle: once more, on a new connection
                    retried = True
                    continue
                raise
            except BaseException:  # failed, timed out or cancelled: its state is unknown
                conn.abort()
                self._drop(conn)
                raise
            finally:
                if conn.timer is not None:
                    conn.timer.cancel()
                    conn.timer = None
            self._release(conn, response, loop.time())
            return response

    def _take_idle(self, now: float) -> _Connection | None:
        idle = self._idle
        while idle and not idle[0].usable(now):  # the oldest expire first
            self._drop(idle.popleft(), close=True)
        while idle:
            conn = idle.pop()
            if conn.usable(now):
                return conn
            self._drop(conn, close=True)
        return None

    async def _connect(self, loop: asyncio.AbstractEventLoop, deadline: float | None) -> _Connection:
        opening = loop.create_connection(
            _Connection, self.host, self.port, ssl=self._ssl, server_hostname=self.host if self._ssl else None
        )
        if deadline is None:
            _, conn = await opening
        else:
            _, conn = await asyncio.wait_for(opening, max(deadline - loop.time(), 0.0))
        self._open.add(conn)
        if self.closed:  # closed while connecting
            self._drop(conn, close=True)
            raise EngineConnectionError("the HTTP pool is closed")
        return conn

    def _release(self, conn: _Connection, response: Response, now: float) -> None:
        if not response.keep_alive or conn.closed or self.closed or len(self._idle) >= self.max_idle:
            self._drop(conn, close=True)
            return
        conn.idle_until = now + min(self.keepalive_s, _server_keepalive(response.headers.get("keep-alive", "")))
        self._idle.append(conn)

    def _drop(self, conn: _Connection, close: bool = False) -> None:
        self._open.discard(conn)
        if close:
            conn.close()

    async def aclose(self) -> None:
        """Close every connection (one in use fails its request)."""
        self.close_now()
        await asyncio.sleep(0)  # let the transports run their close callbacks

    def close_now(self) -> None:
        """Close every connection at once (from the pool's loop, or while that loop is stopped:
        see :func:`close_pool`); a request waiting on one fails."""
        self.closed = True
        self._idle.clear()
        conns, self._open = self._open, set()
        for conn in conns:
            try:
                conn.abort()  # no TLS close_notify to wait for; an idle connection has nothing left to send
            except RuntimeError:  # its loop is closed: the sockets are freed with the objects
                pass


@functools.lru_cache(maxsize=16)
def _server_keepalive(value: str) -> float:
    """How long the server says it keeps an idle connection (a ``Keep-Alive: timeout=N`` header's
    value), less a second so that we stop using it before the server closes it; infinity when
    not said."""
    for part in value.split(","):
        name, _, seconds = part.strip().partition("=")
        if name.lower() == "timeout":
            try:
                return max(float(seconds) - 1.0, 0.0)
            except ValueError:
                break
    return float("inf")


def close_pool(pool: HTTPPool, loop: asyncio.AbstractEventLoop | None) -> None:
    """Close ``pool`` from outside its event loop ``loop``: scheduled there if it runs (in another
    thread), at once if it is stopped, left to the garbage collector if it is closed."""
    if loop is None or loop.is_closed():
        pool.closed = True
    elif loop.is_running():
        loop.call_soon_threadsafe(pool.close_now)
    else:
        pool.close_now()
