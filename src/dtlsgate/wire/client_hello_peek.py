"""A DTLS ClientHello read at fixed offsets: what a stateless gate needs to answer it.

``peek_client_hello(body, whole=...)`` reads a DTLS ClientHello body (RFC 6347 §4.2.1)::

    client_version (2) | random (32) | session_id<0..32> | cookie<0..2^8-1> |
    cipher_suites<2..2^16-2> | compression_methods<1..2^8-1> | extensions (optional)

and returns the client_version, the fields before the cookie (what a cookie binds) and the
cookie, without decoding the rest into objects. For a whole message it also checks that the
rest is well framed, so that it accepts exactly what `ClientHello.decode` (the full decoder,
`wire.messages`) accepts, except a repeated extension type, which only the full decoder
looks for (the gate decodes a ClientHello fully before admitting it). For a first fragment
(``whole=False``) it reads only up to the end of the cookie: a stateless gate sees no more
of a fragmented ClientHello (RFC 6347 §4.2.1). ``tests/test_client_hello_peek.py`` pins the
two readers against each other.
"""

from __future__ import annotations

from dtlsgate._frozen import frozen
from dtlsgate.errors import DecodeError
from dtlsgate.wire.messages import MAX_SESSION_ID_LENGTH, RANDOM_LENGTH

_SESSION_ID_AT = 2 + RANDOM_LENGTH  # the session_id's length byte


@frozen
class ClientHelloPeek:
    """What the gate reads of a DTLS ClientHello.

    - ``client_version``: the ClientHello's version;
    - ``bound``: client_version, random and session_id (with its length byte) as received:
      every field before the cookie, which ClientHello2 repeats (RFC 6347 §4.2.1);
    - ``cookie``: the cookie's bytes (empty in a first ClientHello).
    """

    client_version: int
    bound: bytes
    cookie: bytes


def peek_client_hello(body: bytes, *, whole: bool) -> ClientHelloPeek | None:
    """The `ClientHelloPeek` of ``body``: a whole ClientHello body (``whole``), or the first
    fragment of one. None when a first fragment ends before its cookie does; DecodeError
    when ``body`` is malformed (a whole body must be a well-framed ClientHello)."""
    size = len(body)
    if size <= _SESSION_ID_AT:
        return _ends_early(whole)
    session_id_length = body[_SESSION_ID_AT]
    if session_id_length > MAX_SESSION_ID_LENGTH:
        raise DecodeError(f"session_id of {session_id_length} bytes")
    cookie_at = _SESSION_ID_AT + 1 + session_id_length
    if cookie_at >= size:
        return _ends_early(whole)
    cookie_end = cookie_at + 1 + body[cookie_at]
    if cookie_end > size:
        return _ends_early(whole)
    if whole:
        _check_framing_after_cookie(body, cookie_end)
    return ClientHelloPeek(
        (body[0] << 8) | body[1], body[:cookie_at], body[cookie_at + 1 : cookie_end]
    )


def _ends_early(whole: bool) -> ClientHelloPeek | None:
    """A whole ClientHello that ends before its cookie does is malformed; a first fragment
    that does is only too short to judge."""
    if whole:
        raise DecodeError("ClientHello truncated before the end of its cookie")
    return None


def _check_framing_after_cookie(body: bytes, pos: int) -> None:
    """cipher_suites<2..2^16-2> (an even length), compression_methods<1..2^8-1>, then
    nothing or an extensions block that fills the message exactly, each extension's
    length within it (RFC 5246 §7.4.1.2, RFC 8446 §4.2)."""
    end = len(body)
    if pos + 2 > end:
        raise DecodeError("ClientHello truncated in cipher_suites")
    suites_length = (body[pos] << 8) | body[pos + 1]
    if suites_length < 2 or suites_length & 1:
        raise DecodeError(f"cipher_suites of {suites_length} bytes")
    compression_at = pos + 2 + suites_length
    if compression_at >= end or not body[compression_at]:
        raise DecodeError("ClientHello truncated or empty in compression_methods")
    pos = compression_at + 1 + body[compression_at]
    if pos > end:
        raise DecodeError("ClientHello truncated in compression_methods")
    if pos == end:
        return  # no extensions block (allowed before TLS 1.3)
    if pos + 2 > end or pos + 2 + ((body[pos] << 8) | body[pos + 1]) != end:
        raise DecodeError("extensions block does not fill the ClientHello")
    pos += 2
    # Each extension: type (2), length (2), body; its header and body inside the block.
    while pos < end:
        if pos + 4 > end:
            raise DecodeError("extension header truncated")
        pos += 4 + ((body[pos + 2] << 8) | body[pos + 3])
    if pos != end:
        raise DecodeError("extension body truncated")
