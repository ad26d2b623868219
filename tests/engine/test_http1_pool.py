"""The engines' HTTP/1.1 client (chainette/engine/http1/pool.py) against real sockets: servers of
our own on 127.0.0.1 that count connections and misbehave on purpose, an aiohttp server for
chunked and gzip replies, and a TLS server with a certificate from a test authority."""

from __future__ import annotations

import asyncio
import gzip
import ssl
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass, field

import pytest

from chainette.engine.backends.vllm import VLLMClient
from chainette.engine.http1 import HTTPPool
from chainette.engine.http1.pool import _server_keepalive
from chainette.engine.registry import EngineConfig
from chainette.errors import (
    ConfigError,
    EngineConnectionError,
    EngineHTTPError,
    EngineTimeoutError,
    ServerDisconnectedError,
)

from ._support import chat_reply, fake_api

OK = b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok"


@dataclass
class Server:
    url: str
    connections: int = 0
    requests: list[bytes] = field(default_factory=list)
    closed_by_client: int = 0


Exchange = Callable[[Server, int, int, bytes], Awaitable[bytes | None]]
"""(server, connection number, request number on it, request head) -> reply bytes, or None to close."""


async def _read_request(reader: asyncio.StreamReader) -> bytes | None:
    try:
        head = await reader.readuntil(b"\r\n\r\n")
    except (asyncio.IncompleteReadError, ConnectionError):
        return None
    length = 0
    for line in head.split(b"\r\n"):
        if line.lower().startswith(b"content-length:"):
            length = int(line.split(b":", 1)[1])
    return head + (await reader.readexactly(length) if length else b"")


@asynccontextmanager
async def raw_server(exchange: Exchange) -> AsyncIterator[Server]:
    """A server that reads requests off each connection and answers what ``exchange`` says
    (closing the connection after a reply that says ``Connection: close``)."""
    state = Server(url="")
    tasks: set[asyncio.Task] = set()

    async def serve(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        tasks.add(asyncio.current_task())  # type: ignore[arg-type]
        state.connections += 1
        number, n = state.connections, 0
        try:
            while True:
                request = await _read_request(reader)
                if request is None:
                    state.closed_by_client += 1
                    return
                state.requests.append(request)
                reply = await exchange(state, number, n, request)
                n += 1
                if reply is None:
                    return
                writer.write(reply)
                await writer.drain()
                if b"\r\nConnection: close\r\n" in reply.partition(b"\r\n\r\n")[0] + b"\r\n":
                    return
        finally:
            writer.close()

    server = await asyncio.start_server(serve, "127.0.0.1", 0)
    state.url = f"http://127.0.0.1:{server.sockets[0].getsockname()[1]}"
    try:
        yield state
    finally:
        server.close()
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)


@asynccontextmanager
async def aiohttp_server(routes: dict, **runner_options) -> AsyncIterator[str]:
    """An aiohttp server answering GET ``routes`` (path -> handler); yields its base URL."""
    from aiohttp import web

    app = web.Application()
    for path, handler in routes.items():
        app.router.add_get(path, handler)
    runner = web.AppRunner(app, access_log=None, **runner_options)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    try:
        yield f"http://127.0.0.1:{site._server.sockets[0].getsockname()[1]}"  # type: ignore[union-attr]
    finally:
        await runner.cleanup()


async def always_ok(server: Server, conn: int, n: int, request: bytes) -> bytes:
    return OK


def test_sequential_requests_share_one_connection_and_send_the_right_head():
    async def go():
        async with raw_server(always_ok) as srv:
            pool = HTTPPool(srv.url, headers={"Authorization": "Bearer k", "Content-Type": "application/json"})
            for i in range(20):
                r = await pool.request("POST", "/v1/chat/completions", b'{"i":%d}' % i, timeout=5)
                assert (r.status, r.body) == (200, b"ok")
            await pool.aclose()
            return srv

    srv = asyncio.run(go())
    assert srv.connections == 1 and len(srv.requests) == 20
    head, _, body = srv.requests[7].partition(b"\r\n\r\n")
    lines = head.split(b"\r\n")
    assert lines[0] == b"POST /v1/chat/completions HTTP/1.1"
    port = srv.url.rsplit(":", 1)[1]
    assert f"Host: 127.0.0.1:{port}".encode() in lines
    assert b"Authorization: Bearer k" in lines and b"Content-Length: 7" in lines and body == b'{"i":7}'
    assert b"Accept-Encoding: gzip, deflate" in lines


def test_concurrent_requests_open_one_connection_each_then_reuse_them():
    async def slow_ok(server: Server, conn: int, n: int, request: bytes) -> bytes:
        await asyncio.sleep(0.05)
        return OK

    async def go():
        async with raw_server(slow_ok) as srv:
            pool = HTTPPool(srv.url)
            for _ in range(3):
                replies = await asyncio.gather(*(pool.request("GET", "/", timeout=5) for _ in range(8)))
                assert all(r.body == b"ok" for r in replies)
            await pool.aclose()
            return srv

    srv = asyncio.run(go())
    assert srv.connections == 8 and len(srv.requests) == 24


def test_a_connection_the_server_closed_while_idle_is_not_used_again():
    async def go():
        from aiohttp import web

        async def hello(request):
            return web.Response(body=b"ok")

        async with aiohttp_server({"/": hello}, keepalive_timeout=0.1) as url:
            pool = HTTPPool(url)
            assert (await pool.request("GET", "/", timeout=5)).body == b"ok"
            await asyncio.sleep(0.4)  # the server closes the idle connection meanwhile
            assert [c.closed for c in pool._idle] == [True]
            assert (await pool.request("GET", "/", timeout=5)).body == b"ok"
            assert len(pool._open) == 1 and not pool._idle[-1].closed
            await pool.aclose()

    asyncio.run(go())


def test_a_kept_alive_connection_closed_as_the_request_went_out_is_retried_once_on_a_new_one():
    async def drop_second_on_first_connection(server: Server, conn: int, n: int, request: bytes) -> bytes | None:
        if conn == 1 and n == 1:
            return None  # closes without a byte of reply: the keep-alive race
        return OK

    async def go():
        async with raw_server(drop_second_on_first_connection) as srv:
            pool = HTTPPool(srv.url)
            assert (await pool.request("POST", "/", b"a", timeout=5)).body == b"ok"
            assert (await pool.request("POST", "/", b"b", timeout=5)).body == b"ok"
            await pool.aclose()
            return srv

    srv = asyncio.run(go())
    assert srv.connections == 2 and len(srv.requests) == 3


def test_the_stale_connection_retry_happens_once_on_a_new_connection_not_on_every_idle_one():
    async def drop_every_second_request(server: Server, conn: int, n: int, request: bytes) -> bytes | None:
        await asyncio.sleep(0.02)
        return OK if n == 0 else None

    async def go():
        async with raw_server(drop_every_second_request) as srv:
            pool = HTTPPool(srv.url)
            await asyncio.gather(*(pool.request("GET", "/", timeout=5) for _ in range(3)))  # 3 idle connections
            assert (await pool.request("POST", "/", b"x", timeout=5)).body == b"ok"
            await pool.aclose()
            return srv

    srv = asyncio.run(go())
    # one send on a stale connection, one on a new one: not one per idle connection
    assert len(srv.requests) == 3 + 2 and srv.connections == 4


def test_a_new_connection_closed_without_reply_is_an_error_not_a_retry_loop():
    async def never(server: Server, conn: int, n: int, request: bytes) -> None:
        return None

    async def go():
        async with raw_server(never) as srv:
            pool = HTTPPool(srv.url)
            with pytest.raises(ServerDisconnectedError):
                await pool.request("POST", "/", b"a", timeout=5)
            await pool.aclose()
            return srv

    srv = asyncio.run(go())
    assert srv.connections == 1 and len(srv.requests) == 1


def test_a_connection_closed_before_its_request_went_out_fails_at_once_instead_of_waiting():
    """The close can be handled between opening a connection and writing to it (a server that
    is shutting down): a write would vanish and the request would wait for its whole timeout."""
    from chainette.engine.http1.pool import _Connection

    async def go():
        async def shut(reader, writer):
            writer.close()

        server = await asyncio.start_server(shut, "127.0.0.1", 0)
        port = server.sockets[0].getsockname()[1]
        try:
            loop = asyncio.get_running_loop()
            _, conn = await loop.create_connection(_Connection, "127.0.0.1", port)
            for _ in range(50):  # until the server's close has been handled
                if conn.closed:
                    break
                await asyncio.sleep(0.01)
            assert conn.closed
            waiter = loop.create_future()
            conn.send(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n", waiter, head_request=False)
            assert waiter.done()
            with pytest.raises(ServerDisconnectedError, match="before the request was sent"):
                waiter.result()
        finally:
            server.close()

    asyncio.run(go())


def test_connection_close_replies_and_http10_are_not_reused():
    async def close_reply(server: Server, conn: int, n: int, request: bytes) -> bytes:
        return b"HTTP/1.1 200 OK\r\nConnection: close\r\nContent-Length: 2\r\n\r\nok"

    async def go():
        async with raw_server(close_reply) as srv:
            pool = HTTPPool(srv.url)
            for _ in range(3):
                assert (await pool.request("GET", "/", timeout=5)).body == b"ok"
            await pool.aclose()
            return srv

    assert asyncio.run(go()).connections == 3


def test_a_body_until_close_is_read_whole():
    async def until_close(server: Server, conn: int, n: int, request: bytes) -> bytes:
        return b"HTTP/1.1 200 OK\r\nConnection: close\r\n\r\n" + b"x" * 100_000

    async def go():
        async with raw_server(until_close) as srv:
            pool = HTTPPool(srv.url)
            # the server writes and closes: the reply's end is the close
            r = await pool.request("GET", "/", timeout=5)
            await pool.aclose()
            return r

    r = asyncio.run(go())
    assert r.body == b"x" * 100_000 and not r.keep_alive


def test_the_deadline_covers_a_server_that_never_answers_and_the_connection_is_dropped():
    async def hang(server: Server, conn: int, n: int, request: bytes) -> bytes:
        if conn == 1:
            await asyncio.sleep(30)
        return OK

    async def go():
        async with raw_server(hang) as srv:
            pool = HTTPPool(srv.url)
            t0 = time.perf_counter()
            with pytest.raises(asyncio.TimeoutError):
                await pool.request("GET", "/", timeout=0.3)
            waited = time.perf_counter() - t0
            assert (await pool.request("GET", "/", timeout=5)).body == b"ok"  # on a new connection
            await pool.aclose()
            return srv, waited

    srv, waited = asyncio.run(go())
    assert 0.25 <= waited < 2.0 and srv.connections == 2


def test_a_cancelled_request_closes_its_connection():
    async def slow(server: Server, conn: int, n: int, request: bytes) -> bytes:
        await asyncio.sleep(0.3 if conn == 1 else 0)
        return OK

    async def go():
        async with raw_server(slow) as srv:
            pool = HTTPPool(srv.url)
            task = asyncio.create_task(pool.request("GET", "/", timeout=5))
            await asyncio.sleep(0.05)
            task.cancel()
            with pytest.raises(asyncio.CancelledError):
                await task
            await asyncio.sleep(0.5)  # the first connection's late reply must not reach the next request
            assert (await pool.request("GET", "/", timeout=5)).body == b"ok"
            await pool.aclose()
            return srv

    assert asyncio.run(go()).connections == 2


def test_chunked_and_gzip_replies_from_aiohttp_decode_to_the_same_json():
    from aiohttp import web

    payload = b'{"text": "' + b"lorem ipsum " * 2000 + b'"}'

    async def chunked(request):
        resp = web.StreamResponse(headers={"Content-Type": "application/json"})
        resp.enable_chunked_encoding()
        await resp.prepare(request)
        for i in range(0, len(payload), 777):
            await resp.write(payload[i : i + 777])
        await resp.write_eof()
        return resp

    async def gzipped(request):
        assert "gzip" in request.headers["Accept-Encoding"]
        return web.Response(body=gzip.compress(payload), headers={"Content-Encoding": "gzip"})

    async def go():
        async with aiohttp_server({"/chunked": chunked, "/gzip": gzipped}) as url:
            pool = HTTPPool(url)
            a = await pool.request("GET", "/chunked", timeout=5)
            b = await pool.request("GET", "/gzip", timeout=5)
            await pool.aclose()
        return a, b

    a, b = asyncio.run(go())
    assert a.headers["transfer-encoding"] == "chunked" and a.body == payload
    assert b.headers["content-encoding"] == "gzip" and b.body == payload


def test_https_verifies_the_certificate_and_the_host_name():
    trustme = pytest.importorskip("trustme")
    ca = trustme.CA()
    server_ctx = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    ca.issue_cert("localhost").configure_cert(server_ctx)
    client_ctx = ssl.create_default_context()
    ca.configure_trust(client_ctx)

    async def go():
        async def serve(reader, writer):
            while (await _read_request(reader)) is not None:
                writer.write(OK)
                await writer.drain()
            writer.close()

        server = await asyncio.start_server(serve, "127.0.0.1", 0, ssl=server_ctx)
        port = server.sockets[0].getsockname()[1]
        try:
            trusted = HTTPPool(f"https://localhost:{port}", ssl_context=client_ctx)
            assert (await trusted.request("GET", "/", timeout=5)).body == b"ok"
            assert (await trusted.request("GET", "/", timeout=5)).body == b"ok"
            await trusted.aclose()
            with pytest.raises(ssl.SSLCertVerificationError):  # the system store does not know this CA
                await HTTPPool(f"https://localhost:{port}").request("GET", "/", timeout=5)
            with pytest.raises(ssl.SSLCertVerificationError, match="(?i)hostname|IP address"):
                await HTTPPool(f"https://127.0.0.1:{port}", ssl_context=client_ctx).request("GET", "/", timeout=5)
        finally:
            server.close()

    asyncio.run(go())


def test_credentials_in_the_url_are_refused_without_printing_them():
    with pytest.raises(ConfigError, match="user:password"):
        HTTPPool("http://me:s3cret@127.0.0.1:1")
    cfg = EngineConfig(name="e", backend="vllm_api", model="m")
    with pytest.raises(ConfigError, match="api_key") as err:
        VLLMClient(cfg, "http://me:s3cret@127.0.0.1:1/v1")
    assert "s3cret" not in str(err.value)


def test_the_servers_keep_alive_timeout_is_honoured():
    assert _server_keepalive("timeout=5, max=100") == 4.0
    assert _server_keepalive("max=100") == float("inf")
    assert _server_keepalive("") == float("inf")

    async def short_keepalive(server: Server, conn: int, n: int, request: bytes) -> bytes:
        return b"HTTP/1.1 200 OK\r\nKeep-Alive: timeout=1\r\nContent-Length: 2\r\n\r\nok"

    async def go():
        async with raw_server(short_keepalive) as srv:
            pool = HTTPPool(srv.url)
            await pool.request("GET", "/", timeout=5)
            await asyncio.sleep(0.05)  # timeout=1 less a second: already too old to reuse
            await pool.request("GET", "/", timeout=5)
            await pool.aclose()
            return srv

    assert asyncio.run(go()).connections == 2


def test_aclose_closes_the_idle_connections():
    async def go():
        async with raw_server(always_ok) as srv:
            pool = HTTPPool(srv.url)
            await asyncio.gather(*(pool.request("GET", "/", timeout=5) for _ in range(3)))
            await pool.aclose()
            await asyncio.sleep(0.1)
            with pytest.raises(EngineConnectionError, match="closed"):
                await pool.request("GET", "/", timeout=5)
            return srv

    srv = asyncio.run(go())
    assert srv.closed_by_client == srv.connections == 3


# -- through an engine -------------------------------------------------------------------------------
def test_an_engine_reports_a_redirect_without_following_it():
    async def go():
        async with fake_api(
            lambda seen: (307, "", {"Location": "http://elsewhere.example/v1/chat/completions"})
        ) as api:
            eng = VLLMClient(
                EngineConfig(name="e", backend="vllm_api", model="m", server_version="0.10"), api.url + "/v1"
            )
            from chainette.engine.protocol import CompletionRequest, SamplingParams

            req = CompletionRequest(messages=[{"role": "user", "content": "hi"}], sampling=SamplingParams(max_tokens=5))
            with pytest.raises(EngineHTTPError, match="redirects to http://elsewhere.example") as err:
                await eng.complete(req)
            await eng.aclose()
            return api, err.value

    api, err = asyncio.run(go())
    assert err.status == 307 and len(api.seen) == 1
    assert err.stop is not None and err.stop.kind == "redirect"  # every request would get one: the engine stops


def test_an_engine_maps_timeouts_and_refusals_to_engine_errors():
    async def go():
        async def slow(seen):
            await asyncio.sleep(5)
            return 200, chat_reply("{}"), {}

        from chainette.engine.protocol import CompletionRequest, SamplingParams

        req = CompletionRequest(messages=[{"role": "user", "content": "hi"}], sampling=SamplingParams(max_tokens=5))
        async with fake_api(slow) as api:
            cfg = EngineConfig(
                name="e", backend="vllm_api", model="m", server_version="0.10", timeout=0.3, max_retries=0
            )
            eng = VLLMClient(cfg, api.url + "/v1")
            with pytest.raises(EngineTimeoutError, match="within 0.3s"):
                await eng.complete(req)
            await eng.aclose()
            url = api.url
        eng = VLLMClient(cfg, url + "/v1")  # the server is gone: refused
        with pytest.raises(EngineConnectionError, match="cannot reach"):
            await eng.complete(req)
        await eng.aclose()

    asyncio.run(go())


def test_a_key_with_a_line_break_is_a_config_error_that_does_not_print_it():
    with pytest.raises(ConfigError, match="'Authorization' has a line break") as err:
        VLLMClient(
            EngineConfig(name="e", backend="vllm_api", model="m", api_key="sk-secret\nX-Evil: 1"), "http://x:1/v1"
        )
    assert "sk-secret" not in str(err.value)


@pytest.mark.parametrize(
    "endpoint, words",
    [
        ("localhost:8000", "must start with http:// or https://"),
        ("http://h:99999/v1", "not valid"),
        ("http:///v1", "no host"),
    ],
)
def test_an_unusable_endpoint_is_a_config_error_when_the_engine_is_built(endpoint, words):
    with pytest.raises(ConfigError, match=words):
        VLLMClient(EngineConfig(name="e", backend="vllm_api", model="m"), endpoint)


def test_a_key_outside_latin1_is_a_config_error_that_does_not_print_it():
    with pytest.raises(ConfigError, match="outside Latin-1") as err:
        VLLMClient(EngineConfig(name="e", backend="vllm_api", model="m", api_key="sk-’secret"), "http://x:1/v1")
    assert "secret" not in str(err.value)


def test_international_host_names_and_query_strings_are_encoded():
    eng = VLLMClient(EngineConfig(name="e", backend="vllm_api", model="m"), "http://bücher.example:8000/v1?x=é")
    assert eng._target == "/v1/chat/completions?x=%C3%A9"
    pool = HTTPPool("http://bücher.example:8000")
    assert pool.host == "xn--bcher-kva.example" and b"Host: xn--bcher-kva.example:8000\r\n" in pool._headers
