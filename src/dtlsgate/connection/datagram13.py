"""The sans-I/O DTLS 1.3 connection (RFC 9147): datagrams in, datagrams and events out.

The same face as the DTLS 1.2 connection (`dtlsgate.connection.datagram`):

    conn.receive(data, addr, now)      # a datagram from the peer
    conn.datagrams_to_send()           # [(datagram, addr)] to put on the wire
    conn.get_timer() / handle_timer(now)
    conn.next_event()                  # HandshakeCompleted, DataReceived, ConnectionClosed, ...
    conn.send(data) / conn.key_update() / conn.close()
    conn.new_connection_ids(n) / conn.request_connection_ids(n) / conn.use_next_connection_id()

The handshake is the TLS 1.3 engine's (`dtlsgate.handshake.tls13`, run with its DTLS
`Versions`); this module carries out the actions it returns over the DTLS 1.3 record layer
(`dtlsgate.record.dtls13`):

- Handshake messages travel in DTLS handshake fragments (RFC 9147 §5.2): each side numbers
  its messages from message_seq 0; a message larger than the path MTU is fragmented and
  reassembled (`dtlsgate.connection.flight`). The transcript hashes every message as TLS
  would, with the 4-byte header (§5.2): the engine sees and emits TLS-form messages only.
- Epochs (§6.1): each key the engine installs takes the next epoch in its direction (2 the
  handshake keys, 3 the first application keys, +1 per KeyUpdate). Messages keep the epoch
  they were first sent in when they are retransmitted (§4.2.1).
- Flights, timers and ACKs (§5.8, §7): the messages one engine step sends are a flight,
  retransmitted on a doubling timer until acknowledged: by an ACK naming the records that
  carried all of it, or implicitly by the peer's next flight. On a timeout only the
  messages not yet acknowledged are sent again, and so they are at once when an ACK
  acknowledged part of the flight (§7.3). We acknowledge the peer's handshake records
  with ACK records: at once when its last flight or a post-handshake message arrived, or
  it is retransmitting; after ``ACK_DELAY`` for a flight that is still incomplete. (A
  client sends in the handshake epoch from the ServerHello on, so it can acknowledge the
  server's encrypted flight as it comes.) A server after the gate's stateless HRR numbers
  its plaintext records above the HRR's (`Dtls13ServerConnection.from_admit`).
- Post-handshake messages (§5.8.4, §8): KeyUpdate, NewSessionTicket, NewConnectionId and
  RequestConnectionId are each one flight, sent one at a time and retransmitted until
  acknowledged; our sending key changes only once our KeyUpdate is acknowledged (§8).
- Connection IDs (RFC 9147 §9, when both sides sent the connection_id extension): the
  peer's CID goes in every record we send, any of ours (``connection_ids``) is accepted in
  the records we receive. After the handshake either side may offer the other new CIDs in a
  NewConnectionId and ask for some with a RequestConnectionId, each a post-handshake
  message like the others (§5.8.4: one of each type unacknowledged at a time):
  - ``new_connection_ids(n, usage)`` issues ``n`` fresh CIDs of ours (random, of the
    negotiated length, at most `MAX_READ_CONNECTION_IDS` accepted at once); they are
    accepted at once. With cid_spare the CIDs issued before stay valid (the peer "MAY" go
    on using them); with cid_immediate the peer "MUST" use a new one for all future records,
    so the CIDs issued before it are retired once the peer acknowledged the message (a
    record it sent before that and delivered after is then dropped, like a lost one).
  - A peer's RequestConnectionId is answered at once with a cid_spare NewConnectionId of at
    most ``num_cids`` fresh CIDs, fewer (none at all) when our set is full, as §9 allows;
    more than `MAX_CID_REQUESTS_WITHOUT_DATA` requests with no application data between
    them is too_many_cids_requested.
  - The peer's NewConnectionId: cid_immediate switches the CID we send to its first CID at
    once (the others become spares; older spares are dropped, since none of them may be
    used for future records); cid_spare CIDs are kept, in order, up to
    `MAX_PEER_SPARE_CIDS` (more are discarded, §9). ``use_next_connection_id()`` switches
    to the next spare, e.g. before sending from a new address ("SHOULD use a new CID
    whenever sending on a new path"); ``request_connection_ids(n)`` asks for more, one
    request unanswered at a time.
  - Either message when no CIDs were negotiated, a NewConnectionId from a peer that asked
    to receive no CID, or a RequestConnectionId from one that sends none, is
    unexpected_message; an empty CID in a NewConnectionId (a peer turning CIDs off, which
    §9 does not describe) or a cid_immediate one without a CID is illegal_parameter.
- 0-RTT is never used: early data (epoch 1) has no keys and is dropped.

Errors are those of the DTLS 1.2 connection: invalid records are dropped silently (the
record layer counts them in ``records.drops``, RFC 9147 §4.5.2); a handshake violation
queues the fatal alert and raises the `ProtocolError`; a fatal alert from the peer raises
`AlertReceived`.
"""

from __future__ import annotations

from collections.abc import Callable, Hashable, Sequence
from typing import Any

from dtlsgate.connection.base import BaseDtlsConnection
from dtlsgate.connection.datagram import DtlsClientConnection, DtlsConnection, DtlsServerConnection
from dtlsgate.connection.flight import (
    HandshakeMessage,
    OutgoingHandshake,
    Reassembler,
    pack_flight,
)
from dtlsgate.connection.stream import completed
from dtlsgate.crypto.record_number import RecordNumberCipher
from dtlsgate.errors import (
    DecodeError,
    DtlsgateError,
    IllegalParameter,
    ProtocolError,
    StateError,
    TooManyCidsRequested,
    UnexpectedMessage,
    UsageError,
)
from dtlsgate.events import (
    Event,
    HandshakeCompleted,
    SessionTicketReceived,
)
from dtlsgate.gate.datagram import Gate
from dtlsgate.gate.results import Admit, Dtls13Admit
from dtlsgate.handshake.dtls12.resume import Dtls12Session
from dtlsgate.handshake.engine import Machine, handler_for
from dtlsgate.handshake.tls13 import client as _client
from dtlsgate.handshake.tls13 import server as _server
from dtlsgate.handshake.tls13.common import (
    DTLS_VERSIONS,
    Actions,
    Complete,
    ConnectionIdsRequested,
    InstallKey,
    KeyLog,
    PeerConnectionIds,
    PeerRecordLimit,
    SendMessage,
    TicketReceived,
    UseConnectionIds,
)
from dtlsgate.handshake.tls13.post_handshake import (
    Connected,
    new_connection_id_message,
    request_connection_id_message,
    update_write,
)
from dtlsgate.record.dtls13 import (
    EPOCH_APPLICATION,
    EPOCH_HANDSHAKE,
    EPOCH_PLAINTEXT,
    MAX_PLAINTEXT,
    MAX_READ_CONNECTION_IDS,
    Dtls13Record,
    Dtls13RecordLayer,
    EpochKeys,
)
from dtlsgate.wire.enums import (
    ConnectionIdUsage,
    ContentType,
    ExtensionType,
    HandshakeType,
    ProtocolVersion,
)
from dtlsgate.wire.handshake import (
    DTLS_HANDSHAKE_HEADER_LENGTH,
    decode_dtls_handshake_fragments,
    encode_handshake,
    fragment_span,
)
from dtlsgate.wire.messages import Alert, ClientHello, ServerHello
from dtlsgate.wire.messages13 import decode_ack, encode_ack
from dtlsgate.wire.record import split_dtls_records

__all__ = [
    "ACK_DELAY",
    "DatagramClientConnection",
    "Dtls13ClientConnection",
    "Dtls13Connection",
    "Dtls13ServerConnection",
    "accept",
]

# RFC 9147 §7.1: an incomplete flight is acknowledged "after a short delay"; a quarter of
# the initial retransmission timeout (1 s) leaves the rest of the flight time to arrive
# and still beats the peer's timer.
ACK_DELAY = 0.25
# Record numbers remembered for the next ACK: a flight of six messages fragmented at a
# small MTU has a few dozen records; older ones are forgotten first (the peer's timer
# covers whatever an ACK left out).
MAX_ACK_RECORD_NUMBERS = 64
# Post-handshake messages queued behind the one in flight (KeyUpdates the application
# asks for, tickets, answers to the peer's KeyUpdates): beyond this, key_update() refuses.
MAX_POST_HANDSHAKE_QUEUE = 16
# RFC 9147 §9: "Implementations which receive more spare CIDs than they wish to maintain
# MAY simply discard any extra CIDs". As many spares of the peer's as we accept of ours.
MAX_PEER_SPARE_CIDS = MAX_READ_CONNECTION_IDS
# RFC 9147 §9: an excessive number of RequestConnectionId messages MAY end the connection
# with too_many_cids_requested. Each costs us a NewConnectionId and its retransmissions; a
# peer preparing a few new paths asks a few times, not 16 times without sending any data
# (counted like KeyUpdates, `post_handshake.MAX_KEY_UPDATES_WITHOUT_DATA`).
MAX_CID_REQUESTS_WITHOUT_DATA = 16
# Draws of a random CID that collides with one of ours before giving up on it (only a
# 1-byte CID can come near: 8 of 256 values in use).
_CID_DRAWS = 32


class _FlightRecords:
    """`pack_flight`'s view of our record layer: protects each record and remembers which
    handshake fragment each record number carried, for the ACKs that name them (§7)."""

    def __init__(self, records: Dtls13RecordLayer, sent: dict[tuple[int, int], bytes]):
        self._records = records
        self._sent = sent

    def write_handshake(self, datagram: list[bytes], message: bytes, epoch: int) -> int:
        sequence = self._records.next_write_sequence(epoch)
        record = self._records.protect(ContentType.HANDSHAKE, message, epoch)
        datagram.append(record)
        # The fragment itself (no copy): where it lies in its message is read from its
        # header only if an ACK names this record. Most records never are: the peer's next
        # flight acknowledges a whole flight at once (§5.8).
        self._sent[(epoch, sequence)] = message
        return len(record)

    def write_change_cipher_spec(self, datagram: list[bytes], epoch: int) -> int:
        # DTLS 1.3 flights have none (RFC 9147 §5); here for the protocol's sake.
        record = self._records.protect(ContentType.CHANGE_CIPHER_SPEC, b"\x01", epoch)
        datagram.append(record)
        return len(record)

    def overhead(self, epoch: int) -> int:
        return self._records.overhead(epoch)


def _add_range(ranges: list[tuple[int, int]], start: int, stop: int) -> list[tuple[int, int]]:
    """``ranges`` (sorted, disjoint) with [start, stop) added and merged."""
    if not ranges:
        return [(start, stop)]  # the first ACK of a message's records: nothing to merge
    out: list[tuple[int, int]] = []
    for a, b in sorted([*ranges, (start, stop)]):
        if out and a <= out[-1][1]:
            out[-1] = (out[-1][0], max(out[-1][1], b))
        else:
            out.append((a, b))
    return out


class _PostHandshake:
    """A post-handshake message waiting for its turn or its ACK, and what takes effect once
    it is acknowledged: a KeyUpdate's sending key (RFC 9147 §8), the retirement of the CIDs
    a cid_immediate NewConnectionId replaces (§9)."""

    __slots__ = ("install", "message", "retire")

    def __init__(self, message: OutgoingHandshake) -> None:
        self.message = message
        self.install: InstallKey | None = None
        # Our CIDs a cid_immediate NewConnectionId replaces once acknowledged (RFC 9147 §9).
        self.retire: tuple[bytes, ...] = ()


class Dtls13Connection(BaseDtlsConnection):
    """What DTLS 1.3 server and client connections share: records, flights, ACKs,
    post-handshake messages, connection IDs."""

    def __init__(
        self,
        ctx: Any,
        state: Any,
        machine: Machine[Any],
        peer: Hashable | None,
        mtu: int,
        keylog: Callable[[str], None] | None,
        send_acks: bool = True,
        first_write_sequence: int = 0,
    ) -> None:
        # All by position (the subclasses' calls): a keyword call costs each connection
        # about 1,000 instructions more.
        super().__init__(Reassembler(), peer, mtu, keylog)
        self._ctx = ctx
        self._state = state
        self._machine = machine
        # Whether we send ACK records (RFC 9147 §7); off only to measure what they save.
        self._send_acks = send_acks
        # By position: a class called with a keyword builds a dict of it to unpack again.
        self.records = Dtls13RecordLayer(first_write_sequence)
        self._next_message_seq = 0
        self._read_epoch = EPOCH_PLAINTEXT
        # Our current flight, what the peer acknowledged of it (message_seq -> body ranges)
        # and which handshake fragment (with its header) each record we sent carried.
        self._flight: list[OutgoingHandshake] = []
        self._acked: dict[int, list[tuple[int, int]]] = {}
        self._sent: dict[tuple[int, int], bytes] = {}
        self._flight_install: InstallKey | None = None
        self._flight_retire: tuple[bytes, ...] = ()
        self._building: list[OutgoingHandshake] = []
        # Lists, not deques, as the connection's events (`BaseDtlsConnection`): an empty
        # deque holds a 64-slot block (760 bytes in all, against 56) for the connection's
        # life, and both stay short (`MAX_POST_HANDSHAKE_QUEUE`, `MAX_PEER_SPARE_CIDS`), so
        # taking from the front costs no more.
        self._post: list[_PostHandshake] = []
        # Record numbers of the peer's handshake records to acknowledge, and when.
        self._to_ack: list[tuple[int, int]] = []
        self._ack_deadline: float | None = None
        self._send_limit = MAX_PLAINTEXT
        self.tickets_acknowledged = 0  # our NewSessionTickets the peer acknowledged
        # RFC 9147 §9: whether the connection_id extension was negotiated; the peer's spare
        # CIDs, in the order given; whether our RequestConnectionId is still unanswered;
        # the peer's RequestConnectionIds since it last sent application data.
        self._cids_negotiated = False
        self._peer_spare_cids: list[bytes] = []
        self._cid_request_pending = False
        self._cid_requests = 0
        # Handshake flights started (a new one acknowledges the peer's, §5.8), and the time
        # of the call being served (timers are started from it).
        self._handshake_flights = 0
        self._now = 0.0

    # --- the sans-I/O interface -----------------------------------------------------------

    @property
    def state_name(self) -> str:
        return type(self._state).__name__

    def receive(self, data: bytes, addr: Hashable | None, now: float) -> None:
        """Process one datagram from the peer. Raises `ProtocolError` (after queueing the
        fatal alert) or `AlertReceived`; invalid records are dropped silently (§4.5.2)."""
        if self.closed:
            return
        self._now = now
        opened: bytes | Dtls13Record | bool = False
        if self.handshake_complete and addr == self.peer:
            if type(data) is not bytes:
                data = bytes(data)  # a bytearray or memoryview taken as the general path takes it
            # The hot path: a datagram of one record, usually application data.
            opened = self.records.open_application_data(data)
            if type(opened) is bytes:
                self._application_data(opened)
                return
            if opened is True:
                return  # its one record was dropped
        flights_before = self._handshake_flights
        try:
            got_handshake = retransmitted = False
            # A record of another type the hot path deprotected, or the general path's.
            records = (opened,) if isinstance(opened, Dtls13Record) else self.records.records(data)
            for record in records:
                if self.closed:
                    break
                if addr != self.peer:
                    self._peer_moved(record, addr)
                # By content type, in a dict keyed by its number (no enum read per record).
                repeated = _RECORD_HANDLERS[record.content_type](self, record, now)
                if repeated is not None:  # a handshake record
                    got_handshake = True
                    retransmitted |= repeated
            if got_handshake and not self.closed:
                self._after_handshake_records(now, retransmitted, flights_before)
        except ProtocolError as exc:
            self._fail(exc)
            raise

    def get_timer(self) -> float | None:
        """When ``handle_timer`` should be called next, or None."""
        if self.closed:
            return None
        # The earlier of the retransmission timer and the delayed ACK, either unset: asked
        # after every datagram by the asyncio faces, so no list is made for it.
        timer, ack = self._timer.deadline, self._ack_deadline
        if timer is None or (ack is not None and ack < timer):
            return ack
        return timer

    def handle_timer(self, now: float) -> None:
        """Send a delayed ACK, and retransmit what the peer has not acknowledged of our
        flight when its timer expired (RFC 9147 §5.8)."""
        if self.closed:
            return
        self._now = now
        if self._ack_deadline is not None and now >= self._ack_deadline:
            self._send_ack()
        deadline = self._timer.deadline
        if deadline is None or now < deadline:
            return
        if self._timer.exhausted:
            self._timer.stop()
            if self.handshake_complete and not self._post and self._flight_install is None:
                # Our last handshake flight, unacknowledged: the peer completed or is gone;
                # either way nothing more is owed.
                self._flight = []
                return
            self._timed_out()
            return
        self._timer.backoff(now)
        self._transmit(unacknowledged_only=True)

    def send(self, data: bytes) -> None:
        """Send ``data`` as one application data record."""
        if self.closed:
            raise StateError("the connection is closed")
        if not self.handshake_complete:
            raise StateError("send() before the handshake completed")
        if len(data) > self._send_limit:
            raise UsageError(f"at most {self._send_limit} bytes per record")
        if type(data) is not bytes:
            data = bytes(data)
        self._outgoing.append(self.records.protect_application_data(data))

    def key_update(self, request_peer: bool = True) -> None:
        """Send a KeyUpdate (RFC 8446 §4.6.3); our sending key changes once the peer has
        acknowledged it (RFC 9147 §8)."""
        if self.closed or not isinstance(self._state, Connected):
            raise StateError("key_update() needs a completed, open connection")
        if len(self._post) >= MAX_POST_HANDSHAKE_QUEUE:
            raise StateError("too many post-handshake messages waiting for acknowledgement")
        self._state, actions = update_write(self._state, request_peer)
        self._run(actions, self._now)

    # --- connection IDs (RFC 9147 §9) ----------------------------------------------------------

    @property
    def connection_ids(self) -> tuple[bytes, ...]:
        """Our CIDs the peer may put in its records, oldest first (empty: none negotiated).
        The same tuple object until they change."""
        return self.records.read_connection_ids

    @property
    def peer_connection_id(self) -> bytes:
        """The peer's CID we put in our records (b"": none)."""
        return self.records.write_connection_id

    @property
    def spare_connection_ids(self) -> tuple[bytes, ...]:
        """The peer's spare CIDs, in the order it gave them (`use_next_connection_id`)."""
        return tuple(self._peer_spare_cids)

    def new_connection_ids(
        self,
        cids: int | Sequence[bytes] = 1,
        usage: ConnectionIdUsage = ConnectionIdUsage.cid_spare,
    ) -> tuple[bytes, ...]:
        """Offer the peer new CIDs of ours in a NewConnectionId: ``cids`` fresh random ones,
        or these (each of the negotiated length, none in use). They are accepted at once;
        with cid_immediate the older ones are retired once the peer acknowledged the
        message. Returns the CIDs offered."""
        self._check_connection_ids("new_connection_ids()")
        length = len(self.records.read_connection_id)
        room = MAX_READ_CONNECTION_IDS - len(self.records.read_connection_ids)
        if isinstance(cids, int):
            if cids < 1:
                raise UsageError("new_connection_ids() needs at least one connection ID")
            count = cids
        else:
            offered = tuple(bytes(c) for c in cids)
            count = len(offered)
            if not offered or len(set(offered)) != count:
                raise UsageError("new_connection_ids() needs distinct connection IDs")
            if any(len(c) != length for c in offered):
                raise UsageError(f"our connection IDs are {length} bytes long")
            if any(c in self.records.read_connection_ids for c in offered):
                raise UsageError("a connection ID offered is already in use")
        if count > room:
            raise UsageError(
                f"at most {MAX_READ_CONNECTION_IDS} connection IDs of ours at once: {room} more now"
            )
        if usage not in (ConnectionIdUsage.cid_immediate, ConnectionIdUsage.cid_spare):
            raise UsageError(f"unknown ConnectionIdUsage {usage}")
        new = self._fresh_connection_ids(count) if isinstance(cids, int) else offered
        if len(new) < count:
            raise UsageError("no unused connection ID left of that length")
        self._issue_connection_ids(new, ConnectionIdUsage(usage))
        self._next_post_handshake()
        return new

    def request_connection_ids(self, num_cids: int = 1) -> None:
        """Ask the peer for ``num_cids`` spare CIDs (a RequestConnectionId); they show in
        ``spare_connection_ids`` once its NewConnectionId came. One request at a time
        (RFC 9147 §9: not while an earlier one is unfulfilled)."""
        self._check_connection_ids("request_connection_ids()")
        if not self.records.write_connection_id:
            # §9: "MUST NOT send RequestConnectionId when sending an empty Connection ID".
            raise UsageError("the peer receives no connection ID: it cannot be asked for any")
        if self._cid_request_pending:
            raise StateError("the peer has not answered the last RequestConnectionId yet")
        room = MAX_PEER_SPARE_CIDS - len(self._peer_spare_cids)
        if not 1 <= num_cids <= room:
            raise UsageError(f"between 1 and {room} spare connection IDs can be asked for now")
        self._cid_request_pending = True
        self._send_message(request_connection_id_message(num_cids))
        self._next_post_handshake()

    def use_next_connection_id(self) -> bytes:
        """Put the peer's next spare CID in our records from now on (RFC 9147 §9: in the
        order given), e.g. before sending from a new address; returns it."""
        if not self._peer_spare_cids:
            raise StateError("no spare connection ID from the peer: request_connection_ids()")
        cid = self._peer_spare_cids.pop(0)
        self.records.write_connection_id = cid
        return cid

    def _check_connection_ids(self, call: str) -> None:
        if self.closed or not isinstance(self._state, Connected):
            raise StateError(f"{call} needs a completed, open connection")
        if not self._cids_negotiated or not self.records.read_connection_id:
            raise UsageError(f"{call}: no connection IDs were negotiated (connection_id_length)")
        if len(self._post) >= MAX_POST_HANDSHAKE_QUEUE:
            raise StateError("too many post-handshake messages waiting for acknowledgement")

    def _fresh_connection_ids(self, count: int) -> tuple[bytes, ...]:
        """``count`` random CIDs of our length not in use (fewer if none can be found)."""
        length = len(self.records.read_connection_id)
        used = set(self.records.read_connection_ids)
        new: list[bytes] = []
        for _ in range(count * _CID_DRAWS):
            if len(new) == count:
                break
            cid = self._ctx.provider.random(length)
            if cid not in used:
                used.add(cid)
                new.append(cid)
        return tuple(new)

    def _issue_connection_ids(self, cids: tuple[bytes, ...], usage: ConnectionIdUsage) -> None:
        """Accept ``cids`` and queue the NewConnectionId offering them (§9)."""
        before = self.records.read_connection_ids
        for cid in cids:
            self.records.accept_connection_id(cid)
        self._send_message(new_connection_id_message(cids, usage))
        if usage == ConnectionIdUsage.cid_immediate:
            self._post[-1].retire = before

    def _peer_connection_ids(self, cids: tuple[bytes, ...], usage: ConnectionIdUsage) -> None:
        """The peer's NewConnectionId (§9)."""
        if not self._cids_negotiated:
            raise UnexpectedMessage("NewConnectionId without negotiated connection IDs")
        if not self.records.write_connection_id:
            # §9: a peer that negotiated receiving an empty CID "MUST NOT send" one.
            raise UnexpectedMessage("NewConnectionId from a peer that receives no CID")
        if not all(cids):
            raise IllegalParameter("an empty connection ID in NewConnectionId")
        immediate = usage == ConnectionIdUsage.cid_immediate
        if immediate and not cids:
            raise IllegalParameter("NewConnectionId cid_immediate without a connection ID")
        self._cid_request_pending = False
        spares = self._peer_spare_cids
        if immediate:
            # "one of the new CIDs MUST be used immediately for all future records"
            self.records.write_connection_id = cids[0]
            spares.clear()
        current = self.records.write_connection_id
        for cid in cids:
            if len(spares) >= MAX_PEER_SPARE_CIDS:
                break  # "MAY simply discard any extra CIDs"
            if cid != current and cid not in spares:
                spares.append(cid)

    def _connection_ids_requested(self, num_cids: int) -> None:
        """The peer's RequestConnectionId (§9): answered with at most ``num_cids`` fresh
        spare CIDs, as many as our bound leaves room for (none at all when full)."""
        if not self._cids_negotiated or not self.records.read_connection_id:
            # §9: not negotiated, or the peer sends an empty CID: it "MUST NOT" ask.
            raise UnexpectedMessage("RequestConnectionId without negotiated connection IDs")
        self._cid_requests += 1
        if self._cid_requests > MAX_CID_REQUESTS_WITHOUT_DATA:
            raise TooManyCidsRequested(
                f"more than {MAX_CID_REQUESTS_WITHOUT_DATA} RequestConnectionIds in a row"
            )
        room = MAX_READ_CONNECTION_IDS - len(self.records.read_connection_ids)
        self._issue_connection_ids(
            self._fresh_connection_ids(min(num_cids, room)), ConnectionIdUsage.cid_spare
        )

    # --- records ----------------------------------------------------------------------------

    def _handshake_record(self, record: Dtls13Record, now: float) -> bool:
        """Fragments of handshake messages; True when they repeat messages already
        processed (the peer is retransmitting)."""
        epoch = record.epoch
        if epoch == EPOCH_PLAINTEXT and self.handshake_complete:
            return False  # forgeable, and nothing in plaintext belongs after the handshake
        try:
            fragments = decode_dtls_handshake_fragments(record.fragment)
        except DecodeError:
            if epoch == EPOCH_PLAINTEXT:
                return False  # unauthenticated garbage, not a violation
            raise
        self._note_for_ack(epoch, record.sequence_number)
        old = False
        for header, fragment in fragments:
            old |= self._reassembler.add(header, fragment, epoch)
        while not self.closed and (message := self._reassembler.pop()) is not None:
            self._deliver(message, now)
        return old

    def _peer_moved(self, record: Dtls13Record, addr: Hashable | None) -> None:
        """A record from another address: with connection IDs, the peer's address changed
        (NAT rebinding, RFC 9146 §6): it is followed once a protected record from there
        authenticated and is the newest of its epoch, so a replayed old record cannot move
        the association."""
        records = self.records
        if (
            records.read_connection_id
            and record.epoch >= EPOCH_HANDSHAKE
            and record.sequence_number == records.highest_sequence(record.epoch)
        ):
            self.peer = addr

    def _note_for_ack(self, epoch: int, sequence_number: int) -> None:
        self._to_ack.append((epoch, sequence_number))
        del self._to_ack[:-MAX_ACK_RECORD_NUMBERS]

    def _application_data_record(self, record: Dtls13Record, now: float) -> None:
        if self.handshake_complete and record.epoch >= EPOCH_APPLICATION:
            self._application_data(record.fragment)

    def _application_data(self, content: bytes) -> None:
        """Application data from the peer, in an application epoch once the handshake is
        complete: the counts of what the peer may ask without sending data start again."""
        if isinstance(self._state, Connected):
            self._state.peer_key_updates = 0
        self._cid_requests = 0
        self._data_received(content)

    def _peer_ack_record(self, record: Dtls13Record, now: float) -> None:
        self._ack_record(record.fragment, record.epoch)

    def _peer_alert_record(self, record: Dtls13Record, now: float) -> None:
        self._alert_record(record.fragment, record.epoch)

    # --- ACKs (RFC 9147 §7) ------------------------------------------------------------------

    def _ack_record(self, data: bytes, epoch: int) -> None:
        try:
            numbers = decode_ack(data)
        except DecodeError:
            return
        progress = False
        for number in numbers:
            # An ACK in plaintext is forgeable: it may only speak for plaintext records.
            if epoch == EPOCH_PLAINTEXT and number[0] != EPOCH_PLAINTEXT:
                continue
            fragment = self._sent.pop(number, None)
            if fragment is not None:
                seq, start, stop = fragment_span(fragment)
                acked = _add_range(self._acked.get(seq, []), start, stop)
                progress |= acked != self._acked.get(seq)
                self._acked[seq] = acked
        if not self._flight:
            return
        # Every record that carried the flight was acknowledged (`_sent` empty: the usual
        # ACK, naming the records of one sending; each byte of the flight went in one of
        # them), or else every message's bytes are in the acknowledged ranges (the general
        # answer, for an ACK after a retransmission: a record of an earlier sending may
        # never be named).
        if not self._sent or not self._unacknowledged():
            self._flight_acknowledged()
        elif progress:
            # §7.3: an ACK that leaves only some of the flight acknowledged: the rest is
            # sent again now, not at the timer (which starts over at its current timeout).
            # Only when this ACK acknowledged something new, so a duplicated ACK costs
            # nothing and each record we send is answered by at most one resend.
            self._transmit(unacknowledged_only=True)
            self._timer.restart(self._now)

    def _unacknowledged(self) -> list[OutgoingHandshake]:
        out = []
        for item in self._flight:
            length = len(item.message) - DTLS_HANDSHAKE_HEADER_LENGTH
            if self._acked.get(item.message_seq) != [(0, length)]:
                out.append(item)
        return out

    def _flight_acknowledged(self) -> None:
        """Every message of our flight was acknowledged: no more retransmissions (§7.1);
        a KeyUpdate's new sending key takes effect (§8), the CIDs a cid_immediate
        NewConnectionId replaces are retired (§9); the next post-handshake message goes."""
        flight, install, retire = self._flight, self._flight_install, self._flight_retire
        self._clear_flight()
        if install is not None:
            self._install_write(install)
        for cid in retire:
            self.records.retire_connection_id(cid)
        if self.handshake_complete and any(m.msg_type == 4 for m in flight):
            self.tickets_acknowledged += 1
        self._next_post_handshake()

    def _after_handshake_records(self, now: float, retransmitted: bool, before: int) -> None:
        """Acknowledge what came (§7.1): not when our reply flight just went (it is the
        acknowledgement); at once for the peer's last flight, a post-handshake message or a
        retransmission; after ``ACK_DELAY`` for a flight that may still be arriving."""
        if self._handshake_flights != before:
            return
        if self.handshake_complete or retransmitted:
            self._send_ack()
        elif self._ack_deadline is None:
            self._ack_deadline = now + ACK_DELAY

    def _send_ack(self) -> None:
        self._ack_deadline = None
        if not self._send_acks or not self._to_ack:
            return
        if self.handshake_complete:
            # Every record number goes: our keys are the newest by now.
            numbers, self._to_ack = sorted(self._to_ack), []
        else:
            # §7: during the handshake an ACK goes in an epoch at least that of the records
            # it names; those of later epochs wait for our next key.
            epoch = self.records.write_epoch
            numbers = sorted(n for n in self._to_ack if n[0] <= epoch)
            if not numbers:
                return
            self._to_ack = [n for n in self._to_ack if n not in numbers]
        body = encode_ack(numbers)
        self._queue_record(self.records.protect(ContentType.ACK, body))

    def _queue_record(self, record: bytes) -> None:
        """Add ``record`` to the last datagram queued when it fits, else send it alone."""
        if self._outgoing and len(self._outgoing[-1]) + len(record) <= self._mtu:
            self._outgoing[-1] += record
        else:
            self._outgoing.append(record)

    # --- the handshake machine ----------------------------------------------------------------

    def _deliver(self, message: HandshakeMessage, now: float) -> None:
        if not self.handshake_complete and self._flight:
            # §5.8: the first message of the peer's next flight acknowledges ours.
            self._clear_flight()
        handler = handler_for(self._machine, self._state, message.msg_type, message.epoch)
        raw = encode_handshake(message.msg_type, message.body)  # the TLS form (§5.2)
        self._state, actions = handler(self._ctx, self._state, message.body, raw, now)
        self._run(actions, now)

    def _run(self, actions: Actions, now: float) -> None:
        """Carry out what the handshake machine asked for, in order; the messages sent are
        one flight (during the handshake) or post-handshake messages (after)."""
        for action in actions:
            # By exact type (the action classes are final), as the other connections
            # dispatch: an identity test per kind instead of an isinstance call.
            if type(action) is SendMessage:
                self._send_message(action.data)
            elif type(action) is InstallKey:
                self._install(action)
            elif type(action) is Complete:
                self._exporter = action.exporter
                self._complete(completed(action.info, ProtocolVersion.DTLS13))
            elif type(action) is KeyLog:
                if self._keylog is not None:
                    self._keylog(action.line())
            elif type(action) is TicketReceived:
                self._events.append(SessionTicketReceived(action.ticket))
            elif type(action) is PeerRecordLimit:
                self._send_limit = min(action.limit - 1, MAX_PLAINTEXT)
            elif type(action) is UseConnectionIds:
                # RFC 9147 §9: in every protected record from now on, both ways.
                self.records.read_connection_id = action.read
                self.records.write_connection_id = action.write
                self._cids_negotiated = True
            elif type(action) is PeerConnectionIds:
                self._peer_connection_ids(action.cids, action.usage)
            elif type(action) is ConnectionIdsRequested:
                self._connection_ids_requested(action.num_cids)
            # OwnRecordLimit: our records are bounded by the record layer's limits already;
            # SkipEarlyData: early data has no keys here, so it is dropped anyway.
        if self._building:
            self._handshake_flights += 1
            self._flight, self._building = self._building, []
            self._acked.clear()
            self._sent.clear()
            self._to_ack.clear()
            self._ack_deadline = None
            self._transmit(unacknowledged_only=False)
            self._timer.start(now)
        self._next_post_handshake()

    def _send_message(self, data: bytes) -> None:
        """A TLS-form message from the engine, numbered with our next message_seq (§5.2)."""
        seq = self._next_message_seq
        self._next_message_seq += 1
        item = OutgoingHandshake.of(data[0], seq, data[4:], self.records.write_epoch)
        if self.handshake_complete:
            self._post.append(_PostHandshake(item))
        else:
            self._building.append(item)

    def _install(self, action: InstallKey) -> None:
        if not action.write:
            epoch = EPOCH_HANDSHAKE if self._read_epoch == EPOCH_PLAINTEXT else self._read_epoch + 1
            self.records.install_read(epoch, self._epoch_keys(action))
            self._read_epoch = epoch
        elif self.handshake_complete and self._post and self._post[-1].install is None:
            # §8: the KeyUpdate just queued; our key changes once it is acknowledged.
            self._post[-1].install = action
        else:
            self._install_write(action)

    def _install_write(self, action: InstallKey) -> None:
        current = self.records.write_epoch
        epoch = EPOCH_HANDSHAKE if current == EPOCH_PLAINTEXT else current + 1
        self.records.install_write(epoch, self._epoch_keys(action))

    def _epoch_keys(self, action: InstallKey) -> EpochKeys:
        """The record protection of a traffic secret: key, iv and sn_key (§4.2.3), with
        the schedule's "dtls13" labels (§5.9)."""
        key, iv, sn_key = action.schedule.record_keys(action.secret)
        primitive = self._ctx.provider.aead_primitive(action.aead, key)
        return EpochKeys(action.aead, primitive, iv, RecordNumberCipher(action.aead, sn_key))

    def _complete(self, info: HandshakeCompleted) -> None:
        self.handshake_complete = True
        self.info = info
        self._events.append(info)

    def _next_post_handshake(self) -> None:
        """Put the next post-handshake message in flight when none is (one at a time:
        §8 forbids a second KeyUpdate before the first is acknowledged)."""
        if self._flight or not self._post or self.closed:
            return
        post = self._post.pop(0)
        self._flight, self._flight_install = [post.message], post.install
        self._flight_retire = post.retire
        self._acked.clear()
        self._sent.clear()
        self._transmit(unacknowledged_only=False)
        self._timer.start(self._now)

    def _clear_flight(self) -> None:
        self._flight = []
        self._flight_install = None
        self._flight_retire = ()
        self._acked.clear()
        self._sent.clear()
        self._timer.stop()

    # --- sending ------------------------------------------------------------------------------

    def _transmit(self, *, unacknowledged_only: bool) -> None:
        items = self._unacknowledged() if unacknowledged_only else list(self._flight)
        if not items:
            return
        sender = _FlightRecords(self.records, self._sent)
        for datagram in pack_flight(list(items), sender, self._mtu):
            self._outgoing.append(datagram)

    def _alert(self, level: int, description: int) -> None:
        body = Alert(level, description).encode()
        self._outgoing.append(self.records.protect(ContentType.ALERT, body))


# What a deprotected record leads to, by its content type: the record layer passes only
# these four (RFC 9147 §4). A handshake record's handler says whether it repeated messages
# already processed (the peer is retransmitting); the others return None.
_RECORD_HANDLERS: dict[int, Callable[[Dtls13Connection, Dtls13Record, float], bool | None]] = {
    ContentType.HANDSHAKE: Dtls13Connection._handshake_record,
    ContentType.APPLICATION_DATA: Dtls13Connection._application_data_record,
    ContentType.ACK: Dtls13Connection._peer_ack_record,
    ContentType.ALERT: Dtls13Connection._peer_alert_record,
}


class Dtls13ServerConnection(Dtls13Connection):
    """A DTLS 1.3 server connection: made for the client's first datagram (given to
    ``receive`` like any other), or `from_admit` after the gate's stateless
    HelloRetryRequest (``first_write_sequence``: the number of our first plaintext record,
    which `from_admit` sets)."""

    def __init__(
        self,
        config: Any,
        peer: Hashable | None = None,
        context: _server.ServerContext | None = None,
        keylog: Callable[[str], None] | None = None,
        send_acks: bool = True,
        first_write_sequence: int = 0,
    ) -> None:
        # No keyword-only parameter: `from_admit` calls it by position (keywords to a class
        # build a dict per connection), as `DtlsServerConnection` is called.
        ctx = context or _server.ServerContext(config, versions=DTLS_VERSIONS)
        if not ctx.versions.dtls:
            raise UsageError("a DTLS 1.3 connection needs a ServerContext made for DTLS")
        if keylog is not None:
            ctx = ctx.logging_keys()
        super().__init__(
            ctx,
            _server.SERVER_START,
            _server.DTLS_SERVER,
            peer,
            config.mtu,
            keylog,
            send_acks,
            first_write_sequence,
        )
        self._admit: Dtls13Admit | None = None

    @classmethod
    def from_admit(
        cls,
        admit: Dtls13Admit,
        config: Any,
        *,
        context: _server.ServerContext | None = None,
        keylog: Callable[[str], None] | None = None,
    ) -> Dtls13ServerConnection:
        """Continue a handshake the gate admitted (`dtlsgate.gate.dtls13`): ``start(now)``
        answers ClientHello2; its cookie is not verified again."""
        # The gate's HelloRetryRequests went in plaintext records numbered as the
        # ClientHello1 copies they answered (`dtlsgate.gate.dtls13`), below ClientHello2's
        # number. Our plaintext records start at ClientHello2's, as DTLS 1.2's ServerHello
        # does (RFC 6347 §4.2.1): numbered from 0, our ServerHello took the number of an
        # HRR, and the client's ACK of a duplicate HRR (§7) acknowledged a ServerHello it
        # never received, which was then never retransmitted (issue 12).
        sequence = admit.record_sequence_number
        conn = cls(config, admit.peer, context, keylog, True, sequence)  # send_acks True
        conn._admit = admit
        return conn

    def start(self, now: float) -> None:
        """Answer the admitted ClientHello2 (the transcript rebuilt from the cookie, RFC
        8446 §4.4.1) and process the records after it in its datagram. Raises like
        ``receive``."""
        admit, self._admit = self._admit, None
        if admit is None:
            raise StateError("start() needs a connection made by from_admit, once")
        self._now = now
        # RFC 9147 §5.2: the HelloRetryRequest was our message 0; the client's next
        # message follows ClientHello2's message_seq.
        self._next_message_seq = 1
        self._reassembler.next_seq = admit.message_seq + 1
        try:
            self._state, actions = _server.after_stateless_retry(self._ctx, admit, now)
            self._run(actions, now)
        except ProtocolError as exc:
            self._fail(exc)
            raise
        # The first record's end, from its length field.
        first_end = 13 + ((admit.datagram[11] << 8) | admit.datagram[12])
        if first_end < len(admit.datagram):
            self.receive(admit.datagram[first_end:], admit.peer, now)


class Dtls13ClientConnection(Dtls13Connection):
    """A DTLS 1.3 client connection; ``connect(now)`` queues the first ClientHello.
    ``offer_dtls12``: the ClientHello offers DTLS 1.2 as well (its suites and extensions),
    when the config has a DTLS 1.2 suite to offer (``offers_dtls12``), for
    `DatagramClientConnection` to fall back to."""

    def __init__(
        self,
        config: Any,
        peer: Hashable | None = None,
        *,
        keylog: Callable[[str], None] | None = None,
        send_acks: bool = True,
        offer_dtls12: bool = False,
    ) -> None:
        # What the context computes from the config alone, once per config (its suites,
        # groups, credentials, the ClientHello's extensions), shared by its connections.
        ctx = config.prepared(
            _prepared_client_offering_dtls12 if offer_dtls12 else _prepared_client
        )
        if keylog is not None:
            ctx = ctx.logging_keys()
        self.offers_dtls12 = bool(ctx.versions.fallback)
        # What this connection has of its own: the ticket it offers and the connection ID
        # it asks the server to send (RFC 9147 §9), drawn once (ClientHello2 repeats it).
        self._ticket = _client.session_ticket(config)
        length = config.connection_id_length
        self._connection_id = config.provider.random(length) if length else None
        super().__init__(ctx, None, _client.DTLS_CLIENT, peer, config.mtu, keylog, send_acks)
        self._started = False
        # Our first ClientHello, for a fall back to DTLS 1.2 (`DatagramClientConnection`).
        self.first_client_hello: ClientHello | None = None

    @property
    def server_answered(self) -> bool:
        """Whether a DTLS 1.3 HelloRetryRequest or ServerHello was processed."""
        state = self._state
        return not (isinstance(state, _client.WaitServerHello) and state.retry is None)

    def connect(self, now: float) -> None:
        if self._started:
            raise StateError("connect() was already called")
        self._started = True
        self._now = now
        self._state, actions = _client.start(self._ctx, now, self._ticket, self._connection_id)
        self.first_client_hello = self._state.hello
        self._run(actions, now)


# ---- the client of both versions, and the server connection for either admit -------------


def _answer_is_dtls12(datagram: bytes) -> bool:
    """Whether the server's first answer (a plaintext record in epoch 0) negotiates DTLS
    1.2: a HelloVerifyRequest (RFC 6347 §4.2.1), or a ServerHello without DTLS 1.3 in
    supported_versions (RFC 8446 §4.2.1: a server that does not select 1.3 omits it)."""
    record = next(split_dtls_records(bytes(datagram)), None)
    if record is None or record.content_type != ContentType.HANDSHAKE or record.epoch != 0:
        return False
    fragment = record.fragment
    if len(fragment) < DTLS_HANDSHAKE_HEADER_LENGTH:
        return False
    if fragment[0] == HandshakeType.HELLO_VERIFY_REQUEST:
        return True
    if fragment[0] != HandshakeType.SERVER_HELLO:
        return False
    body = fragment[DTLS_HANDSHAKE_HEADER_LENGTH:]
    try:
        chosen = ServerHello.decode(body, tls13=False).get(ExtensionType.supported_versions)
    except DtlsgateError:
        return False  # a DTLS 1.3 ServerHello (its extensions are not DTLS 1.2's), or junk
    return chosen is None


class DatagramClientConnection:
    """A DTLS client offering the versions of ``config.dtls_versions`` (both by default):
    DTLS 1.3, falling back to DTLS 1.2 only when the server's answer picks it (a
    HelloVerifyRequest, or a ServerHello without DTLS 1.3 in supported_versions); a DTLS 1.2
    ServerHello carrying the RFC 8446 §4.1.3 downgrade sentinel is then refused. The face
    of `Dtls13ClientConnection` and `DtlsClientConnection`, whichever is in use
    (``version``)."""

    def __init__(
        self,
        config: Any,
        peer: Hashable | None = None,
        *,
        keylog: Callable[[str], None] | None = None,
    ) -> None:
        self._config = config
        self._keylog = keylog
        self.peer = peer
        versions = tuple(config.dtls_versions)
        self._conn: Dtls13Connection | DtlsConnection
        self._fallback = False
        # A saved DTLS 1.2 session (issue 15) is resumed in DTLS 1.2: offered alone, as
        # its version was.
        resuming12 = isinstance(config.session_ticket, Dtls12Session)
        if ProtocolVersion.DTLS13 not in versions or resuming12:
            self._conn = DtlsClientConnection(config, peer, keylog=keylog)
            return
        offer_dtls12 = ProtocolVersion.DTLS12 in versions
        conn = Dtls13ClientConnection(config, peer, keylog=keylog, offer_dtls12=offer_dtls12)
        self._fallback = conn.offers_dtls12
        self._conn = conn

    @property
    def version(self) -> ProtocolVersion:
        """The version in use: DTLS 1.3 until the server picks DTLS 1.2."""
        is12 = isinstance(self._conn, DtlsConnection)
        return ProtocolVersion.DTLS12 if is12 else ProtocolVersion.DTLS13

    @property
    def connection(self) -> Dtls13Connection | DtlsConnection:
        return self._conn

    @property
    def handshake_complete(self) -> bool:
        return self._conn.handshake_complete

    @property
    def session(self) -> Dtls12Session | None:
        """The DTLS 1.2 session to resume next time (see `DtlsClientConnection.session`)."""
        conn = self._conn
        return conn.session if isinstance(conn, DtlsClientConnection) else None

    @property
    def closed(self) -> bool:
        return self._conn.closed

    @property
    def info(self) -> HandshakeCompleted | None:
        return self._conn.info

    def connect(self, now: float) -> None:
        self._conn.connect(now)  # type: ignore[union-attr]

    def receive(self, data: bytes, addr: Hashable | None, now: float) -> None:
        if self._fallback and _answer_is_dtls12(data):
            self._fall_back(now)
        conn = self._conn
        try:
            conn.receive(data, addr, now)
        finally:
            if isinstance(conn, Dtls13ClientConnection) and conn.server_answered:
                self._fallback = False  # a DTLS 1.3 HelloRetryRequest or ServerHello came

    def _fall_back(self, now: float) -> None:
        old = self._conn
        assert isinstance(old, Dtls13ClientConnection)
        hello = old.first_client_hello
        assert hello is not None
        sequence = old.records.next_write_sequence(0)
        self._conn = DtlsClientConnection.after_dtls13_offer(
            self._config, self.peer, hello, sequence, now, keylog=self._keylog
        )
        self._fallback = False

    def datagrams_to_send(self) -> list[tuple[bytes, Hashable | None]]:
        return self._conn.datagrams_to_send()

    def get_timer(self) -> float | None:
        return self._conn.get_timer()

    def handle_timer(self, now: float) -> None:
        self._conn.handle_timer(now)

    def next_event(self) -> Event | None:
        return self._conn.next_event()

    def send(self, data: bytes) -> None:
        self._conn.send(data)

    def export_keying_material(
        self, label: bytes, length: int, context: bytes | None = None
    ) -> bytes:
        return self._conn.export_keying_material(label, length, context)

    # The connection ID calls of `Dtls13Connection` (RFC 9147 §9), for a DTLS 1.3 one.

    def new_connection_ids(
        self,
        cids: int | Sequence[bytes] = 1,
        usage: ConnectionIdUsage = ConnectionIdUsage.cid_spare,
    ) -> tuple[bytes, ...]:
        return self._dtls13("new_connection_ids()").new_connection_ids(cids, usage)

    def request_connection_ids(self, num_cids: int = 1) -> None:
        self._dtls13("request_connection_ids()").request_connection_ids(num_cids)

    def use_next_connection_id(self) -> bytes:
        return self._dtls13("use_next_connection_id()").use_next_connection_id()

    def _dtls13(self, call: str) -> Dtls13Connection:
        conn = self._conn
        if not isinstance(conn, Dtls13Connection):
            raise UsageError(f"{call} needs DTLS 1.3 (this connection is DTLS 1.2)")
        return conn

    def close(self) -> None:
        self._conn.close()


def _prepared_client(config: Any) -> _client.ClientContext:
    """A DTLS 1.3 client's context of ``config``, prepared for its connections
    (`Dtls13ClientConnection`), with its ClientHello's extensions encoded."""
    return _client.prepared_context(config, DTLS_VERSIONS)


def _prepared_client_offering_dtls12(config: Any) -> _client.ClientContext:
    """The same, its ClientHello offering DTLS 1.2 as well (its suites and extensions);
    without them when the configuration has no DTLS 1.2 suite to offer."""
    from dtlsgate.handshake.dtls12 import client as _client12
    from dtlsgate.handshake.tls13.common import DTLS_VERSIONS_WITH_FALLBACK

    try:
        ctx12 = _client12.ClientContext(config, None)
    except UsageError:
        return _prepared_client(config)
    ctx = _client.ClientContext(config, versions=DTLS_VERSIONS)
    ctx.versions = DTLS_VERSIONS_WITH_FALLBACK
    ctx.fallback_suites = tuple(s for s in ctx12.suites if s not in ctx.suites)
    ctx.fallback_extensions = _client12.fallback_extensions(ctx12)
    _client.hello_extensions(ctx)
    return ctx


# Any sans-I/O datagram connection the faces drive: they share one interface.
AnyDatagramConnection = (
    DtlsConnection | Dtls13Connection | DatagramClientConnection | Dtls13ServerConnection
)


def accept(
    admit: Admit | Dtls13Admit,
    config: Any,
    *,
    gate: Gate | None = None,
    keylog: Callable[[str], None] | None = None,
) -> DtlsServerConnection | Dtls13ServerConnection:
    """The server connection for a gate's admit: DTLS 1.3 for a `Dtls13Admit`, DTLS 1.2
    for an `Admit`; ``start(now)`` answers the admitted ClientHello. ``gate``: the gate of
    ``config`` that admitted it, whose prepared contexts the connection shares (without
    it, the connection prepares the config itself)."""
    if gate is not None and gate.config is not config:
        raise UsageError("the gate was made for another config")
    if isinstance(admit, Dtls13Admit):
        context13 = gate.dtls13_context if gate is not None else None
        return Dtls13ServerConnection.from_admit(admit, config, context=context13, keylog=keylog)
    context12 = gate.dtls12_context if gate is not None else None
    # By position: keywords to a class build a dict per connection (DtlsServerConnection).
    return DtlsServerConnection(admit, config, context12, keylog)
