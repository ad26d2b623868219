"""The HTTP/1.1 response parser (chainette/engine/http1/parser.py), checked against h11's reading
of the same bytes, fed in arbitrary pieces, and on every malformed form it must refuse."""

from __future__ import annotations

import gzip
import zlib

import h11
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from chainette.engine.http1.parser import MAX_HEAD_BYTES, ResponseParser
from chainette.errors import HTTPProtocolError, ServerDisconnectedError

_NAMES = st.sampled_from(["x-request-id", "retry-after", "x-should-retry", "server", "date", "cache-control"])
_VALUES = st.text(alphabet=st.characters(min_codepoint=0x21, max_codepoint=0x7E), min_size=0, max_size=30)


@st.composite
def responses(draw):
    """A response as a server may frame it: (bytes on the wire, status, headers, body, framing, keep_alive)."""
    status = draw(st.sampled_from([200, 201, 400, 401, 404, 429, 500, 503]))
    body = draw(st.binary(max_size=3000))
    framing = draw(st.sampled_from(["length", "chunked", "close"]))
    coding = draw(st.sampled_from([None, "gzip", "deflate"]))
    minor = draw(st.sampled_from([0, 1])) if framing != "chunked" else 1
    headers = draw(st.lists(st.tuples(_NAMES, _VALUES), max_size=5))
    close = framing == "close" or draw(st.booleans())
    wire_body = body
    if coding == "gzip":
        wire_body = gzip.compress(body)
        headers.append(("content-encoding", "gzip"))
    elif coding == "deflate":
        wire_body = zlib.compress(body)
        headers.append(("content-encoding", "deflate"))
    if framing == "length":
        headers.append(("content-length", str(len(wire_body))))
    if framing == "chunked":
        headers.append(("transfer-encoding", "chunked"))
        cuts = sorted(draw(st.lists(st.integers(0, len(wire_body)), max_size=4)))
        pieces = [wire_body[a:b] for a, b in zip([0, *cuts], [*cuts, len(wire_body)], strict=True) if b > a]
        framed = b"".join(b"%x%s\r\n%s\r\n" % (len(p), draw(st.sampled_from([b"", b";ext=1"])), p) for p in pieces)
        framed += b"0\r\n" + draw(st.sampled_from([b"", b"x-trailer: 1\r\n"])) + b"\r\n"
    else:
        framed = wire_body
    if minor == 1 and close:
        headers.append(("connection", "close"))
    if minor == 0 and not close:
        headers.append(("connection", "keep-alive"))
    interim = b"HTTP/1.1 100 Continue\r\n\r\n" if minor == 1 and draw(st.booleans()) else b""
    head = f"HTTP/1.{minor} {status} Reason Phrase\r\n".encode() + b"".join(
        f"{k}: {v}\r\n".encode() for k, v in headers
    )
    return interim + head + b"\r\n" + framed, status, headers, body, framing, not close


def _pieces(data: bytes, cuts: list[int]) -> list[bytes]:
    points = sorted({c % (len(data) + 1) for c in cuts})
    return [data[a:b] for a, b in zip([0, *points], [*points, len(data)], strict=True) if b > a]


def _parse(pieces: list[bytes], eof: bool):
    parser = ResponseParser()
    out = None
    for piece in pieces:
        assert out is None, "bytes after a complete response"
        out = parser.feed(piece)
    if out is None and eof:
        out = parser.feed_eof()
    return out


def _h11(data: bytes):
    """h11's reading of the same bytes: (status, headers, body before content decoding)."""
    conn = h11.Connection(h11.CLIENT)
    conn.send(h11.Request(method="POST", target="/", headers=[("Host", "x"), ("Content-Length", "0")]))
    conn.send(h11.EndOfMessage())
    conn.receive_data(data)
    conn.receive_data(b"")
    status, headers, body = None, None, b""
    while True:
        event = conn.next_event()
        if isinstance(event, h11.Response):
            status, headers = event.status_code, [(k.decode(), v.decode()) for k, v in event.headers]
        elif isinstance(event, h11.Data):
            body += event.data
        elif isinstance(event, (h11.EndOfMessage, h11.ConnectionClosed)) or event is h11.NEED_DATA:
            break
    return status, headers, body


@settings(max_examples=300, deadline=None)
@given(responses(), st.lists(st.integers(0, 10_000), max_size=6))
def test_any_framing_in_any_pieces_reads_as_h11_reads_it(case, cuts):
    data, status, headers, body, framing, keep_alive = case
    response = _parse(_pieces(data, cuts), eof=framing == "close")
    assert response is not None
    assert response.status == status and response.body == body
    assert response.keep_alive is keep_alive
    h11_status, h11_headers, h11_body = _h11(data)
    assert response.status == h11_status
    for name, value in h11_headers:  # h11 keeps repeats apart; ours joins them in order
        assert value in response.headers[name]
    coding = response.headers.get("content-encoding")
    if coding is None:
        assert response.body == h11_body
    else:
        assert response.body == (gzip.decompress(h11_body) if coding == "gzip" else zlib.decompress(h11_body))


def test_repeated_headers_are_joined_and_names_lower_cased():
    r = ResponseParser().feed(b"HTTP/1.1 200 OK\r\nVary: a\r\nX-A: 1\r\nvary: b\r\nContent-Length: 2\r\n\r\nok")
    assert r is not None and r.headers == {"vary": "a, b", "x-a": "1", "content-length": "2"} and r.body == b"ok"
    assert r.reason == "OK"


@pytest.mark.parametrize("status", [204, 304])
def test_no_body_statuses_end_at_the_head(status):
    r = ResponseParser().feed(f"HTTP/1.1 {status} X\r\nContent-Length: 10\r\n\r\n".encode())
    assert r is not None and r.body == b"" and r.keep_alive


def test_a_head_request_has_no_body_whatever_the_length():
    r = ResponseParser(head_request=True).feed(b"HTTP/1.1 200 OK\r\nContent-Length: 10\r\n\r\n")
    assert r is not None and r.body == b""


def test_zero_length_and_http10_without_keep_alive():
    r = ResponseParser().feed(b"HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n")
    assert r is not None and r.body == b"" and r.keep_alive
    r = ResponseParser().feed(b"HTTP/1.0 200 OK\r\nContent-Length: 1\r\n\r\nx")
    assert r is not None and not r.keep_alive


def test_bytes_beyond_the_declared_length_make_the_connection_unusable():
    r = ResponseParser().feed(b"HTTP/1.1 200 OK\r\nContent-Length: 1\r\n\r\nxGARBAGE")
    assert r is not None and r.body == b"x" and not r.keep_alive


def test_transfer_encoding_overrides_content_length():
    r = ResponseParser().feed(
        b"HTTP/1.1 200 OK\r\nContent-Length: 99\r\nTransfer-Encoding: chunked\r\n\r\n2\r\nok\r\n0\r\n\r\n"
    )
    assert r is not None and r.body == b"ok"


def test_the_server_closing_before_a_byte_is_a_disconnect_and_mid_reply_a_protocol_error():
    with pytest.raises(ServerDisconnectedError):
        ResponseParser().feed_eof()
    parser = ResponseParser()
    assert parser.feed(b"HTTP/1.1 200 OK\r\nContent-Length: 10\r\n\r\nabc") is None
    with pytest.raises(HTTPProtocolError, match="middle"):
        parser.feed_eof()
    parser = ResponseParser()
    assert parser.feed(b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nab") is None
    with pytest.raises(HTTPProtocolError):
        parser.feed_eof()


@pytest.mark.parametrize(
    "data, words",
    [
        (b"HTTP/2 200 OK\r\n\r\n", "status line"),
        (b"HTTP/1.1 20 OK\r\n\r\n", "status line"),
        (b"<html>hello</html>\r\n\r\n", "status line"),
        (b"HTTP/1.1 200 OK\r\nno colon here\r\n\r\n", "malformed header"),
        (b"HTTP/1.1 200 OK\r\nbad name: x\r\n\r\n", "malformed header"),
        (b"HTTP/1.1 200 OK\r\n folded: x\r\n\r\n", "malformed header"),
        (b"HTTP/1.1 200 OK\r\nContent-Length: 5, 6\r\n\r\n", "Content-Length"),
        (b"HTTP/1.1 200 OK\r\nContent-Length: -1\r\n\r\n", "Content-Length"),
        (b"HTTP/1.1 200 OK\r\nContent-Length: 0x10\r\n\r\n", "Content-Length"),
        (b"HTTP/1.1 200 OK\r\nTransfer-Encoding: gzip\r\n\r\n", "transfer coding"),
        (b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n", "chunk size"),
        (b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n2\r\nokXX", "CRLF"),
        (b"HTTP/1.1 101 Switching Protocols\r\n\r\n", "switched"),
        (b"HTTP/1.1 200 OK\r\nContent-Encoding: br\r\nContent-Length: 2\r\n\r\nxx", "content coding 'br'"),
        (b"HTTP/1.1 200 OK\r\nContent-Encoding: gzip\r\nContent-Length: 2\r\n\r\nxx", "does not decode as gzip"),
    ],
)
def test_malformed_replies_are_refused_saying_what_is_wrong(data, words):
    with pytest.raises(HTTPProtocolError, match=words):
        ResponseParser().feed(data)


def test_a_head_without_end_longer_than_the_limit_is_refused():
    parser = ResponseParser()
    assert parser.feed(b"HTTP/1.1 200 OK\r\n") is None
    with pytest.raises(HTTPProtocolError, match="longer than"):
        parser.feed(b"x-pad: " + b"a" * MAX_HEAD_BYTES)


def test_bytes_after_a_complete_response_are_refused():
    parser = ResponseParser()
    assert parser.feed(b"HTTP/1.1 200 OK\r\nContent-Length: 1\r\n\r\nx") is not None
    with pytest.raises(HTTPProtocolError, match="after the end"):
        parser.feed(b"more")


def test_an_empty_body_with_a_content_coding_is_empty():
    for head in (b"HTTP/1.1 204 No Content\r\n", b"HTTP/1.1 200 OK\r\nContent-Length: 0\r\n"):
        r = ResponseParser().feed(head + b"Content-Encoding: gzip\r\n\r\n")
        assert r is not None and r.body == b""


def test_every_gzip_member_is_read_and_bytes_after_the_stream_are_refused():
    body = gzip.compress(b'{"a": ') + gzip.compress(b"1}")
    r = ResponseParser().feed(
        b"HTTP/1.1 200 OK\r\nContent-Encoding: gzip\r\nContent-Length: %d\r\n\r\n%s" % (len(body), body)
    )
    assert r is not None and r.body == b'{"a": 1}'
    for bad, words in ((gzip.compress(b"x") + b"junk", "gzip"), (gzip.compress(b"xyz")[:-6], "ends early")):
        with pytest.raises(HTTPProtocolError, match=words):
            ResponseParser().feed(
                b"HTTP/1.1 200 OK\r\nContent-Encoding: gzip\r\nContent-Length: %d\r\n\r\n%s" % (len(bad), bad)
            )
    bad = zlib.compress(b"x") + b"junk"
    with pytest.raises(HTTPProtocolError, match="deflate"):
        ResponseParser().feed(
            b"HTTP/1.1 200 OK\r\nContent-Encoding: deflate\r\nContent-Length: %d\r\n\r\n%s" % (len(bad), bad)
        )


@pytest.mark.parametrize(
    "head",
    [
        b"HTTP/1.1 200 OK\r\nX: a\nContent-Length: 2\r\n\r\n",  # a header hidden behind a bare LF
        b"HTTP/1.1 200 OK\r\nX: a\rb\r\n\r\n",
        b"HTTP/1.1 200 OK\r\nX: a\0b\r\n\r\n",
    ],
)
def test_line_breaks_and_nul_inside_a_header_value_are_refused(head):
    with pytest.raises(HTTPProtocolError, match="malformed header"):
        ResponseParser().feed(head)


def test_a_content_length_in_other_digits_is_a_protocol_error():
    with pytest.raises(HTTPProtocolError, match="Content-Length"):
        ResponseParser().feed("HTTP/1.1 200 OK\r\nContent-Length: \u00b2\r\n\r\n".encode("latin-1"))


def test_framing_that_forbids_reuse_closes_the_connection():
    r = ResponseParser().feed(b"HTTP/1.1 204 No Content\r\n\r\nstray")  # bytes after a body-less reply
    assert r is not None and not r.keep_alive
    r = ResponseParser().feed(b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n")
    assert r is not None and r.body == b"" and not r.keep_alive  # both framings: not trusted again
