"""The TLS 1.3 record layer over a byte stream (RFC 8446 §5), kept apart from the handshake.

- `RecordProtection`: one direction under one traffic secret: the per-record nonce (the IV
  XOR the 64-bit sequence number, §5.3), the record header as additional data (§5.2), the
  TLSInnerPlaintext content type and zero padding (§5.4);
- `StreamRecordLayer`: splits a byte stream into TLSPlaintext/TLSCiphertext records,
  enforces the size limits (§5.1, §5.2, RFC 8449), drops the middlebox-compatibility
  ChangeCipherSpec (§5, Appendix D.4), skips rejected 0-RTT records when the handshake
  asks it to (§4.2.10) and frames outgoing data into records;
- `HandshakeReassembler`: handshake messages may span records or share one (§5.1).

A DTLS 1.3 record layer (RFC 9147 §4) would replace `StreamRecordLayer` and drive the same
handshake; the handshake only ever sees whole messages and asks for key changes.
"""

from __future__ import annotations

from dtlsgate._frozen import frozen
from dtlsgate.crypto.aead import Aead
from dtlsgate.errors import (
    BadRecordMac,
    DecodeError,
    ProtocolVersionError,
    RecordOverflow,
    StateError,
    UnexpectedMessage,
)
from dtlsgate.wire.enums import AlertDescription, ContentType, ProtocolVersion

RECORD_HEADER_LENGTH = 5
# RFC 8446 §5.1: TLSPlaintext.length MUST NOT exceed 2^14 bytes.
MAX_PLAINTEXT = 1 << 14
# RFC 8446 §5.2: TLSCiphertext.length MUST NOT exceed 2^14 + 256 bytes.
MAX_CIPHERTEXT = MAX_PLAINTEXT + 256
# RFC 8449 §4: a record_size_limit below 64 is illegal.
MIN_RECORD_SIZE_LIMIT = 64
# A handshake message longer than this is refused: a certificate chain of a few large RSA
# certificates fits well within it, and it bounds what a peer can make us buffer (the
# message length field alone would allow 16 MiB).
MAX_HANDSHAKE_MESSAGE = 1 << 18
# RFC 8446 §5.3: a sequence number must not wrap; we stop well before 2^64.
MAX_SEQUENCE = (1 << 64) - 1
# RFC 8446 §5.1: legacy_record_version is 0x0303 on every record but an initial
# ClientHello, which may use 0x0301.
LEGACY_RECORD_VERSION = ProtocolVersion.TLS12
_LEGACY_VERSION_BYTES = LEGACY_RECORD_VERSION.to_bytes(2, "big")
# RFC 8446 §5.2: every protected record's header starts opaque_type application_data,
# legacy_record_version 0x0303; only the length follows.
_PROTECTED_HEADER_START = bytes((ContentType.APPLICATION_DATA,)) + _LEGACY_VERSION_BYTES
_CCS_BODY = b"\x01"


# The content types a record header may carry (RFC 8446 §5.1, Appendix B.1).
_OUTER_TYPES = frozenset(
    {
        ContentType.CHANGE_CIPHER_SPEC,
        ContentType.ALERT,
        ContentType.HANDSHAKE,
        ContentType.APPLICATION_DATA,
    }
)
# An SSL 2.0 CLIENT-HELLO starts with a two-byte length whose high bit is set, then
# msg_type 1 (RFC 6101 Appendix E.2).
_SSL2_CLIENT_HELLO = 1


def check_record_header(header: bytes, *, first: bool) -> None:
    """Judge a record header (RFC 8446 §5.1) as soon as its five bytes are in, before
    waiting for the body its length announces: bytes that are no TLS record are answered at
    once instead of holding the connection until a timeout. ``first``: the first record of
    the stream, where an SSL 2.0 ClientHello is told apart (RFC 8446 Appendix D.5: it
    cannot negotiate TLS 1.3; protocol_version, as for any older client)."""
    if first and header[0] & 0x80 and header[2] == _SSL2_CLIENT_HELLO:
        raise ProtocolVersionError("SSL 2.0 ClientHello")
    if header[1] != 0x03:
        raise DecodeError(f"record version {header[1]:02x}{header[2]:02x} is not TLS")
    # RFC 8446 §5: an unexpected record type is unexpected_message.
    if header[0] not in _OUTER_TYPES:
        raise UnexpectedMessage(f"record of unknown content type {header[0]}")


class RecordProtection:
    """AEAD protection of one direction of a connection under one traffic key (§5.2-§5.4)."""

    __slots__ = ("_aead", "_iv", "sequence", "tag_length")

    def __init__(self, aead: Aead, iv: bytes) -> None:
        self._aead = aead
        self._iv = int.from_bytes(iv, "big")
        self.tag_length = aead.tag_length
        self.sequence = 0

    def _nonce(self) -> bytes:
        # RFC 8446 §5.3: the 64-bit sequence number, left-padded to iv_length, XOR the IV.
        if self.sequence >= MAX_SEQUENCE:
            raise StateError("record sequence number exhausted; a KeyUpdate is needed")
        nonce = (self._iv ^ self.sequence).to_bytes(12, "big")
        self.sequence += 1
        return nonce

    def seal(self, content_type: int, plaintext: bytes, padding: int = 0) -> bytes:
        """One TLSCiphertext record carrying ``plaintext`` of ``content_type``."""
        inner = plaintext + bytes((content_type,)) + bytes(padding)
        length = len(inner) + self.tag_length
        if length > MAX_CIPHERTEXT:
            raise StateError("record too long")
        header = _PROTECTED_HEADER_START + length.to_bytes(2, "big")
        return header + self._aead.seal(self._nonce(), inner, header)

    def open(self, header: bytes, body: bytes) -> tuple[int, bytes]:
        """(content_type, content) of a TLSCiphertext record; `BadRecordMac` when it does
        not authenticate (§5.2), `UnexpectedMessage` when it is all padding (§5.4)."""
        inner = self._aead.open(self._nonce(), body, header)
        if inner is None:
            raise BadRecordMac("record does not authenticate")
        # RFC 8446 §5.4: the content type is the last non-zero byte.
        end = len(inner.rstrip(b"\x00"))
        if end == 0:
            raise UnexpectedMessage("TLSInnerPlaintext without a content type")
        return inner[end - 1], inner[: end - 1]


@frozen
class Record:
    """A record's content type and its (decrypted) content."""

    content_type: int
    fragment: bytes


class StreamRecordLayer:
    """Records in and out of a byte stream for one connection.

    ``feed`` buffers received bytes; ``next_record`` returns the next whole record,
    decrypted once read protection is installed, or None when more bytes are needed.
    ``encode`` frames outgoing content into records no larger than the peer accepts.
    """

    def __init__(self) -> None:
        self._buffer = bytearray()
        self.read: RecordProtection | None = None
        self.write: RecordProtection | None = None
        # RFC 8446 §5: a ChangeCipherSpec of the single byte 0x01 is dropped between the first
        # ClientHello and the peer's Finished; outside that window it is unexpected.
        self.ccs_allowed = True
        # RFC 8449: the largest TLSInnerPlaintext we accept and the largest we may send
        # (both include the content type byte in TLS 1.3, §4).
        self.receive_limit = MAX_PLAINTEXT + 1
        self.send_limit = MAX_PLAINTEXT + 1
        # RFC 8446 §4.2.10: while not None, the bytes of 0-RTT records (which we never
        # accept) still to skip: application_data records before any read key, records that
        # do not decrypt after it. The first record that decrypts ends the skipping.
        self.early_data_skip: int | None = None
        self._first = True  # no record header has been read yet

    def feed(self, data: bytes) -> None:
        self._buffer += data

    @property
    def buffered(self) -> int:
        return len(self._buffer)

    def discard(self) -> None:
        """Forget buffered bytes (after the peer's close_notify, RFC 8446 §6.1)."""
        self._buffer.clear()

    def next_record(self) -> Record | None:
        """The next record, or None if it has not fully arrived."""
        while True:
            if len(self._buffer) < RECORD_HEADER_LENGTH:
                return None
            header = bytes(self._buffer[:RECORD_HEADER_LENGTH])
            check_record_header(header, first=self._first)
            self._first = False
            length = (header[3] << 8) | header[4]
            # RFC 8446 §5.2: "The length MUST NOT exceed 2^14 + 256 bytes. An endpoint that
            # receives a record that exceeds this length MUST terminate the connection with a
            # record_overflow alert."
            if length > MAX_CIPHERTEXT:
                raise RecordOverflow(f"record of {length} bytes")
            if len(self._buffer) < RECORD_HEADER_LENGTH + length:
                return None
            body = bytes(self._buffer[RECORD_HEADER_LENGTH : RECORD_HEADER_LENGTH + length])
            del self._buffer[: RECORD_HEADER_LENGTH + length]
            record = self._unprotect(header, body)
            if record is not None:
                return record

    def _unprotect(self, header: bytes, body: bytes) -> Record | None:
        content_type = header[0]
        if content_type == ContentType.CHANGE_CIPHER_SPEC:
            # RFC 8446 §5: the compatibility record is dropped; any other is fatal.
            if body == _CCS_BODY and self.ccs_allowed:
                return None
            raise UnexpectedMessage("unexpected change_cipher_spec record")
        if self.read is None:
            if content_type == ContentType.APPLICATION_DATA:
                if self._skip_early_data(len(body)):
                    return None
                raise UnexpectedMessage("application data before the handshake keys")
            return self._check_plaintext(Record(content_type, body))
        if content_type == ContentType.ALERT and _is_fatal_alert(body):
            # A peer that failed the handshake after the keys changed (e.g. OpenSSL's client
            # refusing our certificate: "unknown ca") may send its fatal alert unprotected.
            # The connection ends either way; reported as the alert it is, not as a record
            # error. close_notify stays refused: unprotected, anyone could forge a clean end.
            return Record(content_type, body)
        if content_type != ContentType.APPLICATION_DATA:
            # RFC 8446 §5.2: once protected, every record has opaque_type application_data.
            raise UnexpectedMessage(f"unprotected record of type {content_type} after keys")
        if len(body) > MAX_CIPHERTEXT:
            raise RecordOverflow("ciphertext too long")
        # RFC 8449 §4: the TLSInnerPlaintext (content, type byte and padding) must fit the
        # limit we advertised (2^14 + 1 when none was negotiated, RFC 8446 §5.2).
        if len(body) - self.read.tag_length > self.receive_limit:
            raise RecordOverflow(f"record of {len(body)} bytes over our record_size_limit")
        sequence = self.read.sequence
        try:
            inner_type, content = self.read.open(header, body)
        except BadRecordMac:
            if not self._skip_early_data(len(body)):
                raise
            self.read.sequence = sequence  # a skipped record does not count (§5.3)
            return None
        self.early_data_skip = None
        return self._check_plaintext(Record(inner_type, content))

    def _skip_early_data(self, length: int) -> bool:
        """True when a record of ``length`` bytes is skipped as rejected early data;
        beyond the limit it is unexpected_message (RFC 8446 §4.2.10)."""
        if self.early_data_skip is None:
            return False
        if length > self.early_data_skip:
            raise UnexpectedMessage("more early data than max_early_data_skip")
        self.early_data_skip -= length
        return True

    def _check_plaintext(self, record: Record) -> Record:
        if len(record.fragment) > MAX_PLAINTEXT:
            raise RecordOverflow(f"plaintext of {len(record.fragment)} bytes")
        # RFC 8446 §5.1: zero-length fragments of handshake and alert are not allowed.
        if not record.fragment and record.content_type in (
            ContentType.HANDSHAKE,
            ContentType.ALERT,
        ):
            raise UnexpectedMessage("zero-length handshake or alert fragment")
        if record.content_type not in _KNOWN_TYPES:
            raise UnexpectedMessage(f"unknown record content type {record.content_type}")
        return record

    def encode(self, content_type: int, data: bytes, *, initial: bool = False) -> bytes:
        """``data`` framed into records (protected when write keys are installed)."""
        if self.write is None:
            version = b"\x03\x01" if initial else _LEGACY_VERSION_BYTES
            step = MAX_PLAINTEXT
            if 0 < len(data) <= step:
                # One record, the usual case (every handshake message of ours).
                return bytes((content_type,)) + version + len(data).to_bytes(2, "big") + data
            out = bytearray()
            for i in range(0, max(len(data), 1), step):
                chunk = data[i : i + step]
                out += bytes((content_type,)) + version + len(chunk).to_bytes(2, "big") + chunk
            return bytes(out)
        # RFC 8449 §4: the limit counts the content type byte of TLSInnerPlaintext.
        step = min(MAX_PLAINTEXT, self.send_limit - 1)
        if len(data) <= step:
            return self.write.seal(content_type, data)
        out = bytearray()
        for i in range(0, len(data), step):
            out += self.write.seal(content_type, data[i : i + step])
        return bytes(out)

    def change_cipher_spec(self) -> bytes:
        """The middlebox-compatibility ChangeCipherSpec record (RFC 8446 Appendix D.4)."""
        return bytes((ContentType.CHANGE_CIPHER_SPEC,)) + _LEGACY_VERSION_BYTES + b"\x00\x01\x01"


_KNOWN_TYPES = frozenset({ContentType.ALERT, ContentType.HANDSHAKE, ContentType.APPLICATION_DATA})


class HandshakeReassembler:
    """Whole handshake messages out of handshake record contents (RFC 8446 §5.1: messages
    may be coalesced into one record or fragmented across several)."""

    def __init__(self) -> None:
        self._buffer = bytearray()

    @property
    def pending(self) -> bool:
        """True while part of a message is buffered (keys must not change then, §5.1)."""
        return bool(self._buffer)

    def feed(self, fragment: bytes) -> None:
        self._buffer += fragment

    def next_message(self) -> tuple[int, bytes, bytes] | None:
        """(msg_type, body, the whole message as received) or None."""
        if len(self._buffer) < 4:
            return None
        length = int.from_bytes(self._buffer[1:4], "big")
        if length > MAX_HANDSHAKE_MESSAGE:
            # Over our limit: decode_error, as the stateless gate answers a ClientHello
            # over its own.
            raise DecodeError(f"handshake message of {length} bytes over our limit")
        if len(self._buffer) < 4 + length:
            return None
        raw = bytes(self._buffer[: 4 + length])
        del self._buffer[: 4 + length]
        return raw[0], raw[4:], raw


def _is_fatal_alert(body: bytes) -> bool:
    """A well-formed alert (RFC 8446 §6) that ends the connection: not close_notify or
    user_canceled."""
    return len(body) == 2 and body[1] not in (
        AlertDescription.close_notify,
        AlertDescription.user_canceled,
    )
