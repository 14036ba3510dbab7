"""Handshake message headers: TLS (RFC 8446 §4) and DTLS (RFC 6347 §4.2.2, RFC 9147 §5.2).

A DTLS handshake header adds message_seq, fragment_offset and fragment_length so
that a message can be split over records and reassembled. The transcript hashes the
message as if it were sent unfragmented (fragment_offset 0, fragment_length = length):
for a message received in one fragment, the fragment as received.
"""

from __future__ import annotations

import struct
from collections.abc import Callable
from functools import partial
from typing import NamedTuple, cast

from dtlsgate.errors import DecodeError, UsageError
from dtlsgate.wire.buffer import Reader, Writer

_DTLS_HEADER = struct.Struct(">IHHI")
_TLS_HEADER = struct.Struct(">I")
_unpack_header = _DTLS_HEADER.unpack_from


def fragment_span(fragment: bytes) -> tuple[int, int, int]:
    """(message_seq, start, stop) of a DTLS handshake fragment (a whole message is one):
    where its bytes lie in its message's body, read from its 12-byte header in one unpack
    (type || length, message_seq, and fragment_offset || fragment_length as
    `encode_dtls_handshake_fragment` packs them)."""
    _, message_seq, high, low = _unpack_header(fragment)
    start = (high << 8) | (low >> 24)
    return message_seq, start, start + (low & 0xFFFFFF)


TLS_HANDSHAKE_HEADER_LENGTH = 4
DTLS_HANDSHAKE_HEADER_LENGTH = 12


class DtlsHandshakeHeader(NamedTuple):
    """RFC 6347 §4.2.2: the handshake header of one fragment. A named tuple (immutable,
    like the messages' dataclasses): every fragment received has one, made from the
    unpacked fields without a Python-level ``__init__``."""

    msg_type: int
    length: int
    message_seq: int
    fragment_offset: int
    fragment_length: int

    @classmethod
    def decode(cls, r: Reader) -> DtlsHandshakeHeader:
        return _header(r.unpack(_DTLS_HEADER))

    def encode(self) -> bytes:
        w = Writer()
        w.u8(self.msg_type)
        w.u24(self.length)
        w.u16(self.message_seq)
        w.u24(self.fragment_offset)
        w.u24(self.fragment_length)
        return w.getvalue()

    @property
    def is_whole(self) -> bool:
        return self.fragment_offset == 0 and self.fragment_length == self.length


# (msg_type, length, message_seq, fragment_offset, fragment_length) -> header, in C.
_as_header = cast(
    Callable[[tuple[int, int, int, int, int]], DtlsHandshakeHeader],
    partial(tuple.__new__, DtlsHandshakeHeader),
)


def encode_handshake(msg_type: int, body: bytes) -> bytes:
    """A TLS handshake message: type, uint24 length, body (its 4-byte header in one pack,
    type || length)."""
    n = len(body)
    if (msg_type >> 8) | (n >> 24):  # as in encode_dtls_handshake
        raise UsageError("msg_type or length out of range")
    return _TLS_HEADER.pack((msg_type << 24) | n) + body


def encode_dtls_handshake(msg_type: int, body: bytes, message_seq: int) -> bytes:
    """A whole DTLS handshake message in one fragment (fragment_offset 0, fragment_length =
    length): every message sent whole, and the form the transcript hashes (RFC 6347 §4.2.6).
    Its 12-byte header in one pack: type || length (u24), message_seq (u16),
    fragment_offset (u24) || fragment_length (u24)."""
    n = len(body)
    # Each value shifted past its width is 0 when it fits, and nonzero (or -1) otherwise.
    if (msg_type >> 8) | (message_seq >> 16) | (n >> 24):
        raise UsageError("msg_type, message_seq or length out of range")
    return _DTLS_HEADER.pack((msg_type << 24) | n, message_seq, 0, n) + body


def encode_dtls_handshake_fragment(
    msg_type: int, fragment: bytes, message_seq: int, fragment_offset: int, length: int
) -> bytes:
    """One fragment of a DTLS handshake message of ``length`` bytes: ``fragment``, the
    message's bytes from ``fragment_offset`` on, with its header (RFC 6347 §4.2.3)."""
    n = len(fragment)
    if (msg_type >> 8) | (message_seq >> 16) | (length >> 24) | (fragment_offset >> 24) | (n >> 24):
        raise UsageError("msg_type, message_seq, length or fragment_offset out of range")
    header = _DTLS_HEADER.pack(
        (msg_type << 24) | length,
        message_seq,
        fragment_offset >> 8,
        ((fragment_offset & 0xFF) << 24) | n,
    )
    return header + fragment


def _header(fields: tuple[int, int, int, int]) -> DtlsHandshakeHeader:
    """The header from its 12 bytes unpacked with ``_DTLS_HEADER``: type || length (u24),
    message_seq, fragment_offset (u24) || fragment_length (u24)."""
    type_and_length, message_seq, offset_high, offset_low_and_length = fields
    length = type_and_length & 0xFFFFFF
    if not offset_high and offset_low_and_length == length:
        # fragment_offset 0 and fragment_length = length: the whole message in one fragment
        # (nearly every message received), within its message by construction.
        return _as_header((type_and_length >> 24, length, message_seq, 0, length))
    fragment_offset = (offset_high << 8) | (offset_low_and_length >> 24)
    fragment_length = offset_low_and_length & 0xFFFFFF
    # RFC 6347 §4.2.3: a fragment must lie within its message.
    if fragment_offset + fragment_length > length:
        raise DecodeError("handshake fragment extends past the message length")
    return _as_header(
        (type_and_length >> 24, length, message_seq, fragment_offset, fragment_length)
    )


def decode_dtls_handshake_fragments(plaintext: bytes) -> list[tuple[DtlsHandshakeHeader, bytes]]:
    """All handshake fragments in one record's plaintext (several may share a record), each
    as its header and the fragment as received, the 12-byte header included (the body is
    ``fragment[12:]``): a message that came in one fragment enters the transcript as it
    was received (RFC 6347 §4.2.6). Every record's plaintext goes through here: the framing
    is read as a ``Reader`` would (each header, then each fragment, checked against the end
    before use) without one."""
    out: list[tuple[DtlsHandshakeHeader, bytes]] = []
    pos, end = 0, len(plaintext)
    while pos < end:
        start = pos + DTLS_HANDSHAKE_HEADER_LENGTH
        if start > end:
            raise DecodeError(f"truncated: need 12 bytes, {end - pos} left")
        header = _header(_unpack_header(plaintext, pos))
        stop = start + header.fragment_length
        if stop > end:
            raise DecodeError(f"truncated: need {header.fragment_length} bytes, {end - start} left")
        out.append((header, plaintext[pos:stop]))
        pos = stop
    return out
