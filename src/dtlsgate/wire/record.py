"""Record headers: TLSPlaintext (RFC 8446 §5.1) and DTLSPlaintext (RFC 6347 §4.1).

Only framing lives here: splitting a datagram or a stream into records. Protection
(AEAD, epochs, anti-replay) is the record layer's job, above the crypto provider.
"""

from __future__ import annotations

import struct
from collections.abc import Callable, Iterator
from functools import partial
from typing import NamedTuple, cast

from dtlsgate._frozen import frozen
from dtlsgate.errors import DecodeError, UsageError
from dtlsgate.wire.buffer import Reader, Writer

TLS_RECORD_HEADER_LENGTH = 5
DTLS_RECORD_HEADER_LENGTH = 13
# The first byte of every DTLS version (0xFEFF DTLS 1.0, 0xFEFD 1.2; RFC 6347 §4.1).
DTLS_VERSION_MAJOR = 0xFE

# RFC 8446 §5.1: TLSPlaintext.length MUST NOT exceed 2^14; protected records may carry
# up to 2^14 + 256 bytes (§5.2). A longer record is a record_overflow for a stream and
# garbage for a datagram.
MAX_PLAINTEXT_LENGTH = 1 << 14
MAX_CIPHERTEXT_LENGTH = MAX_PLAINTEXT_LENGTH + 256
# DTLSPlaintext header (RFC 6347 §4.1): type, version, epoch, sequence_number (u48 as
# u16 || u32), length; unpacked at once on every record received.
_DTLS_HEADER = struct.Struct(">BHHHIH")


@frozen
class TlsRecordHeader:
    """TLSPlaintext / TLSCiphertext header: type, legacy_record_version, length."""

    content_type: int
    version: int
    length: int

    @classmethod
    def decode(cls, r: Reader) -> TlsRecordHeader:
        content_type = r.u8()
        version = r.u16()
        length = r.u16()
        if length > MAX_CIPHERTEXT_LENGTH:
            raise DecodeError(f"record length {length} exceeds 2^14 + 256")
        return cls(content_type, version, length)

    def encode(self) -> bytes:
        w = Writer()
        w.u8(self.content_type)
        w.u16(self.version)
        w.u16(self.length)
        return w.getvalue()


@frozen
class DtlsRecordHeader:
    """DTLSPlaintext header (RFC 6347 §4.1): type, version, epoch, sequence_number, length."""

    content_type: int
    version: int
    epoch: int
    sequence_number: int
    length: int

    @classmethod
    def decode(cls, r: Reader) -> DtlsRecordHeader:
        content_type = r.u8()
        version = r.u16()
        epoch = r.u16()
        sequence_number = r.u48()
        length = r.u16()
        if length > MAX_CIPHERTEXT_LENGTH:
            raise DecodeError(f"record length {length} exceeds 2^14 + 256")
        return cls(content_type, version, epoch, sequence_number, length)

    def encode(self) -> bytes:
        w = Writer()
        w.u8(self.content_type)
        w.u16(self.version)
        w.u16(self.epoch)
        w.u48(self.sequence_number)
        w.u16(self.length)
        return w.getvalue()


class DtlsRecord(NamedTuple):
    """One record of a datagram: the DTLSPlaintext header's fields (RFC 6347 §4.1) and its
    fragment (protected or not). A named tuple (immutable, like the messages' dataclasses):
    every record received is one, and ``split_dtls_records`` makes it from the unpacked
    fields without a Python-level ``__init__``."""

    content_type: int
    version: int
    epoch: int
    sequence_number: int
    fragment: bytes


# (content_type, version, epoch, sequence_number, fragment) -> DtlsRecord, in C.
_as_record = cast(
    Callable[[tuple[int, int, int, int, bytes]], DtlsRecord], partial(tuple.__new__, DtlsRecord)
)


def encode_dtls_record(
    content_type: int, version: int, epoch: int, sequence_number: int, fragment: bytes
) -> bytes:
    """One DTLSPlaintext record with ``fragment`` as its body: the header in one pack."""
    length = len(fragment)
    # Each value shifted past its width is 0 when it fits, and nonzero (or -1) otherwise.
    if (
        (content_type >> 8)
        | (version >> 16)
        | (epoch >> 16)
        | (sequence_number >> 48)
        | (length >> 16)
    ):
        raise UsageError("content_type, version, epoch, sequence_number or length out of range")
    return (
        _DTLS_HEADER.pack(
            content_type,
            version,
            epoch,
            sequence_number >> 32,
            sequence_number & 0xFFFFFFFF,
            length,
        )
        + fragment
    )


def split_dtls_records(datagram: bytes) -> Iterator[DtlsRecord]:
    """The DTLSPlaintext records of one datagram (RFC 6347 §4.1.1: several records
    may share a datagram, none may span two). Stops at the first record that does not
    fit: the rest of the datagram is garbage and is dropped by the caller's rules."""
    pos, end = 0, len(datagram)
    while end - pos >= DTLS_RECORD_HEADER_LENGTH:
        content_type, version, epoch, seq_high, seq_low, length = _DTLS_HEADER.unpack_from(
            datagram, pos
        )
        start = pos + DTLS_RECORD_HEADER_LENGTH
        pos = start + length
        if length > MAX_CIPHERTEXT_LENGTH or pos > end:
            return
        sequence_number = (seq_high << 32) | seq_low
        yield _as_record((content_type, version, epoch, sequence_number, datagram[start:pos]))
