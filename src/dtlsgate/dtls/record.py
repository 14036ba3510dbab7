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
from dataclasses import dataclass, field

from dtlsgate.crypto.aead import Aead
from dtlsgate.crypto.suites import SuiteInfo
from dtlsgate.errors import StateError
from dtlsgate.wire.enums import ProtocolVersion
from dtlsgate.wire.record import (
    DTLS_RECORD_HEADER_LENGTH,
    MAX_PLAINTEXT_LENGTH,
    DtlsRecordHeader,
)

# RFC 6347 §4.1.2.6: "A window size of 64 is preferred and SHOULD be employed".
REPLAY_WINDOW_SIZE = 64
# RFC 6347 §4.1: sequence numbers are 48 bits; a sender must not wrap them.
MAX_SEQUENCE_NUMBER = (1 << 48) - 1
DTLS12 = ProtocolVersion.DTLS12


class ReplayWindow:
    """The sliding window of RFC 6347 §4.1.2.6: the highest sequence number seen and a
    64-bit mask of which of the 64 numbers below it were seen. Only records that
    authenticated are marked (``mark``), so forged records cannot move the window."""

    __slots__ = ("_highest", "_mask")

    def __init__(self) -> None:
        self._highest = -1
        self._mask = 0

    def is_replay(self, seq: int) -> bool:
        if seq > self._highest:
            return False
        offset = self._highest - seq
        if offset >= REPLAY_WINDOW_SIZE:
            return True  # too old to tell: treated as a replay
        return bool(self._mask >> offset & 1)

    def mark(self, seq: int) -> None:
        if seq > self._highest:
            shift = seq - self._highest
            self._mask = ((self._mask << shift) | 1) & ((1 << REPLAY_WINDOW_SIZE) - 1)
            self._highest = seq
        else:
            self._mask |= 1 << (self._highest - seq)


@dataclass(slots=True)
class CipherState:
    """One direction's AEAD keys for one epoch."""

    suite: SuiteInfo
    aead: Aead
    iv: bytes

    def nonce(self, epoch_and_seq: bytes) -> bytes:
        if self.suite.record_iv_length:
            return self.iv + epoch_and_seq
        padded = bytes(4) + epoch_and_seq
        return bytes(a ^ b for a, b in zip(self.iv, padded, strict=True))

    @property
    def overhead(self) -> int:
        return self.suite.record_iv_length + self.suite.tag_length


@dataclass(slots=True)
class _ReadEpoch:
    cipher: CipherState | None
    window: ReplayWindow = field(default_factory=ReplayWindow)


@dataclass(frozen=True, slots=True)
class Plaintext:
    """A record that passed every check: its type, epoch and decrypted content."""

    content_type: int
    epoch: int
    sequence_number: int
    data: bytes


class RecordLayer:
    """Protects outgoing records and opens incoming ones for one DTLS 1.2 connection."""

    def __init__(self, *, first_write_sequence: int = 0) -> None:
        self.write_epoch = 0
        self._write_cipher: dict[int, CipherState | None] = {0: None}
        self._write_seq: dict[int, int] = {0: first_write_sequence}
        self._read: dict[int, _ReadEpoch] = {0: _ReadEpoch(None)}
        self.version = DTLS12

    # --- writing --------------------------------------------------------------------------

    def install_write(self, epoch: int, cipher: CipherState) -> None:
        self._write_cipher[epoch] = cipher
        self._write_seq.setdefault(epoch, 0)

    def overhead(self, epoch: int) -> int:
        """Bytes a record of ``epoch`` adds around its content (header, nonce, tag)."""
        cipher = self._write_cipher[epoch]
        return DTLS_RECORD_HEADER_LENGTH + (cipher.overhead if cipher else 0)

    def protect(self, content_type: int, data: bytes, epoch: int | None = None) -> bytes:
        """One record of ``content_type`` carrying ``data`` in ``epoch`` (default: the
        current write epoch), with the next sequence number of that epoch."""
        if epoch is None:
            epoch = self.write_epoch
        seq = self._write_seq[epoch]
        if seq > MAX_SEQUENCE_NUMBER:
            raise StateError("record sequence numbers exhausted; the connection must close")
        self._write_seq[epoch] = seq + 1
        cipher = self._write_cipher[epoch]
        if cipher is None:
            return _record(content_type, self.version, epoch, seq, data)
        epoch_and_seq = ((epoch << 48) | seq).to_bytes(8, "big")
        aad = epoch_and_seq + bytes((content_type,)) + _u16(self.version) + _u16(len(data))
        sealed = cipher.aead.seal(cipher.nonce(epoch_and_seq), data, aad)
        if cipher.suite.record_iv_length:
            sealed = epoch_and_seq + sealed
        return _record(content_type, self.version, epoch, seq, sealed)

    # --- reading --------------------------------------------------------------------------

    def install_read(self, epoch: int, cipher: CipherState) -> None:
        if epoch not in self._read:
            self._read[epoch] = _ReadEpoch(cipher)

    def knows_epoch(self, epoch: int) -> bool:
        return epoch in self._read

    def mark_seen(self, epoch: int, seq: int) -> None:
        """Mark a record that was processed elsewhere (the gate's ClientHello)."""
        self._read[epoch].window.mark(seq)

    def open(self, header: DtlsRecordHeader, fragment: bytes) -> Plaintext | None:
        """The record's content, or None when it must be dropped silently."""
        state = self._read.get(header.epoch)
        if state is None:
            return None
        seq = header.sequence_number
        if state.window.is_replay(seq):
            return None
        cipher = state.cipher
        if cipher is None:
            data = fragment
        else:
            data_or_none = self._decrypt(cipher, header, fragment)
            if data_or_none is None:
                return None
            data = data_or_none
        if len(data) > MAX_PLAINTEXT_LENGTH:
            return None
        state.window.mark(seq)
        return Plaintext(header.content_type, header.epoch, seq, data)

    def _decrypt(
        self, cipher: CipherState, header: DtlsRecordHeader, fragment: bytes
    ) -> bytes | None:
        explicit = cipher.suite.record_iv_length
        plain_length = len(fragment) - explicit - cipher.suite.tag_length
        if plain_length < 0:
            return None
        epoch_and_seq = ((header.epoch << 48) | header.sequence_number).to_bytes(8, "big")
        nonce_part = fragment[:explicit] if explicit else epoch_and_seq
        aad = (
            epoch_and_seq
            + bytes((header.content_type,))
            + _u16(header.version)
            + _u16(plain_length)
        )
        return cipher.aead.open(cipher.nonce(nonce_part), fragment[explicit:], aad)


def _u16(value: int) -> bytes:
    return value.to_bytes(2, "big")


# type, version, epoch || sequence_number (64 bits), length: the DTLSPlaintext header of
# RFC 6347 §4.1 in one pack (the hot path of every record sent).
_HEADER = struct.Struct(">BHQH")


def _record(content_type: int, version: int, epoch: int, seq: int, body: bytes) -> bytes:
    if len(body) > 0xFFFF:
        raise StateError("record body longer than 2^16 - 1 bytes")
    return _HEADER.pack(content_type, version, (epoch << 48) | seq, len(body)) + body
