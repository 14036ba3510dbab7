"""TLS 1.3 handshake messages after the hellos (RFC 8446 §4.3-§4.6), DTLS 1.3's
NewConnectionId and RequestConnectionId (RFC 9147 §9) and its ACK (§7), frozen dataclasses
with pure decode/encode.

``decode`` takes a message *body* (the bytes after the 4-byte handshake header) and rejects
trailing bytes; ``encode`` returns the body. DTLS 1.3 uses the same bodies (RFC 9147 §5).
Extensions are checked against the message they appear in (RFC 8446 §4.2 table) by
``decode_extensions``.
"""

from __future__ import annotations

import itertools
import struct

from dtlsgate._frozen import frozen
from dtlsgate.errors import DecodeError, IllegalParameter, UsageError
from dtlsgate.wire.buffer import Reader, Writer, encode_u16, encode_vector
from dtlsgate.wire.enums import ConnectionIdUsage, KeyUpdateRequest
from dtlsgate.wire.extensions import (
    Context,
    Extension,
    decode_extensions,
    encode_extensions,
    extensions_block,
    find_extension,
)

# RFC 8446 §4.4.2: opaque certificate_request_context<0..2^8-1>.
MAX_REQUEST_CONTEXT_LENGTH = 255
# RFC 8446 §4.6.1: ticket_nonce<0..255>, ticket<1..2^16-1>; lifetime at most 7 days.
MAX_TICKET_LIFETIME = 604800
_TWO_U32 = struct.Struct(">II")


@frozen
class EncryptedExtensions:
    """RFC 8446 §4.3.1: Extension extensions<0..2^16-1>."""

    extensions: tuple[Extension, ...]

    def get(self, ext_type: int) -> bytes | None:
        return find_extension(self.extensions, ext_type)

    @classmethod
    def decode(cls, body: bytes) -> EncryptedExtensions:
        r = Reader(body)
        extensions = decode_extensions(r, Context.ENCRYPTED_EXTENSIONS)
        r.finish()
        return cls(extensions)

    def encode(self) -> bytes:
        w = Writer()
        encode_extensions(w, self.extensions)
        return w.getvalue()


@frozen
class CertificateEntry:
    """RFC 8446 §4.4.2: opaque cert_data<1..2^24-1> (X.509 DER) and its extensions."""

    cert_data: bytes
    extensions: tuple[Extension, ...] = ()


@frozen
class Certificate:
    """RFC 8446 §4.4.2: certificate_request_context<0..2^8-1> and
    CertificateEntry certificate_list<0..2^24-1>. An empty list is legal for a client
    that has no certificate to send (§4.4.2.4)."""

    request_context: bytes
    entries: tuple[CertificateEntry, ...]

    @property
    def chain_der(self) -> tuple[bytes, ...]:
        return tuple(e.cert_data for e in self.entries)

    @classmethod
    def decode(cls, body: bytes) -> Certificate:
        r = Reader(body)
        context = r.vector(1, 0, MAX_REQUEST_CONTEXT_LENGTH)
        entries_r = r.prefixed(3)
        entries: list[CertificateEntry] = []
        while not entries_r.at_end():
            cert_data = entries_r.vector(3, 1)
            extensions = decode_extensions(entries_r, Context.CERTIFICATE)
            entries.append(CertificateEntry(cert_data, extensions))
        r.finish()
        return cls(context, tuple(entries))

    def encode(self) -> bytes:
        w = Writer()
        w.vector(1, self.request_context, 0, MAX_REQUEST_CONTEXT_LENGTH)
        with w.prefixed(3):
            for entry in self.entries:
                w.vector(3, entry.cert_data, 1)
                encode_extensions(w, entry.extensions)
        return w.getvalue()


@frozen
class CertificateRequest:
    """RFC 8446 §4.3.2: certificate_request_context<0..2^8-1>, extensions<2..2^16-1>
    (signature_algorithms is required there, checked by the handshake)."""

    request_context: bytes
    extensions: tuple[Extension, ...]

    def get(self, ext_type: int) -> bytes | None:
        return find_extension(self.extensions, ext_type)

    @classmethod
    def decode(cls, body: bytes) -> CertificateRequest:
        r = Reader(body)
        context = r.vector(1, 0, MAX_REQUEST_CONTEXT_LENGTH)
        extensions = decode_extensions(r, Context.CERTIFICATE_REQUEST)
        r.finish()
        return cls(context, extensions)

    def encode(self) -> bytes:
        w = Writer()
        w.vector(1, self.request_context, 0, MAX_REQUEST_CONTEXT_LENGTH)
        encode_extensions(w, self.extensions)
        return w.getvalue()


@frozen
class CertificateVerify:
    """RFC 8446 §4.4.3: SignatureScheme algorithm; opaque signature<0..2^16-1>."""

    algorithm: int
    signature: bytes

    @classmethod
    def decode(cls, body: bytes) -> CertificateVerify:
        r = Reader(body)
        algorithm = r.u16()
        signature = r.vector(2)
        r.finish()
        return cls(algorithm, signature)

    def encode(self) -> bytes:
        return encode_certificate_verify(self.algorithm, self.signature)


def encode_certificate_verify(algorithm: int, signature: bytes) -> bytes:
    """The body of the `CertificateVerify` with these fields: what a peer sends once per
    handshake, encoded without a message object."""
    return encode_u16(algorithm) + encode_vector(2, signature)


@frozen
class Finished:
    """RFC 8446 §4.4.4: opaque verify_data[Hash.length]."""

    verify_data: bytes

    @classmethod
    def decode(cls, body: bytes, hash_length: int) -> Finished:
        # verify_data has the fixed length of the negotiated hash; anything else does not
        # parse as this message (decode_error).
        if len(body) != hash_length:
            raise DecodeError(f"Finished of {len(body)} bytes, expected {hash_length}")
        return cls(body)

    def encode(self) -> bytes:
        return self.verify_data


@frozen
class NewSessionTicket:
    """RFC 8446 §4.6.1: ticket_lifetime, ticket_age_add, ticket_nonce<0..255>,
    ticket<1..2^16-1>, extensions<0..2^16-2>."""

    ticket_lifetime: int
    ticket_age_add: int
    ticket_nonce: bytes
    ticket: bytes
    extensions: tuple[Extension, ...] = ()

    @classmethod
    def decode(cls, body: bytes) -> NewSessionTicket:
        r = Reader(body)
        lifetime, age_add = r.unpack(_TWO_U32)
        nonce = r.vector(1)
        ticket = r.vector(2, 1)
        extensions = decode_extensions(r, Context.NEW_SESSION_TICKET)
        r.finish()
        # RFC 8446 §4.6.1: "Servers MUST NOT use any value greater than 604800 seconds".
        if lifetime > MAX_TICKET_LIFETIME:
            raise IllegalParameter("ticket_lifetime above 7 days")
        return cls(lifetime, age_add, nonce, ticket, extensions)

    def encode(self) -> bytes:
        return encode_new_session_ticket(
            self.ticket_lifetime,
            self.ticket_age_add,
            self.ticket_nonce,
            self.ticket,
            self.extensions,
        )


def encode_new_session_ticket(
    ticket_lifetime: int,
    ticket_age_add: int,
    ticket_nonce: bytes,
    ticket: bytes,
    extensions: tuple[Extension, ...] = (),
) -> bytes:
    """The body of the `NewSessionTicket` with these fields: what a server sends after
    every handshake, encoded without a message object."""
    try:
        times = _TWO_U32.pack(ticket_lifetime, ticket_age_add)
    except struct.error:
        raise UsageError("ticket_lifetime or ticket_age_add does not fit in 4 bytes") from None
    return b"".join(
        (
            times,
            encode_vector(1, ticket_nonce),
            encode_vector(2, ticket, 1),
            extensions_block(extensions),
        )
    )


@frozen
class KeyUpdate:
    """RFC 8446 §4.6.3: KeyUpdateRequest request_update."""

    request_update: KeyUpdateRequest

    @classmethod
    def decode(cls, body: bytes) -> KeyUpdate:
        r = Reader(body)
        value = r.u8()
        r.finish()
        # RFC 8446 §4.6.3: any other value is illegal_parameter.
        try:
            request = KeyUpdateRequest(value)
        except ValueError:
            raise IllegalParameter(f"KeyUpdate request_update {value}") from None
        return cls(request)

    def encode(self) -> bytes:
        return bytes((self.request_update,))


@frozen
class EndOfEarlyData:
    """RFC 8446 §4.5: an empty body."""

    @classmethod
    def decode(cls, body: bytes) -> EndOfEarlyData:
        if body:
            raise DecodeError("EndOfEarlyData has an empty body")
        return cls()

    def encode(self) -> bytes:
        return b""


# RFC 9147 §9: opaque ConnectionId<0..2^8-1>; ConnectionId cids<0..2^16-1>.
MAX_CONNECTION_ID_LENGTH = 255
MAX_CONNECTION_IDS_LENGTH = (1 << 16) - 1


@frozen
class NewConnectionId:
    """RFC 9147 §9: ``ConnectionId cids<0..2^16-1>`` (each ``opaque<0..2^8-1>``) and a
    ConnectionIdUsage, cid_immediate or cid_spare (any other value is illegal_parameter,
    as RFC 8446 §4.6.3 treats an unknown KeyUpdateRequest). The codec keeps what the wire
    allows, empty CIDs included; what a connection accepts is its own check."""

    cids: tuple[bytes, ...]
    usage: ConnectionIdUsage

    @classmethod
    def decode(cls, body: bytes) -> NewConnectionId:
        r = Reader(body)
        listed = r.prefixed(2)
        cids: list[bytes] = []
        while not listed.at_end():
            cids.append(listed.vector(1, 0, MAX_CONNECTION_ID_LENGTH))
        value = r.u8()
        r.finish()
        try:
            usage = ConnectionIdUsage(value)
        except ValueError:
            raise IllegalParameter(f"NewConnectionId usage {value}") from None
        return cls(tuple(cids), usage)

    def encode(self) -> bytes:
        w = Writer()
        with w.prefixed(2, 0, MAX_CONNECTION_IDS_LENGTH):
            for cid in self.cids:
                w.vector(1, cid, 0, MAX_CONNECTION_ID_LENGTH)
        w.u8(self.usage)
        return w.getvalue()


@frozen
class RequestConnectionId:
    """RFC 9147 §9: ``uint8 num_cids``, the number of CIDs desired."""

    num_cids: int

    @classmethod
    def decode(cls, body: bytes) -> RequestConnectionId:
        r = Reader(body)
        num_cids = r.u8()
        r.finish()
        return cls(num_cids)

    def encode(self) -> bytes:
        w = Writer()
        w.u8(self.num_cids)
        return w.getvalue()


# RFC 9147 §7: a RecordNumber is uint64 epoch and uint64 sequence_number.
RECORD_NUMBER_LENGTH = 16
_RECORD_NUMBER = struct.Struct(">QQ")
_VECTOR_LENGTH = struct.Struct(">H")


@frozen
class Ack:
    """The DTLS 1.3 ACK (RFC 9147 §7): the record numbers (epoch, sequence_number) of the
    handshake records received, ``RecordNumber record_numbers<0..2^16-1>``. Not a handshake
    message: it is the whole content of an ACK record (content type 26)."""

    record_numbers: tuple[tuple[int, int], ...]

    @classmethod
    def decode(cls, body: bytes) -> Ack:
        return cls(decode_ack(body))

    def encode(self) -> bytes:
        return encode_ack(self.record_numbers)


def decode_ack(body: bytes) -> tuple[tuple[int, int], ...]:
    """The record numbers of an `Ack` body, without the object: the vector's length checked
    (within the body, a whole number of RecordNumbers, nothing after it), then every
    number unpacked as its own tuple by one precompiled struct (a peer sends an ACK or two
    per handshake, and per flight after)."""
    end = len(body)
    if end < 2:
        raise DecodeError(f"truncated: need 2 bytes, {end} left")
    n = (body[0] << 8) | body[1]
    if 2 + n > end:
        raise DecodeError(f"truncated: need {n} bytes, {end - 2} left")
    if n % RECORD_NUMBER_LENGTH:
        raise DecodeError("ACK record_numbers is not a whole number of RecordNumbers")
    if 2 + n != end:
        raise DecodeError(f"{end - 2 - n} bytes after the ACK's record numbers")
    # No format string made per ACK, no pairing of the values afterwards: iter_unpack
    # yields each RecordNumber as its (epoch, sequence_number) tuple.
    return tuple(_RECORD_NUMBER.iter_unpack(body[2:]))


def encode_ack(record_numbers: tuple[tuple[int, int], ...] | list[tuple[int, int]]) -> bytes:
    """The body of the `Ack` of these record numbers: what a peer sends once or twice per
    handshake, encoded without a message object: the vector's length, then each number
    packed by one precompiled struct (no format string made per ACK)."""
    try:
        return _VECTOR_LENGTH.pack(RECORD_NUMBER_LENGTH * len(record_numbers)) + b"".join(
            itertools.starmap(_RECORD_NUMBER.pack, record_numbers)
        )
    except struct.error:
        raise UsageError("ACK record number or length out of range") from None
