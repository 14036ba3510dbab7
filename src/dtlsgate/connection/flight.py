"""DTLS flights: packing handshake messages into datagrams, the retransmission timer, and
reassembly of fragmented, duplicated and reordered handshake messages.

- RFC 6347 §4.2.3: a handshake message larger than what fits in a datagram is split into
  fragments (fragment_offset, fragment_length); each fragment goes in its own record, and
  several records may share a datagram.
- RFC 6347 §4.2.4 and §4.2.4.1: a flight is retransmitted when its timer expires; the timer
  starts at 1 s and doubles on each retransmission, up to 60 s.
- Reassembly buffers at most a few messages ahead of the next expected one, each of bounded
  size, so a peer cannot make us hold more than ``MAX_BUFFERED_BYTES``.
"""

from __future__ import annotations

from bisect import bisect_left
from collections.abc import Callable
from functools import partial
from typing import NamedTuple, Protocol, cast

from dtlsgate.errors import DecodeError
from dtlsgate.wire.handshake import (
    DTLS_HANDSHAKE_HEADER_LENGTH,
    DtlsHandshakeHeader,
    encode_dtls_handshake,
    encode_dtls_handshake_fragment,
)

# RFC 6347 §4.2.4.1: "an initial timer value of 1 second", doubled "up to no less than
# 60 seconds".
INITIAL_RETRANSMIT_TIMEOUT = 1.0
MAX_RETRANSMIT_TIMEOUT = 60.0
# How many times a flight is sent before the handshake is abandoned: 1 + 2 + ... + 60 s covers
# about two minutes, longer than any peer waits for us.
MAX_FLIGHT_TRANSMISSIONS = 8
# The largest handshake message we reassemble. A certificate chain of MAX_CHAIN_DEPTH RSA-4096
# certificates is well under this; anything bigger is not a handshake we want.
MAX_HANDSHAKE_MESSAGE_LENGTH = 1 << 16
# Messages buffered ahead of the next expected message_seq: the longest flight (server
# hello flight: ServerHello, Certificate, ServerKeyExchange, CertificateRequest,
# ServerHelloDone) has five.
MAX_MESSAGES_AHEAD = 6
# Distinct fragments kept per message before it is complete (a 64 KiB message in
# fragments of 256 bytes needs 256; more means a peer wasting our memory).
MAX_FRAGMENTS_PER_MESSAGE = 512
# A fragment is only started in a datagram when this much of it (or the whole rest of the
# message) fits; otherwise the datagram is closed first.
MIN_FRAGMENT_LENGTH = 32


class OutgoingHandshake(NamedTuple):
    """A handshake message of a flight in an epoch of its own (DTLS 1.3's; a DTLS 1.2
    flight holds its messages as bytes, see `FlightItem`), kept whole; fragmented anew on
    each transmission. ``message`` is the message with its header as one fragment (the
    transcript's form, RFC 6347 §4.2.6), sent as is when it fits in the datagram; the
    header's fields are read back from it only to fragment it. A named tuple, like
    `OutgoingChangeCipherSpec` and `HandshakeMessage`: immutable, and made without a
    Python-level ``__init__``."""

    message: bytes
    epoch: int

    @classmethod
    def of(cls, msg_type: int, message_seq: int, body: bytes, epoch: int) -> OutgoingHandshake:
        """The message ``body`` of ``msg_type``, numbered ``message_seq``."""
        return _as_outgoing((encode_dtls_handshake(msg_type, body, message_seq), epoch))

    @property
    def msg_type(self) -> int:
        return self.message[0]

    @property
    def message_seq(self) -> int:
        return (self.message[4] << 8) | self.message[5]


# (message, epoch) -> OutgoingHandshake, in C: the named tuple's own ``__new__`` is a
# Python function (as `as_handshake_message` below).
_as_outgoing = cast(
    Callable[[tuple[bytes, int]], OutgoingHandshake], partial(tuple.__new__, OutgoingHandshake)
)


class OutgoingChangeCipherSpec(NamedTuple):
    """The ChangeCipherSpec record of a flight, sent in ``epoch`` (the one it ends): the
    flight's whole messages given as bytes after it go in the next epoch."""

    epoch: int


# A flight's item: a whole handshake message (with its header, as `OutgoingHandshake`
# holds it) sent in the flight's current epoch, which is 0 until a ChangeCipherSpec and the
# one after it since (DTLS 1.2's flights, RFC 5246 §7.1: its messages are the handshake
# machine's as they are, no object made per message); a message in an epoch of its own
# (DTLS 1.3's flights, RFC 9147 §4), which becomes the current one; the ChangeCipherSpec.
FlightItem = bytes | OutgoingHandshake | OutgoingChangeCipherSpec


class FlightRecords(Protocol):
    """What `pack_flight` needs of a record layer (DTLS 1.2's ``RecordLayer``, or the DTLS
    1.3 connection's wrapper of its record layer): to append to a datagram one record in
    ``epoch`` carrying a handshake message (or fragment) or the ChangeCipherSpec, returning
    the record's length, and the bytes a record of ``epoch`` adds to its content. A
    datagram being filled is the list of its records' bytes, joined once it is complete
    (DTLS 1.2's record layer appends a plaintext record's header and content there without
    making it as a record first)."""

    def write_handshake(self, datagram: list[bytes], message: bytes, epoch: int) -> int: ...

    def write_change_cipher_spec(self, datagram: list[bytes], epoch: int) -> int: ...

    def overhead(self, epoch: int) -> int: ...


def pack_flight(items: list[FlightItem], records: FlightRecords, mtu: int) -> list[bytes]:
    """Protect and pack ``items`` into datagrams of at most ``mtu`` bytes, fragmenting
    handshake messages as needed. Fresh record sequence numbers are used every time."""
    datagrams: list[bytes] = []
    # The datagram being filled: its records' bytes, joined when it is complete (each record
    # is copied once, into its datagram, not into a buffer grown record by record and then
    # copied out of it), and their length.
    current: list[bytes] = []
    size = 0
    # The flight's current epoch, and what a record of it adds to its content: asked once
    # per epoch of the flight (the record layer's keys do not change while a flight is
    # packed), not per message; -1 until asked.
    epoch, record_overhead = 0, -1

    def flush() -> None:
        nonlocal current, size
        if current:
            datagrams.append(b"".join(current))
            current, size = [], 0

    for item in items:
        if isinstance(item, bytes):
            message = item
        elif isinstance(item, OutgoingChangeCipherSpec):
            if size + records.overhead(item.epoch) + 1 > mtu:
                flush()  # full: the record starts the next
            size += records.write_change_cipher_spec(current, item.epoch)
            epoch, record_overhead = item.epoch + 1, -1
            continue
        else:
            message = item.message
            if item.epoch != epoch:
                epoch, record_overhead = item.epoch, -1
        if record_overhead < 0:
            record_overhead = records.overhead(epoch)
        if size + record_overhead + len(message) <= mtu:
            # The whole message fits (every message of a usual flight): its unfragmented
            # form, already encoded.
            size += records.write_handshake(current, message, epoch)
            continue
        overhead = record_overhead + DTLS_HANDSHAKE_HEADER_LENGTH
        length = len(message) - DTLS_HANDSHAKE_HEADER_LENGTH  # the body's
        # RFC 6347 §4.2.2: every fragment repeats the message's type and message_seq, read
        # back once from its own header.
        msg_type, message_seq = message[0], (message[4] << 8) | message[5]
        offset = 0
        while True:
            room = mtu - size - overhead
            if not offset and room >= length:
                # It fits whole after all, in the next datagram.
                size += records.write_handshake(current, message, epoch)
                break
            left = length - offset
            if current and room < min(left, MIN_FRAGMENT_LENGTH):
                flush()  # full: the fragment starts the next
                continue
            start = DTLS_HANDSHAKE_HEADER_LENGTH + offset
            chunk = message[start : start + max(room, 1)]
            fragment = encode_dtls_handshake_fragment(msg_type, chunk, message_seq, offset, length)
            size += records.write_handshake(current, fragment, epoch)
            offset += len(chunk)
            if offset >= length:
                break
            flush()  # full: the next fragment starts the next
    flush()
    return datagrams


class RetransmitTimer:
    """The flight timer of RFC 6347 §4.2.4.1. Times are in the caller's clock."""

    __slots__ = ("deadline", "timeout", "transmissions")

    def __init__(self) -> None:
        self.timeout = INITIAL_RETRANSMIT_TIMEOUT
        self.deadline: float | None = None
        self.transmissions = 0

    def start(self, now: float) -> None:
        """A new flight was sent: first transmission, initial timeout."""
        self.timeout = INITIAL_RETRANSMIT_TIMEOUT
        self.transmissions = 1
        self.deadline = now + self.timeout

    def backoff(self, now: float) -> None:
        """The flight was sent again after the timer expired: double the timeout."""
        self.timeout = min(self.timeout * 2, MAX_RETRANSMIT_TIMEOUT)
        self.transmissions += 1
        self.deadline = now + self.timeout

    def restart(self, now: float) -> None:
        """The flight was partly sent again before the timer expired (DTLS 1.3, on a
        partial ACK): the current timeout runs again from ``now``."""
        self.deadline = now + self.timeout

    def stop(self) -> None:
        self.deadline = None

    @property
    def exhausted(self) -> bool:
        return self.transmissions >= MAX_FLIGHT_TRANSMISSIONS


class HandshakeMessage(NamedTuple):
    """A whole handshake message as reassembled; ``epoch`` is the record epoch that
    carried its last fragment. ``transcript_bytes`` is the message as the transcript
    hashes it (RFC 6347 §4.2.6: as if sent in one fragment, header with fragment_offset 0
    and fragment_length = length, then the body): for a message received in one fragment,
    that fragment exactly as received."""

    msg_type: int
    message_seq: int
    body: bytes
    epoch: int
    transcript_bytes: bytes


# (msg_type, message_seq, body, epoch, transcript_bytes) -> HandshakeMessage, in C: every
# message received is one, and a named tuple's own ``__new__`` is a Python-level function
# (as wire/record.py makes its DtlsRecord).
as_handshake_message = cast(
    Callable[[tuple[int, int, bytes, int, bytes]], HandshakeMessage],
    partial(tuple.__new__, HandshakeMessage),
)


class _Partial:
    """One message being reassembled from fragments: its bytes and the received ranges,
    kept sorted, disjoint and not touching one another, so each fragment costs a binary
    search. (A message that came in one fragment is a `HandshakeMessage` at once.)"""

    __slots__ = ("buffer", "epoch", "length", "msg_type", "ranges")

    def __init__(self, msg_type: int, length: int, epoch: int) -> None:
        self.msg_type = msg_type
        self.length = length
        self.epoch = epoch
        self.buffer = bytearray(length)
        self.ranges: list[tuple[int, int]] = []

    def add(self, offset: int, data: bytes) -> bool:
        """Add a fragment; False (and nothing changed) when it would be one piece more than
        ``MAX_FRAGMENTS_PER_MESSAGE``. The limit is checked before any work: a peer sending
        thousands of 1-byte fragments with gaps costs a binary search each, not a pass over
        every piece (which made one 64 KiB datagram cost a third of a second)."""
        ranges = self.ranges
        start, stop = offset, offset + len(data)
        # ranges[first:last] are those that overlap or touch [start, stop].
        first = bisect_left(ranges, start, key=_range_end)
        last = first
        while last < len(ranges) and ranges[last][0] <= stop:
            last += 1
        if first == last and len(ranges) >= MAX_FRAGMENTS_PER_MESSAGE:
            return False
        if first < last:
            start, stop = min(start, ranges[first][0]), max(stop, ranges[last - 1][1])
        self.buffer[offset : offset + len(data)] = data
        ranges[first:last] = [(start, stop)]
        return True

    @property
    def complete(self) -> bool:
        return self.ranges == [(0, self.length)]


def _range_end(r: tuple[int, int]) -> int:
    return r[1]


class Reassembler:
    """Handshake messages in message_seq order, whatever order their fragments came in."""

    __slots__ = ("_partial", "next_seq")

    def __init__(self, next_seq: int = 0) -> None:
        self.next_seq = next_seq
        # Each message_seq buffered: a message being reassembled, or one complete already.
        self._partial: dict[int, _Partial | HandshakeMessage] = {}

    def add(self, header: DtlsHandshakeHeader, fragment: bytes, epoch: int) -> bool:
        """Buffer one fragment, given as received: its 12-byte header, then its bytes.
        Returns True when it belongs to a message already processed (the peer is
        retransmitting its previous flight). Fragments too far ahead, too large or
        inconsistent with earlier ones are dropped; but a message over our size limit in a
        protected epoch came from the peer itself: `DecodeError` (decode_error, as TLS 1.3
        answers one)."""
        seq = header.message_seq
        if seq < self.next_seq:
            return True
        if seq >= self.next_seq + MAX_MESSAGES_AHEAD:
            return False
        length = header.length
        if length > MAX_HANDSHAKE_MESSAGE_LENGTH:
            if epoch > 0:
                raise DecodeError(f"handshake message of {length} bytes over our limit")
            # Epoch 0 is plaintext, forgeable by anyone on the path (RFC 6347 §4.1.2.7:
            # invalid records are silently discarded): a drop, not an alert.
            return False
        partial = self._partial.get(seq)
        if partial is None or epoch > partial.epoch:
            # RFC 6347 §4.1: a message travels in one epoch. Pieces from an older epoch
            # (plaintext, forgeable) never mix into a protected message: a fragment of a
            # newer epoch starts the message afresh, an older one is dropped.
            if header.fragment_offset == 0 and header.fragment_length == length:
                # The whole message in one fragment (the usual case): complete at once, and
                # the fragment as received is its transcript form (RFC 6347 §4.2.6).
                body = fragment[DTLS_HANDSHAKE_HEADER_LENGTH:]
                self._partial[seq] = as_handshake_message(
                    (header.msg_type, seq, body, epoch, fragment)
                )
                return False
            partial = self._partial[seq] = _Partial(header.msg_type, length, epoch)
        elif (
            not isinstance(partial, _Partial)
            or epoch < partial.epoch
            or partial.msg_type != header.msg_type
            or partial.length != length
        ):
            # Complete already (a duplicate), or RFC 6347 §4.2.3: fragments of one message
            # agree on type and length.
            return False
        partial.add(header.fragment_offset, fragment[DTLS_HANDSHAKE_HEADER_LENGTH:])
        return False

    def take_whole(
        self, header: DtlsHandshakeHeader, fragment: bytes, epoch: int
    ) -> HandshakeMessage | None:
        """The message ``fragment`` (given as to ``add``) is, when it is the whole of the
        message expected next and nothing is buffered: taken at once, without entering the
        table, and the message after it is expected next. None otherwise (nothing changed:
        give the fragment to ``add``)."""
        seq = header.message_seq
        if (
            seq != self.next_seq
            or self._partial
            or header.fragment_offset
            or header.fragment_length != header.length
        ):
            return None
        # A whole fragment lies in one record, shorter than MAX_HANDSHAKE_MESSAGE_LENGTH; as
        # received, it is the message's transcript form (RFC 6347 §4.2.6).
        self.next_seq = seq + 1
        body = fragment[DTLS_HANDSHAKE_HEADER_LENGTH:]
        return as_handshake_message((header.msg_type, seq, body, epoch, fragment))

    def restart(self, next_seq: int) -> None:
        """Forget everything buffered and expect ``next_seq`` next (a new answer to our
        ClientHello, see `DtlsConnection._handshake_record`)."""
        self.next_seq = next_seq
        self._partial.clear()

    def pop(self) -> HandshakeMessage | None:
        """The next message in order, when all of it has arrived."""
        seq = self.next_seq
        message = self._partial.get(seq)
        if message is None:
            return None
        if isinstance(message, _Partial):
            if not message.complete:
                return None
            body = bytes(message.buffer)
            transcript = encode_dtls_handshake(message.msg_type, body, seq)
            message = as_handshake_message((message.msg_type, seq, body, message.epoch, transcript))
        partial = self._partial
        del partial[seq]
        if not partial:
            # Frees the emptied table: a connection keeps its reassembler for its lifetime
            # (the peer's retransmissions are recognised by it), mostly empty.
            partial.clear()
        self.next_seq = seq + 1
        return message

    def holds(self, message_seq: int) -> bool:
        """Whether anything of message ``message_seq`` is buffered."""
        return message_seq in self._partial

    def fragment_counts(self) -> dict[int, int]:
        """For each message being reassembled, how many separate pieces it is in."""
        return {seq: len(p.ranges) for seq, p in self._partial.items() if isinstance(p, _Partial)}

    def largest_message(self) -> int:
        """The length of the largest message buffered (a partial one at its announced
        length), 0 when nothing is."""
        return max(
            (p.length if isinstance(p, _Partial) else len(p.body) for p in self._partial.values()),
            default=0,
        )

    def messages_held(self) -> int:
        """Messages buffered: being reassembled, or complete and waiting their turn."""
        return len(self._partial)

    def fragments_held(self) -> int:
        """The received pieces kept for messages not complete yet (each at most
        ``MAX_FRAGMENTS_PER_MESSAGE``)."""
        return sum(len(p.ranges) for p in self._partial.values() if isinstance(p, _Partial))

    def buffered_bytes(self) -> int:
        return sum(
            p.length if isinstance(p, _Partial) else len(p.body) for p in self._partial.values()
        )


# What the limits above allow in the worst case, for the documentation and a test.
MAX_BUFFERED_BYTES = MAX_MESSAGES_AHEAD * MAX_HANDSHAKE_MESSAGE_LENGTH
