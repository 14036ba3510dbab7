"""The DTLS 1.3 record layer (RFC 9147 §4), sans-I/O: records in and out of datagrams.

- DTLSPlaintext (§4, Figure 2): epoch 0 only, for the hellos, alerts and ACKs sent before
  keys; its 48-bit sequence number is explicit, and its legacy_record_version is ignored.
- DTLSCiphertext (§4, Figure 3): the unified header ``001CSLEE`` (C: a connection ID
  follows, S: 16-bit rather than 8-bit sequence number, L: a length follows, EE: the epoch's
  low two bits), then the encrypted DTLSInnerPlaintext (content, true type, zero padding).
  The AEAD's additional data is the header as sent but before record number encryption; its
  nonce is the write IV XOR the 64-bit epoch-local sequence number, without the epoch (§4,
  RFC 8446 §5.3).
- Record number encryption (§4.2.3): the header's sequence number bits are XORed with a
  mask made from the first 16 bytes of the ciphertext (`dtlsgate.crypto.record_number`);
  a shorter ciphertext is invalid, so short records are padded on the way out.
- The full epoch and sequence number are reconstructed from the low bits (§4.2.2): the
  newest read epoch with matching low bits, and the sequence number closest to one plus the
  highest deprotected in that epoch.
- Per-epoch keys from the traffic secrets, as TLS 1.3 derives them (RFC 8446 §7.3) with the
  "dtls13" label prefix (§5.9), and the record number key ``sn_key`` (§4.2.3). Epochs
  (§6.1): 0 plaintext, 1 early data (never used here), 2 handshake, 3 application data,
  +1 per KeyUpdate.
- A sliding anti-replay window per epoch (§4.5.1), moved only by records that deprotected.
- Several records per datagram (§4.3); a record without a length runs to the datagram's end.
- Connection IDs (§9): the peer's in the records we send; any of ours (a small bounded set,
  all of one length: the one negotiated and those issued in NewConnectionId messages, until
  retired) in the records we receive.
- Invalid records are dropped silently (§4.5.2) and counted by reason; failed
  authentications are also counted per epoch, for the AEAD limits of §4.5.3. Nothing a
  peer sends makes ``receive`` raise.
"""

from __future__ import annotations

import enum
import struct
from collections import Counter
from collections.abc import Callable, Iterator
from functools import partial
from typing import NamedTuple, cast

from cryptography.exceptions import InvalidTag

from dtlsgate.crypto.aead import NONCE_LENGTH, AeadAlgorithm, AeadPrimitive
from dtlsgate.crypto.keyschedule import KeySchedule
from dtlsgate.crypto.provider import CryptoProvider, DefaultProvider
from dtlsgate.crypto.record_number import SAMPLE_LENGTH, RecordNumberCipher
from dtlsgate.crypto.suites import SuiteInfo
from dtlsgate.errors import StateError, UsageError
from dtlsgate.record.dtls12 import ReplayWindow
from dtlsgate.wire.enums import ContentType, ProtocolVersion

__all__ = [
    "EPOCH_APPLICATION",
    "EPOCH_EARLY_DATA",
    "EPOCH_HANDSHAKE",
    "EPOCH_PLAINTEXT",
    "MAX_READ_CONNECTION_IDS",
    "Dtls13Record",
    "Dtls13RecordLayer",
    "EpochKeys",
    "RecordDrop",
    "connection_id_of",
    "next_traffic_secret",
    "reconstruct_sequence_number",
]

# RFC 9147 §6.1: the epochs of a connection.
EPOCH_PLAINTEXT = 0
EPOCH_EARLY_DATA = 1
EPOCH_HANDSHAKE = 2
EPOCH_APPLICATION = 3
# RFC 9147 §4.2.1: the epoch must not wrap; it is a 64-bit counter (§4).
MAX_EPOCH = (1 << 64) - 1
# RFC 8446 §5.3 / RFC 9147 §4.2.1: a sequence number must not wrap (64 bits; rekey or
# abandon first). Plaintext records carry 48 bits (RFC 9147 §4).
MAX_SEQUENCE_NUMBER = (1 << 64) - 1
MAX_PLAINTEXT_SEQUENCE_NUMBER = (1 << 48) - 1
# RFC 8446 §5.1 / §5.2: content at most 2^14 bytes, encrypted_record at most 2^14 + 256.
MAX_PLAINTEXT = 1 << 14
MAX_CIPHERTEXT = MAX_PLAINTEXT + 256
# Read epochs kept with keys at once (the current one and those before it, for records
# reordered across a key change, §4.2.1). Four consecutive epochs differ in their low two
# bits, so the header's epoch bits always name one of them (§4.2.2).
MAX_READ_EPOCHS = 4
# RFC 9147 §9: our CIDs accepted at once (the negotiated one and those issued since in
# NewConnectionId messages, until retired). RFC 9147 sets no number; eight let a peer hold
# a few spares for new paths and keep the set a router must know per association small.
MAX_READ_CONNECTION_IDS = 8
# Write epochs kept (retransmissions use the epoch of the original transmission, §4.2.1).
MAX_WRITE_EPOCHS = 4
# RFC 9147 §4: DTLSPlaintext is type, legacy_record_version, epoch, 48-bit sequence
# number, length; {254, 253} is sent (§4, legacy_record_version).
PLAINTEXT_HEADER_LENGTH = 13
LEGACY_RECORD_VERSION = ProtocolVersion.DTLS12
# RFC 9147 §4, Figure 3: the unified header's first byte.
_FIXED_BITS_MASK = 0xE0
_FIXED_BITS = 0x20
_CID_BIT = 0x10
_SEQ16_BIT = 0x08
_LENGTH_BIT = 0x04
_EPOCH_BITS = 0x03
# RFC 9147 §4.1: the DTLSPlaintext content types; anything else that is not 001xxxxx is
# rejected. Inside DTLSCiphertext: alert, handshake, application data and ACK (heartbeat is
# not supported).
_PLAINTEXT_TYPES = frozenset({ContentType.ALERT, ContentType.HANDSHAKE, ContentType.ACK})
_INNER_TYPES = _PLAINTEXT_TYPES | {ContentType.APPLICATION_DATA}
# The type byte that ends the DTLSInnerPlaintext of every application data record (RFC 8446
# §5.2), made once: the per-record send path reads no enum.
_APPLICATION_DATA_INNER_TYPE = bytes((ContentType.APPLICATION_DATA,))
# Each inner content type's byte, made once (every protected record ends with one).
_INNER_TYPE_BYTES: dict[int, bytes] = {t: bytes((t,)) for t in _INNER_TYPES}
# The unified header's sequence number field by its length in bytes (RFC 9147 §4: 8 or 16
# bits), and its length field: each read or written, and the record number mask's first
# bytes read, in one call.
_SEQUENCE_FORMS = {1: struct.Struct(">B"), 2: struct.Struct(">H")}
# A DTLSCiphertext header whole, in one pack: its start (the first byte and the CID, as
# bytes), the sequence number field, and the length field when it has one. One per start
# length, sequence length and length flag, made when first needed; at most 2 x 2 x 256
# (a CID is at most 255 bytes, RFC 9146 §3), so the memo is bounded whoever chose the CID.
_HEADER_FORMS: dict[tuple[int, int, bool], struct.Struct] = {}
_LENGTH_FORM = struct.Struct(">H")


def _header_form(start_length: int, sequence_length: int, with_length: bool) -> struct.Struct:
    key = (start_length, sequence_length, with_length)
    form = _HEADER_FORMS.get(key)
    if form is None:
        sequence = "H" if sequence_length == 2 else "B"
        form = _HEADER_FORMS[key] = struct.Struct(
            f">{start_length}s{sequence}{'H' if with_length else ''}"
        )
    return form


# A write epoch's DTLSCiphertext header start (first byte and CID) and its header form.
_HeaderStart = tuple[bytes, struct.Struct]


class RecordDrop(enum.StrEnum):
    """Why a record (or the rest of a datagram) was dropped. Stable values, for tests."""

    MALFORMED = "malformed record header"
    NOT_A_RECORD = "first byte is neither a DTLSPlaintext type nor 001xxxxx"
    PLAINTEXT_EPOCH = "DTLSPlaintext record outside epoch 0"
    PLAINTEXT_REFUSED = "DTLSPlaintext record after plaintext was turned off"
    CONNECTION_ID = "connection ID missing, unexpected or not ours"
    UNKNOWN_EPOCH = "no read keys for the epoch"
    SHORT = "ciphertext shorter than the 16-byte record number sample"
    TOO_LONG = "record longer than the RFC 8446 limits"
    AUTHENTICATION = "record does not authenticate"
    REPLAY = "record already received or older than the window"
    INNER_TYPE = "no or unknown inner content type"
    EMPTY = "empty handshake or alert record"


class Dtls13Record(NamedTuple):
    """One record received: its full epoch and sequence number (RFC 9147 §4: together the
    RecordNumber an ACK names), the true content type, and the content. A named tuple
    (immutable), as DTLS 1.2's `DtlsRecord`: every record received is one, made from its
    fields without a Python-level ``__init__`` (``_as_record``)."""

    epoch: int
    sequence_number: int
    content_type: int
    fragment: bytes


# (epoch, sequence_number, content_type, fragment) -> Dtls13Record, in C.
_as_record = cast(
    Callable[[tuple[int, int, int, bytes]], Dtls13Record], partial(tuple.__new__, Dtls13Record)
)


def reconstruct_sequence_number(expected: int, low: int, bits: int) -> int:
    """RFC 9147 §4.2.2: the sequence number whose low ``bits`` bits are ``low`` that is
    numerically closest to ``expected`` (one plus the highest deprotected in the epoch).
    Equally close candidates resolve to the larger one; none is negative or above 2^64 - 1."""
    window = 1 << bits
    candidate = (expected & ~(window - 1)) | low
    # The candidates are candidate - window, candidate and candidate + window; the one in
    # the middle is within a window of ``expected`` on either side.
    distance = candidate - expected
    if candidate > MAX_SEQUENCE_NUMBER or (distance > window >> 1 and candidate >= window):
        return candidate - window
    if distance <= -(window >> 1) and candidate + window <= MAX_SEQUENCE_NUMBER:
        return candidate + window
    return candidate


def next_traffic_secret(suite: SuiteInfo, secret: bytes) -> bytes:
    """application_traffic_secret_N+1 after a KeyUpdate (RFC 8446 §7.2, with the DTLS
    label prefix); its keys protect the next epoch (RFC 9147 §6.1)."""
    return KeySchedule.for_suite(suite, dtls=True).next_traffic_secret(secret)


class EpochKeys:
    """One direction's protection in one epoch: the AEAD under write_key, the write_iv
    (RFC 8446 §7.3) and the record number cipher under sn_key (RFC 9147 §4.2.3).

    The AEAD is the keyed ``cryptography`` object alone (the provider's `aead_primitive`):
    this class builds each record's nonce itself and needs nothing else of an `Aead`."""

    __slots__ = ("_iv", "_primitive", "algorithm", "record_number", "tag_length")

    def __init__(
        self,
        algorithm: AeadAlgorithm,
        primitive: AeadPrimitive,
        iv: bytes,
        record_number: RecordNumberCipher,
    ) -> None:
        if len(iv) != NONCE_LENGTH:
            raise UsageError(f"write_iv must be {NONCE_LENGTH} bytes")
        self.algorithm = algorithm
        # The keyed ``cryptography`` object, called once per record with the nonce made here.
        self._primitive = primitive
        self._iv = int.from_bytes(iv, "big")
        self.record_number = record_number
        self.tag_length = algorithm.tag_length

    @classmethod
    def from_secret(
        cls, suite: SuiteInfo, secret: bytes, provider: CryptoProvider | None = None
    ) -> EpochKeys:
        """The keys of a traffic secret: key and iv as in RFC 8446 §7.3 and sn_key =
        HKDF-Expand-Label(secret, "sn", "", key_length), all with the "dtls13" prefix."""
        schedule = KeySchedule.for_suite(suite, dtls=True)
        key, iv, sn_key = schedule.record_keys(secret)
        primitive = (provider or DefaultProvider()).aead_primitive(suite.aead, key)
        return cls(suite.aead, primitive, iv, RecordNumberCipher(suite.aead, sn_key))

    def nonce(self, sequence_number: int) -> bytes:
        """RFC 8446 §5.3 with RFC 9147 §4: the 64-bit sequence number, left-padded to 12
        bytes, XOR the write IV; the epoch is not part of it."""
        return (self._iv ^ sequence_number).to_bytes(12, "big")

    def seal(self, sequence_number: int, inner: bytes, aad: bytes) -> bytes:
        """The ciphertext and tag of the record numbered ``sequence_number`` in the epoch."""
        nonce = (self._iv ^ sequence_number).to_bytes(12, "big")
        return self._primitive.encrypt(nonce, inner, aad)

    def open(self, sequence_number: int, ciphertext: bytes, aad: bytes) -> bytes | None:
        """The DTLSInnerPlaintext of the record numbered ``sequence_number``, or None when
        it does not authenticate."""
        nonce = (self._iv ^ sequence_number).to_bytes(12, "big")
        try:
            return self._primitive.decrypt(nonce, ciphertext, aad)
        except InvalidTag:
            return None


class _ReadEpoch(ReplayWindow):
    """A read epoch: its keys and its replay window (§4.5.1) in one object, whose
    ``highest``, the highest sequence number deprotected so far, is the window's own."""

    __slots__ = ("auth_failures", "epoch", "keys")

    def __init__(self, epoch: int, keys: EpochKeys) -> None:
        ReplayWindow.__init__(self)
        self.epoch = epoch
        self.keys = keys
        self.auth_failures = 0


class Dtls13RecordLayer:
    """Protects outgoing records and opens incoming datagrams for one DTLS 1.3 connection.

    ``protect`` makes one record (DTLSPlaintext in epoch 0, DTLSCiphertext otherwise);
    records are concatenated into a datagram by the caller, a record without a length last.
    ``receive`` returns the valid records of a datagram and drops the others, counting
    them in ``drops``. Keys come per epoch (`install_write`, `install_read`).
    ``first_write_sequence``: the sequence number of our first plaintext record (a server
    after a stateless HelloRetryRequest starts above the ones the gate used).
    """

    def __init__(
        self,
        first_write_sequence: int = 0,
        *,
        sequence_bits: int = 16,
        include_length: bool = True,
        write_connection_id: bytes = b"",
        read_connection_id: bytes = b"",
    ) -> None:
        if sequence_bits not in (8, 16):
            raise UsageError("DTLS 1.3 sequence numbers are sent in 8 or 16 bits")
        self._sequence_bits = sequence_bits
        self._sequence_length = sequence_bits // 8
        self._sequence_form = _SEQUENCE_FORMS[self._sequence_length]
        self._sequence_mask = (1 << sequence_bits) - 1
        self.include_length = include_length
        self.write_epoch = EPOCH_PLAINTEXT
        self._write: dict[int, EpochKeys | None] = {EPOCH_PLAINTEXT: None}
        self._write_sequence: dict[int, int] = {EPOCH_PLAINTEXT: first_write_sequence}
        # The unified header's first byte and our write CID, per write epoch with keys, with
        # the form that packs the whole header from them: without and with a length
        # (`_header`), the same for every record of the epoch.
        self._headers: dict[int, tuple[_HeaderStart, _HeaderStart]] = {}
        # RFC 9147 §9: the peer's connection ID goes into the records we send; one of ours
        # must be in every record we receive once negotiated (none: no CIDs). All of ours
        # have one length: the unified header does not carry it. Set as the setters of
        # `write_connection_id` and `read_connection_id` do, less what they redo: no epoch
        # has a header yet, and without CIDs of ours the fields above are already right.
        self._write_cid = write_connection_id
        self._read_cids: tuple[bytes, ...] = ()
        self._read_cid_set: frozenset[bytes] = frozenset()
        self._read_cid_length = 0
        if read_connection_id:
            self.read_connection_id = read_connection_id
        # Whether DTLSPlaintext records are still accepted (the connection turns this off
        # once plaintext has no business arriving).
        self.accept_plaintext = True
        self._read: dict[int, _ReadEpoch] = {}
        # RFC 9147 §4.2.2: a record names its epoch by the low two bits; the newest read
        # epoch with those bits (None: none), at the index of the bits, kept with ``_read``
        # (`_index_read`).
        self._read_by_bits: list[_ReadEpoch | None]
        self._index_read()
        # The records dropped, by reason (`drops`): made at the first drop or look, as most
        # connections never drop one (an empty Counter costs about 4,500 instructions).
        self._drops: Counter[RecordDrop] | None = None

    @property
    def drops(self) -> Counter[RecordDrop]:
        """The records dropped so far, by reason (RFC 9147 §4.5.2: silently, but counted)."""
        if self._drops is None:
            self._drops = Counter()
        return self._drops

    @property
    def sequence_bits(self) -> int:
        """8 or 16: the bits of the sequence number in the records we send."""
        return self._sequence_bits

    # --- connection IDs (RFC 9147 §9) -------------------------------------------------------

    @property
    def write_connection_id(self) -> bytes:
        """The peer's CID, in every protected record we send from now on (b"": none)."""
        return self._write_cid

    @write_connection_id.setter
    def write_connection_id(self, cid: bytes) -> None:
        self._write_cid = cid
        self._headers = {epoch: self._header(epoch) for epoch in self._headers}

    @property
    def read_connection_id(self) -> bytes:
        """The oldest of our CIDs still accepted (b"": no CIDs)."""
        return self._read_cids[0] if self._read_cids else b""

    @read_connection_id.setter
    def read_connection_id(self, cid: bytes) -> None:
        """Accept ``cid`` alone from now on (b"": records carry no CID)."""
        self._set_read_cids((bytes(cid),) if cid else ())

    @property
    def read_connection_ids(self) -> tuple[bytes, ...]:
        """Every CID of ours a record may carry, oldest first (the same tuple object until
        they change, so a router can tell cheaply whether they did)."""
        return self._read_cids

    def accept_connection_id(self, cid: bytes) -> None:
        """Accept records carrying ``cid`` too (one we issued in a NewConnectionId): of the
        length of the CIDs already accepted, at most `MAX_READ_CONNECTION_IDS` in all."""
        cid = bytes(cid)
        if not self._read_cids:
            raise UsageError("no connection IDs were negotiated")
        if len(cid) != self._read_cid_length:
            raise UsageError(f"our connection IDs are {self._read_cid_length} bytes long")
        if cid in self._read_cid_set:
            raise UsageError("that connection ID is already in use")
        if len(self._read_cids) >= MAX_READ_CONNECTION_IDS:
            raise UsageError(f"at most {MAX_READ_CONNECTION_IDS} connection IDs at once")
        self._set_read_cids((*self._read_cids, cid))

    def retire_connection_id(self, cid: bytes) -> None:
        """Drop records carrying ``cid`` from now on; the last CID cannot go."""
        if cid not in self._read_cid_set:
            return
        if len(self._read_cids) == 1:
            raise UsageError("the last connection ID cannot be retired")
        self._set_read_cids(tuple(c for c in self._read_cids if c != cid))

    def _set_read_cids(self, cids: tuple[bytes, ...]) -> None:
        self._read_cids = cids
        self._read_cid_set = frozenset(cids)
        self._read_cid_length = len(cids[0]) if cids else 0

    # --- keys -------------------------------------------------------------------------------

    def install_write(self, epoch: int, keys: EpochKeys) -> None:
        """Send in ``epoch`` from now on, with ``keys``; its sequence numbers start at 0."""
        if not self.write_epoch < epoch <= MAX_EPOCH:
            raise UsageError(f"write epoch {epoch} does not follow {self.write_epoch}")
        self._write[epoch] = keys
        self._write_sequence[epoch] = 0
        self._headers[epoch] = self._header(epoch)
        self.write_epoch = epoch
        # Write epochs only go up, so the dict is in ascending order: the oldest is first.
        if len(self._write) > MAX_WRITE_EPOCHS:
            old = next(iter(self._write))
            del self._write[old], self._write_sequence[old]
            self._headers.pop(old, None)

    def _header(self, epoch: int) -> tuple[_HeaderStart, _HeaderStart]:
        """The start of a DTLSCiphertext of ``epoch`` up to its sequence number (RFC 9147
        §4): the first byte ``001CSLEE`` and our write CID, without a length (L clear) and
        with one, each with the form that packs the whole header."""
        cid = self._write_cid
        first = _FIXED_BITS | (epoch & _EPOCH_BITS)
        if cid:
            first |= _CID_BIT
        if self._sequence_bits == 16:
            first |= _SEQ16_BIT
        start_length = 1 + len(cid)
        return (
            (bytes((first,)) + cid, _header_form(start_length, self._sequence_length, False)),
            (
                bytes((first | _LENGTH_BIT,)) + cid,
                _header_form(start_length, self._sequence_length, True),
            ),
        )

    def install_read(self, epoch: int, keys: EpochKeys) -> None:
        """Accept records of ``epoch`` protected with ``keys``; the oldest read epoch goes
        when more than `MAX_READ_EPOCHS` would be kept."""
        if not EPOCH_PLAINTEXT < epoch <= MAX_EPOCH:
            raise UsageError(f"read epoch {epoch} out of range")
        if epoch in self._read:
            raise UsageError(f"read epoch {epoch} is already installed")
        read = self._read
        # At most MAX_READ_EPOCHS, the newest, in ascending order of epoch.
        if not read or epoch > next(reversed(read)):
            # The usual case, a newer epoch than any kept: added last, the order holds,
            # and the oldest goes when there are too many. Unless one goes, the new epoch
            # is the newest with its low bits and its slot of the index all that changes.
            state = read[epoch] = _ReadEpoch(epoch, keys)
            if len(read) <= MAX_READ_EPOCHS:
                self._read_by_bits[epoch & _EPOCH_BITS] = state
                return
            del read[next(iter(read))]
        else:
            read[epoch] = _ReadEpoch(epoch, keys)
            self._read = {e: read[e] for e in sorted(read)[-MAX_READ_EPOCHS:]}
        self._index_read()

    def discard_read(self, epoch: int) -> None:
        """Forget the keys of a read epoch (its records are dropped from now on)."""
        self._read.pop(epoch, None)
        self._index_read()

    def _index_read(self) -> None:
        """The read epochs by their low two bits (RFC 9147 §4.2.2), the newest for each:
        made when the epochs change (a few times per connection), so that a record's epoch
        is one look-up, not a walk over the epochs per record."""
        by_bits: list[_ReadEpoch | None] = [None] * (_EPOCH_BITS + 1)
        for epoch, state in self._read.items():  # ascending: a newer epoch replaces an older
            by_bits[epoch & _EPOCH_BITS] = state
        self._read_by_bits = by_bits

    @property
    def read_epochs(self) -> tuple[int, ...]:
        return tuple(sorted(self._read))

    def highest_sequence(self, epoch: int) -> int:
        """The highest sequence number deprotected in read ``epoch`` (-1: none)."""
        state = self._read.get(epoch)
        return state.highest if state is not None else -1

    def auth_failures(self, epoch: int) -> int:
        """Records of ``epoch`` that failed authentication (RFC 9147 §4.5.3 counts them)."""
        state = self._read.get(epoch)
        return state.auth_failures if state is not None else 0

    def overhead(self, epoch: int | None = None) -> int:
        """The bytes a record of ``epoch`` (default: the write epoch) adds to its content:
        the header, the inner content type and the AEAD tag (short records get more, as
        padding up to the record number sample)."""
        keys = self._write[self.write_epoch if epoch is None else epoch]
        if keys is None:
            return PLAINTEXT_HEADER_LENGTH
        header = 1 + len(self._write_cid) + self._sequence_length
        return header + (2 if self.include_length else 0) + 1 + keys.tag_length

    def next_write_sequence(self, epoch: int | None = None) -> int:
        """The sequence number the next record of ``epoch`` (default: the write epoch) gets."""
        return self._write_sequence[self.write_epoch if epoch is None else epoch]

    # --- writing ----------------------------------------------------------------------------

    def protect(
        self,
        content_type: int,
        data: bytes,
        epoch: int | None = None,
        padding: int = 0,
        include_length: bool | None = None,
    ) -> bytes:
        """One record of ``content_type`` carrying ``data`` in ``epoch`` (default: the
        write epoch) with that epoch's next sequence number. ``padding`` zero bytes are added
        inside the encryption (RFC 8446 §5.4); a record without a length
        (``include_length=False``) must be the last of its datagram (RFC 9147 §4). No
        keyword-only parameter: the flights call it by position for every handshake record,
        and a keyword-only parameter keeps the interpreter from specializing any call."""
        if epoch is None:
            epoch = self.write_epoch
        if epoch not in self._write:
            raise StateError(f"no keys to write records of epoch {epoch} with")
        if len(data) > MAX_PLAINTEXT:
            raise UsageError(f"record content of {len(data)} bytes is over 2^14")
        keys = self._write[epoch]
        sequence = self._write_sequence[epoch]
        if keys is None:
            record = self._plaintext(content_type, data, sequence)
        else:
            if content_type not in _INNER_TYPES:
                raise UsageError(f"content type {content_type} cannot be sent in DTLS 1.3")
            if padding < 0:
                raise UsageError("padding must be >= 0")
            # RFC 8446 §5.2: DTLSInnerPlaintext is the content, its type, zero padding.
            inner = data + _INNER_TYPE_BYTES[content_type]
            if padding:
                inner += bytes(padding)
            length = self.include_length if include_length is None else include_length
            record = self._ciphertext(keys, epoch, sequence, inner, length)
        self._write_sequence[epoch] = sequence + 1
        return record

    def protect_application_data(self, data: bytes) -> bytes:
        """The per-record send path: `protect` for one application data record in the
        write epoch, unpadded, in the layer's header form."""
        epoch = self.write_epoch
        keys = self._write[epoch]
        if keys is None:
            raise StateError("no keys to protect application data with")
        if len(data) > MAX_PLAINTEXT:
            raise UsageError(f"record content of {len(data)} bytes is over 2^14")
        sequence = self._write_sequence[epoch]
        record = self._ciphertext(
            keys, epoch, sequence, data + _APPLICATION_DATA_INNER_TYPE, self.include_length
        )
        self._write_sequence[epoch] = sequence + 1
        return record

    def _plaintext(self, content_type: int, data: bytes, sequence: int) -> bytes:
        if content_type not in _PLAINTEXT_TYPES:
            raise UsageError(f"content type {content_type} cannot be sent in plaintext")
        if sequence > MAX_PLAINTEXT_SEQUENCE_NUMBER:
            raise StateError("plaintext sequence numbers exhausted")
        return (
            bytes((content_type,))
            + LEGACY_RECORD_VERSION.to_bytes(2, "big")
            + (sequence & MAX_PLAINTEXT_SEQUENCE_NUMBER).to_bytes(8, "big")  # epoch 0
            + len(data).to_bytes(2, "big")
            + data
        )

    def _ciphertext(
        self,
        keys: EpochKeys,
        epoch: int,
        sequence: int,
        inner: bytes,
        include_length: bool,
    ) -> bytes:
        """The DTLSCiphertext record of the DTLSInnerPlaintext ``inner``."""
        if sequence > MAX_SEQUENCE_NUMBER:
            raise StateError("sequence numbers of this epoch exhausted: a KeyUpdate is needed")
        # RFC 9147 §4.2.3: senders pad short plaintexts so that the ciphertext holds the
        # 16-byte sample (only a tag shorter than 16 bytes, CCM-8, makes that necessary).
        short = SAMPLE_LENGTH - (len(inner) + keys.tag_length)
        if short > 0:
            inner += bytes(short)
        ciphertext_length = len(inner) + keys.tag_length
        if ciphertext_length > MAX_CIPHERTEXT:
            raise UsageError("record too long with its padding")
        start, form = self._headers[epoch][include_length]
        low = sequence & self._sequence_mask
        # RFC 9147 §4: the additional data is the header before record number encryption;
        # the record's header is the same with the sequence number masked (§4.2.3). Each
        # is one pack of the epoch's header form.
        aad = form.pack(start, low, ciphertext_length) if include_length else form.pack(start, low)
        ciphertext = keys.seal(sequence, inner, aad)
        mask = keys.record_number.mask(ciphertext[:SAMPLE_LENGTH])
        masked = low ^ self._sequence_form.unpack_from(mask)[0]
        if include_length:
            return form.pack(start, masked, ciphertext_length) + ciphertext
        return form.pack(start, masked) + ciphertext

    # --- reading ----------------------------------------------------------------------------

    def receive(self, datagram: bytes) -> list[Dtls13Record]:
        """The valid records of ``datagram``, in order; invalid ones are dropped (§4.5.2).
        When a record's framing cannot be read, the rest of the datagram goes with it."""
        return list(self.records(datagram))

    def open_application_data(self, datagram: bytes) -> bytes | Dtls13Record | bool:
        """The per-record hot path, for a datagram that is one DTLSCiphertext record of an
        application epoch (RFC 9147 §6.1: 3 and later) and nothing else (the usual datagram
        once the handshake is done), checked as `records` checks it, in the same order:

        - its content (bytes) when it is application data (the window marked);
        - the record itself (a `Dtls13Record`, the window marked) when it is of another
          content type (an ACK, a KeyUpdate), for the caller to take as one `records`
          yields: deprotected once;
        - True when it is dropped (counted in `drops` as `records` counts it);
        - False when the datagram is not one such record: nothing is counted or marked,
          and it is `records`'s."""
        end = len(datagram)
        if not end:
            return False
        first = datagram[0]
        state = self._read_by_bits[first & _EPOCH_BITS]
        if first & _FIXED_BITS_MASK != _FIXED_BITS or state is None:
            return False
        if state.epoch < EPOCH_APPLICATION:
            return False
        cursor = 1
        cid_length = self._read_cid_length
        if first & _CID_BIT:
            cid = bytes(datagram[1 : 1 + cid_length])  # hashable, whatever the datagram is
            if not cid_length or cid not in self._read_cid_set:
                return False
            cursor += cid_length
        elif cid_length:
            return False
        seq_at = cursor
        seq_length = 2 if first & _SEQ16_BIT else 1
        cursor += seq_length
        if first & _LENGTH_BIT:
            cursor += 2
            if cursor > end or _LENGTH_FORM.unpack_from(datagram, cursor - 2)[0] != end - cursor:
                return False
        if not SAMPLE_LENGTH <= end - cursor <= MAX_CIPHERTEXT:
            return False
        opened = self._unprotect(state, datagram, seq_at, seq_length, cursor, datagram[cursor:])
        if opened is None:
            return True
        sequence, inner = opened
        if not inner.endswith(_APPLICATION_DATA_INNER_TYPE):
            # Another content type, or padding (RFC 8446 §5.4): `_deprotected` finds the
            # type as `records` does.
            record = self._deprotected(state, sequence, inner)
            return True if record is None else record
        # Unpadded application data: the checks of `_deprotected` that apply to it.
        content_end = len(inner) - 1
        if content_end > MAX_PLAINTEXT:
            self._drop(RecordDrop.TOO_LONG)
            return True
        if not state.accept(sequence):  # §4.5.1: after deprotection, as `_deprotected`
            self._drop(RecordDrop.REPLAY)
            return True
        return inner[:content_end]

    def records(self, datagram: bytes) -> Iterator[Dtls13Record]:
        """`receive`, one record at a time: each record is opened only when asked for, so
        keys installed on account of one record (a ServerHello's) open the next ones of
        the same datagram."""
        data = bytes(datagram)
        pos, end = 0, len(data)
        while pos < end:
            first = data[pos]
            if first in _PLAINTEXT_TYPES:
                record, pos = self._receive_plaintext(data, pos)
            elif first & _FIXED_BITS_MASK == _FIXED_BITS:
                record, pos = self._receive_ciphertext(data, pos)
            else:
                # RFC 9147 §4.1: rejected as if it had failed deprotection.
                self.drops[RecordDrop.NOT_A_RECORD] += 1
                break
            if record is not None:
                yield record

    def _drop(self, reason: RecordDrop) -> None:
        self.drops[reason] += 1

    def _receive_plaintext(self, data: bytes, pos: int) -> tuple[Dtls13Record | None, int]:
        """The DTLSPlaintext record at ``pos`` and where the next record starts (the
        datagram's end when this one is not framed)."""
        end = len(data)
        if pos + PLAINTEXT_HEADER_LENGTH > end:
            self._drop(RecordDrop.MALFORMED)
            return None, end
        length = int.from_bytes(data[pos + 11 : pos + 13], "big")
        start = pos + PLAINTEXT_HEADER_LENGTH
        if start + length > end:
            self._drop(RecordDrop.MALFORMED)
            return None, end
        following = start + length
        # legacy_record_version is ignored for all purposes (RFC 9147 §4).
        epoch_and_seq = int.from_bytes(data[pos + 3 : pos + 11], "big")
        if epoch_and_seq >> 48 != EPOCH_PLAINTEXT:
            self._drop(RecordDrop.PLAINTEXT_EPOCH)
        elif not self.accept_plaintext:
            self._drop(RecordDrop.PLAINTEXT_REFUSED)
        elif length > MAX_PLAINTEXT:
            self._drop(RecordDrop.TOO_LONG)
        elif length == 0:
            # RFC 8446 §5.1: no zero-length handshake or alert fragments (nor empty ACKs).
            self._drop(RecordDrop.EMPTY)
        else:
            # Epoch 0 is unauthenticated: the replay window is left alone (a forged record
            # numbered 2^48 - 1 must not push genuine ones out); duplicated handshake
            # fragments are the reassembler's to recognise, as in DTLS 1.2.
            record = _as_record((EPOCH_PLAINTEXT, epoch_and_seq, data[pos], data[start:following]))
            return record, following
        return None, following

    def _receive_ciphertext(self, data: bytes, pos: int) -> tuple[Dtls13Record | None, int]:
        """The DTLSCiphertext record at ``pos`` (unified header, §4) and where the next
        record starts."""
        end = len(data)
        first = data[pos]
        cursor = pos + 1
        cid_length = self._read_cid_length
        if first & _CID_BIT:
            # Without a negotiated CID its length is unknown: nothing after it can be framed.
            # A CID not ours means the rest of the datagram is discarded (§4).
            if not cid_length or data[cursor : cursor + cid_length] not in self._read_cid_set:
                self._drop(RecordDrop.CONNECTION_ID)
                return None, end
            cursor += cid_length
        seq_length = 2 if first & _SEQ16_BIT else 1
        seq_at = cursor
        cursor += seq_length
        if first & _LENGTH_BIT:
            cursor += 2
            if cursor > end:
                self._drop(RecordDrop.MALFORMED)
                return None, end
            length = int.from_bytes(data[cursor - 2 : cursor], "big")
            if cursor + length > end:
                self._drop(RecordDrop.MALFORMED)
                return None, end
            following = cursor + length
        else:
            following = end
        if cursor > end:
            self._drop(RecordDrop.MALFORMED)
            return None, end
        if cid_length and not first & _CID_BIT:
            # RFC 9147 §9: once negotiated, the CID is in every record.
            self._drop(RecordDrop.CONNECTION_ID)
            return None, following
        header = data[pos:cursor]
        body = data[cursor:following]
        return self._open(first, header, seq_at - pos, seq_length, body), following

    def _open(
        self, first: int, header: bytes, seq_at: int, seq_length: int, body: bytes
    ) -> Dtls13Record | None:
        if len(body) < SAMPLE_LENGTH:
            self._drop(RecordDrop.SHORT)  # RFC 9147 §4.2.3
            return None
        if len(body) > MAX_CIPHERTEXT:
            self._drop(RecordDrop.TOO_LONG)  # RFC 8446 §5.2
            return None
        # RFC 9147 §4.2.2: the newest read epoch whose low two bits are the record's.
        state = self._read_by_bits[first & _EPOCH_BITS]
        if state is None:
            self._drop(RecordDrop.UNKNOWN_EPOCH)
            return None
        opened = self._unprotect(state, header, seq_at, seq_length, len(header), body)
        if opened is None:
            return None
        return self._deprotected(state, *opened)

    def _unprotect(
        self,
        state: _ReadEpoch,
        header: bytes,
        seq_at: int,
        seq_length: int,
        header_end: int,
        body: bytes,
    ) -> tuple[int, bytes] | None:
        """The full sequence number and the DTLSInnerPlaintext of the record whose unified
        header is ``header[:header_end]`` (its sequence number field at ``seq_at``) and
        whose ciphertext is ``body``, in ``state``'s epoch; None when it does not
        authenticate (counted). Both read paths (`records`, `open_application_data`)."""
        keys = state.keys
        # RFC 9147 §4.2.3: the sequence number field is masked with the record number
        # key's encryption of the ciphertext's first 16 bytes.
        mask = keys.record_number.mask(body[:SAMPLE_LENGTH])
        form = _SEQUENCE_FORMS[seq_length]
        low = form.unpack_from(header, seq_at)[0] ^ form.unpack_from(mask)[0]
        sequence = reconstruct_sequence_number(state.highest + 1, low, 8 * seq_length)
        # RFC 9147 §4: the additional data is the header as sent, before record number
        # encryption.
        aad = header[:seq_at] + form.pack(low) + header[seq_at + seq_length : header_end]
        inner = keys.open(sequence, body, aad)
        if inner is None:
            state.auth_failures += 1
            self._drop(RecordDrop.AUTHENTICATION)
            return None
        return sequence, inner

    def _deprotected(self, state: _ReadEpoch, sequence: int, inner: bytes) -> Dtls13Record | None:
        """The record of the DTLSInnerPlaintext ``inner`` that deprotected as ``sequence``
        in ``state``'s epoch, or None when it is dropped (counted)."""
        # RFC 8446 §5.4: the content type is the last non-zero byte (the last byte when
        # the record is not padded: no copy made to strip nothing).
        content_end = len(inner if inner and inner[-1] else inner.rstrip(b"\x00")) - 1
        if content_end < 0 or inner[content_end] not in _INNER_TYPES:
            self._drop(RecordDrop.INNER_TYPE)
            return None
        content_type = inner[content_end]
        if content_end > MAX_PLAINTEXT:
            self._drop(RecordDrop.TOO_LONG)
            return None
        if content_end == 0 and content_type != ContentType.APPLICATION_DATA:
            self._drop(RecordDrop.EMPTY)  # RFC 8446 §5.1 (and an ACK has a length field)
            return None
        # RFC 9147 §4.5.1: the replay check comes after deprotection (no timing channel on
        # the record number), and only a deprotected record moves the window. (A replay
        # repeats its original's content, so the checks above drop the same records
        # whether they come first or not.)
        if not state.accept(sequence):
            self._drop(RecordDrop.REPLAY)
            return None
        return _as_record((state.epoch, sequence, content_type, inner[:content_end]))


def connection_id_of(datagram: bytes, length: int) -> bytes | None:
    """The connection ID of ``length`` bytes in the unified header of ``datagram``'s first
    record (RFC 9147 §4: first byte 001CSLEE, the C bit set, the CID right after it); None
    when the first record carries none. A cheap look for routing: the record itself is
    authenticated by the association it is routed to (§9, RFC 9146 §6)."""
    if not length or len(datagram) <= length or datagram[0] & 0xE0 != 0x20:
        return None
    if not datagram[0] & _CID_BIT:
        return None
    return datagram[1 : 1 + length]
