"""DTLS 1.2 record protection: epochs, AEAD nonces, the anti-replay window.

- Each epoch has its own keys and its own sequence numbers (RFC 6347 §4.1). Epoch 0 is
  plaintext; the epoch after a ChangeCipherSpec is protected with the negotiated AEAD.
- AES-GCM / AES-CCM (RFC 5288 §3, RFC 6655 §3): nonce = 4-byte implicit salt || 8-byte
  explicit nonce, the explicit nonce (we use epoch || sequence_number) sent in the record.
- ChaCha20-Poly1305 (RFC 7905 §2): nonce = 12-byte IV XOR (epoch || sequence_number), left
  padded with zeros; nothing explicit in the record.
- AAD (RFC 6347 §4.1.2.1 with RFC 5246 §6.2.3.3): epoch || sequence_number || type ||
  version || plaintext length.
- A record that fails authentication, belongs to an unknown epoch or is a replay is dropped
  silently (RFC 6347 §4.1.2.1, §4.1.2.7): ``open`` returns None and never raises.
"""

from __future__ import annotations

import struct

from cryptography.exceptions import InvalidTag

from dtlsgate.crypto.aead import AeadPrimitive
from dtlsgate.crypto.suites import SuiteInfo
from dtlsgate.errors import StateError, UsageError
from dtlsgate.wire.enums import ContentType, ProtocolVersion
from dtlsgate.wire.record import (
    DTLS_RECORD_HEADER_LENGTH,
    MAX_PLAINTEXT_LENGTH,
    DtlsRecord,
)

# RFC 6347 §4.1.2.6: "A window size of 64 is preferred and SHOULD be employed".
REPLAY_WINDOW_SIZE = 64
_WINDOW_BITS = (1 << REPLAY_WINDOW_SIZE) - 1
# RFC 6347 §4.1: sequence numbers are 48 bits; a sender must not wrap them.
MAX_SEQUENCE_NUMBER = (1 << 48) - 1
# type, version, epoch || sequence_number (64 bits), length: the DTLSPlaintext header of
# RFC 6347 §4.1 in one pack (``_RECORD_HEADER``). A record's header and a protected one's
# AAD (RFC 6347 §4.1.2.1: epoch || sequence_number, type, version, plaintext length) take
# the type and version as their 3 wire bytes, which are the same for every record of one
# content type: packed once (``_APPLICATION_DATA``, ``_HANDSHAKE``), they make the
# per-record paths read no enum. GCM and CCM put their explicit nonce after the header,
# and their nonce is the 4-byte salt || it.
_TYPE_AND_VERSION = struct.Struct(">BH")
_RECORD_HEADER = struct.Struct(">3sQH")
_PROTECTED_HEADER_EXPLICIT = struct.Struct(">3sQHQ")
_AAD = struct.Struct(">Q3sH")
_EXPLICIT_NONCE = struct.Struct(">4sQ")
# What follows the type and version in a record's header: epoch || sequence_number, length.
_NUMBER_AND_LENGTH = struct.Struct(">3xQH")
_APPLICATION_DATA = _TYPE_AND_VERSION.pack(ContentType.APPLICATION_DATA, ProtocolVersion.DTLS12)
# The same for the two record types a flight is made of, written by `RecordLayer.write_handshake`
# and `write_change_cipher_spec` straight into the flight's datagram.
_HANDSHAKE = _TYPE_AND_VERSION.pack(ContentType.HANDSHAKE, ProtocolVersion.DTLS12)
_CHANGE_CIPHER_SPEC = _TYPE_AND_VERSION.pack(ContentType.CHANGE_CIPHER_SPEC, ProtocolVersion.DTLS12)


class ReplayWindow:
    """The sliding window of RFC 6347 §4.1.2.6: the highest sequence number seen and a
    64-bit mask of which of the 64 numbers below it were seen. Only records that
    authenticated are marked (``accept``), so forged records cannot move the window."""

    __slots__ = ("_mask", "highest")

    def __init__(self, seen: int = -1) -> None:
        # ``seen``: a record already processed when the window is made (-1: none), which
        # is then the highest and the only one marked, as ``accept(seen)`` would leave it.
        # ``highest``: the highest sequence number marked (-1: none); read by DTLS 1.3,
        # whose sequence numbers are reconstructed from it (RFC 9147 §4.2.2).
        self.highest = seen
        self._mask = 1 if seen >= 0 else 0

    def is_replay(self, seq: int) -> bool:
        if seq > self.highest:
            return False
        offset = self.highest - seq
        if offset >= REPLAY_WINDOW_SIZE:
            return True  # too old to tell: treated as a replay
        return bool(self._mask >> offset & 1)

    def accept(self, seq: int) -> bool:
        """Mark ``seq`` seen, for a record that authenticated: False when ``seq`` is a
        replay (nothing changes), else True and ``seq`` is marked (``is_replay`` in one)."""
        highest = self.highest
        if seq > highest:
            shift = seq - highest
            # A jump of a whole window or more forgets everything below: shifting the mask
            # by up to 2^48 bits would allocate terabytes (a MemoryError).
            if shift >= REPLAY_WINDOW_SIZE:
                self._mask = 1
            else:
                self._mask = ((self._mask << shift) | 1) & _WINDOW_BITS
            self.highest = seq
            return True
        offset = highest - seq
        if offset >= REPLAY_WINDOW_SIZE or self._mask >> offset & 1:
            return False
        self._mask |= 1 << offset
        return True


class CipherState:
    """One direction's AEAD keys for one epoch, with what every record needs precomputed:
    the keyed ``cryptography`` object (``primitive``: the provider's ``aead_primitive``,
    no `Aead` made around it), and the 4-byte salt (GCM, CCM) or the 12-byte IV as an
    integer (ChaCha20-Poly1305). A connection holds two for its lifetime: nothing else
    (the suite) is kept."""

    __slots__ = ("_iv_int", "_primitive", "explicit", "iv", "overhead")

    def __init__(self, suite: SuiteInfo, primitive: AeadPrimitive, iv: bytes) -> None:
        self._primitive = primitive
        self.iv = iv
        self.explicit = suite.record_iv_length
        # What protection adds to a record's content: the explicit nonce and the tag.
        self.overhead = self.explicit + suite.tag_length
        # Only ChaCha20-Poly1305 XORs the record number into the IV (RFC 7905 §2).
        self._iv_int = 0 if self.explicit else int.from_bytes(iv, "big")

    def seal_record(self, type_and_version: bytes, epoch_and_seq: int, data: bytes) -> bytes:
        """The whole protected record: header, explicit nonce (GCM, CCM), ciphertext, tag.
        ``type_and_version``: the header's first 3 bytes."""
        aad = _AAD.pack(epoch_and_seq, type_and_version, len(data))
        if self.explicit:
            # The explicit nonce is epoch || sequence_number, as in the header.
            sealed = self._primitive.encrypt(
                _EXPLICIT_NONCE.pack(self.iv, epoch_and_seq), data, aad
            )
            return (
                _PROTECTED_HEADER_EXPLICIT.pack(
                    type_and_version, epoch_and_seq, len(sealed) + 8, epoch_and_seq
                )
                + sealed
            )
        nonce = (self._iv_int ^ epoch_and_seq).to_bytes(12, "big")
        sealed = self._primitive.encrypt(nonce, data, aad)
        return _RECORD_HEADER.pack(type_and_version, epoch_and_seq, len(sealed)) + sealed

    def open_fragment(
        self, type_and_version: bytes, epoch_and_seq: int, record: bytes, start: int
    ) -> bytes | None:
        """The plaintext of the protected fragment ``record[start:]`` (its header's first 3
        bytes ``type_and_version``), or None when it does not authenticate."""
        plain_length = len(record) - start - self.overhead
        if plain_length < 0:
            return None
        aad = _AAD.pack(epoch_and_seq, type_and_version, plain_length)
        explicit = self.explicit
        if explicit:
            nonce = self.iv + record[start : start + explicit]
            start += explicit
        else:
            nonce = (self._iv_int ^ epoch_and_seq).to_bytes(12, "big")
        try:
            return self._primitive.decrypt(nonce, record[start:], aad)
        except InvalidTag:
            return None


class _ReadEpoch(ReplayWindow):
    """What an epoch's records are read with: its keys (None for epoch 0) and its replay
    window, one object per epoch (a connection holds two for its lifetime)."""

    __slots__ = ("cipher",)

    def __init__(self, cipher: CipherState | None, seen: int = -1) -> None:
        ReplayWindow.__init__(self, seen)
        self.cipher = cipher


class RecordLayer:
    """Protects outgoing records and opens incoming ones for one DTLS 1.2 connection.

    Per-epoch state is kept in lists indexed by epoch (a DTLS 1.2 connection without
    renegotiation has epochs 0 and 1 only): a connection holds its record layer for its
    lifetime, and three small lists cost a third of three dicts."""

    __slots__ = (
        "_fast_epoch",
        "_fast_state",
        "_read",
        "_write_cipher",
        "_write_seq",
        "write_epoch",
    )

    def __init__(self, first_write_sequence: int = 0, seen_plaintext: int = -1) -> None:
        """``first_write_sequence``: epoch 0's first record number to send. ``seen_plaintext``
        (-1: none): an epoch-0 record processed before this layer was made (a server's: the
        ClientHello the gate admitted), counted as seen from the start, so that a copy of it
        is dropped as a replay."""
        self.write_epoch = 0
        # Made with room for epochs 0 and 1 (every epoch a connection has): installing
        # epoch 1's keys then fills a slot instead of growing three lists (which would
        # also leave each with room for 8).
        self._write_cipher: list[CipherState | None] = [None, None]
        self._write_seq: list[int] = [first_write_sequence, 0]
        self._read: list[_ReadEpoch | None] = [_ReadEpoch(None, seen_plaintext), None]
        # The newest epoch with read keys, for open_application_data.
        self._fast_epoch = -1
        self._fast_state: _ReadEpoch | None = None

    # --- writing --------------------------------------------------------------------------

    def install_write(self, epoch: int, cipher: CipherState) -> None:
        if epoch >= len(self._write_cipher):
            missing = epoch + 1 - len(self._write_cipher)
            self._write_cipher += [None] * missing
            self._write_seq += [0] * missing
        self._write_cipher[epoch] = cipher

    def overhead(self, epoch: int) -> int:
        """Bytes a record of ``epoch`` adds around its content (header, nonce, tag)."""
        cipher = self._write_cipher[epoch]
        return DTLS_RECORD_HEADER_LENGTH + (cipher.overhead if cipher else 0)

    def next_write_sequence(self, epoch: int) -> int:
        """The sequence number the next record of ``epoch`` will carry."""
        return self._write_seq[epoch]

    def protect(self, content_type: int, data: bytes, epoch: int | None = None) -> bytes:
        """One record of ``content_type`` carrying ``data`` in ``epoch`` (default: the
        current write epoch), with the next sequence number of that epoch."""
        if epoch is None:
            epoch = self.write_epoch
        if not epoch and content_type == ContentType.APPLICATION_DATA:
            # Epoch 0 is TLS_NULL_WITH_NULL_NULL (RFC 5246 §6.1): no application data in
            # plaintext, as the DTLS 1.3 layer refuses it too.
            raise UsageError(f"content type {content_type} cannot be sent in plaintext")
        record: list[bytes] = []
        self._write(
            record, _TYPE_AND_VERSION.pack(content_type, ProtocolVersion.DTLS12), data, epoch
        )
        return b"".join(record)

    def write_handshake(self, datagram: list[bytes], message: bytes, epoch: int) -> int:
        """Append to ``datagram`` (the records of a datagram being filled, `pack_flight`) one
        handshake record of ``epoch`` carrying ``message`` (a whole message or a fragment,
        with its handshake header); its length. A flight's records are written where they
        are sent from, not made as records first."""
        return self._write(datagram, _HANDSHAKE, message, epoch)

    def write_change_cipher_spec(self, datagram: list[bytes], epoch: int) -> int:
        """Append to ``datagram`` the ChangeCipherSpec record (RFC 5246 §7.1) of ``epoch``;
        its length."""
        return self._write(datagram, _CHANGE_CIPHER_SPEC, b"\x01", epoch)

    def _write(self, out: list[bytes], type_and_version: bytes, data: bytes, epoch: int) -> int:
        """Append to ``out`` the record of ``data`` in ``epoch`` with that epoch's next
        sequence number (a plaintext record as its header and ``data``); its length.
        ``type_and_version``: the header's first 3 bytes."""
        try:
            seq = self._write_seq[epoch]
        except IndexError:  # an epoch never installed (free in 3.11 when not raised)
            raise StateError(f"no keys to write records of epoch {epoch} with") from None
        if seq > MAX_SEQUENCE_NUMBER:
            raise StateError("record sequence numbers exhausted; the connection must close")
        cipher = self._write_cipher[epoch]
        if cipher is None:
            if epoch:
                raise StateError(f"no keys to write records of epoch {epoch} with")
            if len(data) > 0xFFFF:
                raise UsageError("record body longer than 2^16 - 1 bytes")
            self._write_seq[epoch] = seq + 1
            out.append(_RECORD_HEADER.pack(type_and_version, (epoch << 48) | seq, len(data)))
            out.append(data)
            return DTLS_RECORD_HEADER_LENGTH + len(data)
        if len(data) > MAX_PLAINTEXT_LENGTH:
            raise UsageError("record content longer than 2^14 bytes")
        self._write_seq[epoch] = seq + 1
        record = cipher.seal_record(type_and_version, (epoch << 48) | seq, data)
        out.append(record)
        return len(record)

    def protect_application_data(self, data: bytes) -> bytes:
        """The per-record send path: `protect` for one application data record in the
        current write epoch, which has keys once the handshake is complete."""
        epoch = self.write_epoch
        cipher = self._write_cipher[epoch]
        if cipher is None:
            raise StateError("no keys to protect application data with")
        if len(data) > MAX_PLAINTEXT_LENGTH:
            raise UsageError(f"at most {MAX_PLAINTEXT_LENGTH} bytes per record")
        seq = self._write_seq[epoch]
        if seq > MAX_SEQUENCE_NUMBER:
            raise StateError("record sequence numbers exhausted; the connection must close")
        self._write_seq[epoch] = seq + 1
        return cipher.seal_record(_APPLICATION_DATA, (epoch << 48) | seq, data)

    # --- reading --------------------------------------------------------------------------

    def install_read(self, epoch: int, cipher: CipherState) -> None:
        if epoch >= len(self._read):
            self._read += [None] * (epoch + 1 - len(self._read))
        if self._read[epoch] is None:
            self._read[epoch] = state = _ReadEpoch(cipher)
            self._fast_epoch, self._fast_state = epoch, state

    def open_application_data(self, datagram: bytes) -> bytes | None:
        """The per-record hot path: when ``datagram`` is exactly one application data record
        of the newest read epoch that authenticates and is not a replay, its plaintext
        (the record is marked seen). None otherwise: the caller then takes the general path
        (``split_dtls_records`` and ``open``), which applies the same checks and drops."""
        state = self._fast_state
        if (
            state is None
            or len(datagram) < DTLS_RECORD_HEADER_LENGTH
            or not datagram.startswith(_APPLICATION_DATA)
        ):
            return None
        epoch_and_seq, length = _NUMBER_AND_LENGTH.unpack_from(datagram)
        if (
            epoch_and_seq >> 48 != self._fast_epoch
            or length != len(datagram) - DTLS_RECORD_HEADER_LENGTH
        ):
            return None
        # RFC 6347 §4.1.2.6: a replay is refused before its decryption, as `open` does (an
        # attacker's copies of recorded records cost no AEAD), and the window moves only
        # once the record authenticated.
        seq = epoch_and_seq & MAX_SEQUENCE_NUMBER
        if state.is_replay(seq):
            return None
        cipher = state.cipher
        assert cipher is not None  # an installed read epoch > 0 has keys
        data = cipher.open_fragment(
            _APPLICATION_DATA, epoch_and_seq, datagram, DTLS_RECORD_HEADER_LENGTH
        )
        if data is None or len(data) > MAX_PLAINTEXT_LENGTH:
            return None
        state.accept(seq)  # not a replay (checked above): marks it
        return data

    def _read_state(self, epoch: int) -> _ReadEpoch | None:
        return self._read[epoch] if epoch < len(self._read) else None

    def can_write(self, epoch: int) -> bool:
        """Whether keys to write records of ``epoch`` are installed (epoch 0: none needed)."""
        return epoch == 0 or (
            epoch < len(self._write_cipher) and self._write_cipher[epoch] is not None
        )

    def knows_epoch(self, epoch: int) -> bool:
        return self._read_state(epoch) is not None

    def open(self, record: DtlsRecord) -> bytes | None:
        """The record's content, or None when it must be dropped silently."""
        epoch = record.epoch
        state = self._read[epoch] if epoch < len(self._read) else None
        if state is None:
            return None
        seq = record.sequence_number
        if state.is_replay(seq):
            return None
        cipher = state.cipher
        if cipher is None:
            if len(record.fragment) > MAX_PLAINTEXT_LENGTH:
                return None
            # RFC 6347 §4.1.2.6: the window is updated only by records that authenticated.
            # Epoch 0 has no authentication: a forged plaintext record numbered 2^48 - 1
            # would push the window past every genuine record. Duplicated handshake
            # fragments are recognised by the reassembler instead.
            return record.fragment
        epoch_and_seq = (record.epoch << 48) | seq
        type_and_version = _TYPE_AND_VERSION.pack(record.content_type, record.version)
        data = cipher.open_fragment(type_and_version, epoch_and_seq, record.fragment, 0)
        if data is None or len(data) > MAX_PLAINTEXT_LENGTH:
            return None
        state.accept(seq)
        return data
