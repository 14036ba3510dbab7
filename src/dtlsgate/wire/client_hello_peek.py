"""A DTLS ClientHello read at fixed offsets: what a stateless gate needs to answer it.

``peek_client_hello(body, whole=...)`` reads a DTLS ClientHello body (RFC 6347 §4.2.1)::

    client_version (2) | random (32) | session_id<0..32> | cookie<0..2^8-1> |
    cipher_suites<2..2^16-2> | compression_methods<1..2^8-1> | extensions (optional)

and returns the client_version, the fields before the cookie (what a cookie binds) and the
cookie, without decoding the rest into objects. For a whole message it also checks that the
rest is well framed (`framing_after_cookie`, which the DTLS 1.3 peek shares), so that it
accepts exactly what `ClientHello.decode` (the full decoder, `wire.messages`) accepts
(the gate decodes a ClientHello fully before admitting it). For a first fragment
(``whole=False``) it reads only up to the end of the cookie: a stateless gate sees no more
of a fragmented ClientHello (RFC 6347 §4.2.1). ``tests/test_client_hello_peek.py`` pins the
two readers against each other.

``peek_client_hello_record(datagram)`` is the same peek one level out, for a stateless gate
that answers a flood: it reads the datagram's first DTLSPlaintext header (RFC 6347 §4.1),
its handshake header (§4.2.2) and the ClientHello fields up to the end of the cookie in one
bounded pass over the datagram, with one struct unpack for both headers, and returns the
fields the gate judges; None when the first record is not a DTLS record of epoch 0 (where
every ClientHello is: RFC 6347 §4.1, §4.2.1) holding one handshake fragment, the first of a
ClientHello, that fills its record and holds the whole cookie (then the full decoders,
`split_dtls_records`, `DtlsHandshakeHeader.decode` and `peek_client_hello`, say what it is
instead). It reads a whole ClientHello as it reads a first fragment, only up to the end of
the cookie, as ``DTLSv1_listen`` does: what follows the cookie is no part of a
HelloVerifyRequest's answer, and the gate decodes the whole message before it admits one.
The test pins it to the full decoders reading the body up to its cookie.
"""

from __future__ import annotations

import struct
from collections.abc import Callable
from functools import partial
from typing import NamedTuple, cast

from dtlsgate._frozen import frozen
from dtlsgate._memo import Memo
from dtlsgate.errors import DecodeError
from dtlsgate.wire.enums import ContentType, HandshakeType
from dtlsgate.wire.handshake import DTLS_HANDSHAKE_HEADER_LENGTH
from dtlsgate.wire.messages import MAX_SESSION_ID_LENGTH, RANDOM_LENGTH, ClientHello
from dtlsgate.wire.record import (
    DTLS_RECORD_HEADER_LENGTH,
    DTLS_VERSION_MAJOR,
    MAX_CIPHERTEXT_LENGTH,
)

_SESSION_ID_AT = 2 + RANDOM_LENGTH  # the session_id's length byte, in the body
# A client sends ClientHello with message_seq 0, and 1 after a HelloVerifyRequest (RFC 6347
# §4.2.2); DTLSv1_listen accepts up to 2 and rejects more ("invalid sequence number").
MAX_CLIENT_HELLO_MESSAGE_SEQ = 2
# The DTLSPlaintext header (RFC 6347 §4.1: type, version's major byte (its minor byte is
# not judged: skipped), epoch || sequence_number as one 64-bit integer, length) and the
# handshake header (§4.2.2: msg_type || length (u24), message_seq, fragment_offset as u16 ||
# (u8 || fragment_length (u24))). Not client_version: it is the first two bytes of
# ``bound``, and an int of it (0xFEFD is no small int) would be a new object per datagram,
# read only for the gate's one test of its first byte (bench/RESULTS.md, listen15).
_HEADERS = struct.Struct(">BBxQH" + "IHHI")
_HEADERS_LENGTH = _HEADERS.size
_BODY_AT = DTLS_RECORD_HEADER_LENGTH + DTLS_HANDSHAKE_HEADER_LENGTH
_TYPE_AND_LENGTH = struct.Struct(">HH")  # an extension's header (RFC 8446 §4.2)


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
    span = _cookie_span(body, 0, len(body), whole)
    if span is None:
        return None
    cookie_at, cookie_end = span
    return ClientHelloPeek(
        (body[0] << 8) | body[1], body[:cookie_at], body[cookie_at + 1 : cookie_end]
    )


class ClientHelloRecordPeek(NamedTuple):
    """What a stateless gate judges of a datagram whose first record holds the first
    fragment of a DTLS ClientHello (`peek_client_hello_record`).

    - ``sequence_number``: the record's (RFC 6347 §4.1; a DTLS record of epoch 0);
    - ``message_seq``: the handshake header's (§4.2.2);
    - ``bound``, ``cookie``: as in `ClientHelloPeek` (``bound`` starts with client_version);
    - ``whole``: the fragment is the whole ClientHello (its fragment_length is the message's
      length, RFC 6347 §4.2.2), not only the first part of one.
    """

    sequence_number: int
    message_seq: int
    bound: bytes
    cookie: bytes
    whole: bool

    @property
    def client_version(self) -> int:
        """The ClientHello's version: the first two bytes of ``bound``."""
        return (self.bound[0] << 8) | self.bound[1]


# The fields in order -> ClientHelloRecordPeek, in C: the gate peeks every ClientHello, and
# a named tuple's own ``__new__`` is a Python-level function (as wire/record.py's DtlsRecord).
_as_record_peek = cast(
    Callable[[tuple[int, int, bytes, bytes, bool]], ClientHelloRecordPeek],
    partial(tuple.__new__, ClientHelloRecordPeek),
)


def peek_client_hello_record(datagram: bytes) -> ClientHelloRecordPeek | None:
    """The `ClientHelloRecordPeek` of ``datagram``'s first record; None when that record is
    not a DTLS handshake record of epoch 0 (§4.1, within the datagram) holding exactly one
    fragment, the first of a ClientHello (§4.2.2: fragment_offset 0, message_seq at most
    MAX_CLIENT_HELLO_MESSAGE_SEQ, the fragment within its message and filling the record),
    whose body `peek_client_hello` accepts as a first fragment (it holds the cookie; a whole
    ClientHello is not read past its cookie either). Records after the first are not
    read."""
    size = len(datagram)
    if size < _HEADERS_LENGTH:
        return None
    (
        content_type,
        record_major,
        epoch_and_seq,
        record_length,
        type_and_length,
        message_seq,
        offset_high,
        offset_low_and_fragment_length,
    ) = _HEADERS.unpack_from(datagram)
    end = DTLS_RECORD_HEADER_LENGTH + record_length
    if content_type != ContentType.HANDSHAKE or record_length > MAX_CIPHERTEXT_LENGTH or end > size:
        return None
    length = type_and_length & 0xFFFFFF
    fragment_length = offset_low_and_fragment_length & 0xFFFFFF
    if (
        type_and_length >> 24 != HandshakeType.CLIENT_HELLO
        or message_seq > MAX_CLIENT_HELLO_MESSAGE_SEQ
        or offset_high
        or offset_low_and_fragment_length >> 24
        or fragment_length > length
        or _BODY_AT + fragment_length != end
    ):
        return None
    try:
        span = _cookie_span(datagram, _BODY_AT, end, False)
    except DecodeError:
        return None
    # Not DTLS, or not epoch 0 (the upper 16 bits: epoch || sequence_number, §4.1).
    if span is None or record_major != DTLS_VERSION_MAJOR or epoch_and_seq >> 48:
        return None
    cookie_at, cookie_end = span
    return _as_record_peek(
        (
            epoch_and_seq,  # epoch 0: the sequence number
            message_seq,
            datagram[_BODY_AT:cookie_at],
            datagram[cookie_at + 1 : cookie_end],
            fragment_length == length,
        )
    )


def client_hello_from_peek(
    peek: ClientHelloRecordPeek, body: bytes, known: Memo[bytes, ClientHello] | None = None
) -> ClientHello:
    """The whole ClientHello ``body`` (``peek.whole``) that `peek_client_hello_record` read:
    its fields up to the cookie as the peek read them (not decoded twice), the rest (the
    offer) by `ClientHello.with_offer`, which raises `DecodeError` as `ClientHello.decode`
    would for a malformed one."""
    bound = peek.bound  # client_version, random, then the session_id after its length byte
    return ClientHello.with_offer(
        peek.client_version,
        bound[2:_SESSION_ID_AT],
        bound[_SESSION_ID_AT + 1 :],
        peek.cookie,
        body,
        len(bound) + 1 + len(peek.cookie),
        known,
    )


def _cookie_span(data: bytes, start: int, end: int, whole: bool) -> tuple[int, int] | None:
    """Where the cookie<0..2^8-1> of the ClientHello body ``data[start:end]`` is: the offsets
    of its length byte and of its end. None when a first fragment ends before its cookie
    does; DecodeError when the body is malformed (for a whole body, also after the cookie:
    `framing_after_cookie`)."""
    session_id_at = start + _SESSION_ID_AT
    if session_id_at < end:
        session_id_length = data[session_id_at]
        if session_id_length > MAX_SESSION_ID_LENGTH:
            raise DecodeError(f"session_id of {session_id_length} bytes")
        cookie_at = session_id_at + 1 + session_id_length
        if cookie_at < end:
            cookie_end = cookie_at + 1 + data[cookie_at]
            if cookie_end <= end:
                if whole:
                    framing_after_cookie(data, cookie_end, end)
                return cookie_at, cookie_end
    # The body ends before its cookie does: a whole ClientHello that does is malformed; a
    # first fragment that does is only too short to judge.
    if whole:
        raise DecodeError("ClientHello truncated before the end of its cookie")
    return None


def framing_after_cookie(
    body: bytes, pos: int, end: int
) -> tuple[int, int, dict[int, tuple[int, int]] | None]:
    """Walk a ClientHello body from ``pos``, the end of its cookie, to the message's
    ``end``: cipher_suites<2..2^16-2> (an even length), compression_methods<1..2^8-1>, then
    nothing or an extensions block that fills the message exactly, each extension's header
    and body within it, no type twice (RFC 5246 §7.4.1.2, RFC 8446 §4.2). Returns where
    compression_methods and the extensions block start (their length fields; ``end`` when
    there is no block) and each extension's span by type, from its header to the end of its
    body (None: no extensions block). DecodeError when the body is malformed. Serves both
    peeks: the DTLS 1.3 one (`client_hello13_peek`) reads its extensions from the spans."""
    if pos + 2 > end:
        raise DecodeError("ClientHello truncated in cipher_suites")
    suites_length = (body[pos] << 8) | body[pos + 1]
    if suites_length < 2 or suites_length & 1:
        raise DecodeError(f"cipher_suites of {suites_length} bytes")
    compression_at = pos + 2 + suites_length
    if compression_at >= end or not body[compression_at]:
        raise DecodeError("ClientHello truncated or empty in compression_methods")
    extensions_at = compression_at + 1 + body[compression_at]
    if extensions_at >= end:
        if extensions_at > end:
            raise DecodeError("ClientHello truncated in compression_methods")
        return compression_at, end, None  # no extensions block (allowed before TLS 1.3)
    if (
        extensions_at + 2 > end
        or extensions_at + 2 + ((body[extensions_at] << 8) | body[extensions_at + 1]) != end
    ):
        raise DecodeError("extensions block does not fill the ClientHello")
    # Each extension: type (2), length (2), body; its header and body inside the block.
    # A type seen twice leaves fewer spans than extensions.
    spans: dict[int, tuple[int, int]] = {}
    count = 0
    pos = extensions_at + 2
    while pos < end:
        if pos + 4 > end:
            raise DecodeError("extension header truncated")
        ext_type, length = _TYPE_AND_LENGTH.unpack_from(body, pos)
        stop = pos + 4 + length
        if stop > end:
            raise DecodeError("extension body truncated")
        spans[ext_type] = (pos, stop)
        count += 1
        pos = stop
    if len(spans) != count:
        raise DecodeError("an extension type twice")
    return compression_at, extensions_at, spans
