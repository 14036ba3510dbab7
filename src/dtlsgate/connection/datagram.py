"""The sans-I/O DTLS 1.2 connection: datagrams in, datagrams and events out.

    conn.receive(data, addr, now)      # a datagram from the peer
    conn.datagrams_to_send()           # [(datagram, addr)] to put on the wire
    conn.get_timer() / handle_timer(now)
    conn.next_event()                  # HandshakeCompleted, DataReceived, ConnectionClosed
    conn.send(data) / conn.close()

``now`` is seconds since the Unix epoch (``time.time()``): it drives the retransmission
timer and is the time at which certificates are checked. Nothing here reads a clock, a
socket or the system's random generator. Take the events after each ``receive``: beyond
``MAX_QUEUED_DATA`` undrained application data records, new ones are dropped
(``data_dropped`` counts them), as a full socket buffer would.

Errors: records that fail any check are dropped silently (``records_dropped`` counts them).
A handshake violation sends a fatal alert and raises the `ProtocolError` (the alert is
mapped from the exception in ``_fail``, the one place that does it); a fatal alert from the
peer raises `AlertReceived`. Either way the connection is then closed. The event queue,
alerts and closing are those of every DTLS connection (`dtlsgate.connection.base`).
"""

from __future__ import annotations

from collections.abc import Callable, Hashable
from typing import Any

from dtlsgate.config import ClientConfig, ServerConfig
from dtlsgate.connection.base import MAX_QUEUED_DATA as MAX_QUEUED_DATA
from dtlsgate.connection.base import BaseDtlsConnection
from dtlsgate.connection.flight import (
    FlightItem,
    HandshakeMessage,
    OutgoingChangeCipherSpec,
    Reassembler,
    as_handshake_message,
    pack_flight,
)
from dtlsgate.crypto.certs import TrustStore, check_dtls12_identity
from dtlsgate.errors import DecodeError, ProtocolError, StateError, UsageError
from dtlsgate.events import HandshakeCompleted, SessionTicketReceived
from dtlsgate.gate.datagram import Admit
from dtlsgate.handshake.dtls12 import client as _client
from dtlsgate.handshake.dtls12 import server as _server
from dtlsgate.handshake.dtls12.common import Actions, ReceivedMessage, step
from dtlsgate.handshake.dtls12.resume import Dtls12Session
from dtlsgate.handshake.engine import (
    Complete,
    EndFlight,
    ExpectMessageSeq,
    InstallCipherState,
    KeyLog,
    Machine,
    SendChangeCipherSpec,
    SendWarning,
)
from dtlsgate.record.dtls12 import RecordLayer
from dtlsgate.wire.enums import (
    AlertLevel,
    ContentType,
    HandshakeType,
)
from dtlsgate.wire.handshake import (
    DTLS_HANDSHAKE_HEADER_LENGTH,
    DtlsHandshakeHeader,
    decode_dtls_handshake_fragments,
)
from dtlsgate.wire.messages import Alert, ClientHello
from dtlsgate.wire.record import (
    DTLS_RECORD_HEADER_LENGTH,
    DTLS_VERSION_MAJOR,
    DtlsRecord,
    split_dtls_records,
)

# Records of the next epoch that arrive before its keys (reordering: the peer's Finished
# overtaking its ClientKeyExchange) are kept, at most this many, and opened once the keys
# are installed (RFC 6347 §4.1: "MAY buffer"). A full flight has fewer records than this.
MAX_EARLY_RECORDS = 16


class DtlsConnection(BaseDtlsConnection):
    """What DTLS 1.2 server and client connections share: records, flights, early records,
    and the handshake machine each message is fed to: the server's or the client's
    (``_machine``, set by each subclass), in its context ``_ctx`` and its state ``_state``.

    Slotted, as the subclasses are: a server holds one per association for as long as the
    association lives (bench/memory.py)."""

    __slots__ = (
        "_building",
        "_building_epoch",
        "_ctx",
        "_early",
        "_flight",
        "_records",
        "_state",
        "records_dropped",
    )

    _machine: Machine[Callable[[Any, Any, ReceivedMessage, float], tuple[Any, Actions]]]
    _ctx: Any
    _state: Any

    def __init__(
        self,
        records: RecordLayer,
        reassembler: Reassembler,
        peer: Hashable | None,
        mtu: int,
        keylog: Callable[[str], None] | None,
    ) -> None:
        super().__init__(reassembler, peer, mtu, keylog)
        self._records = records
        self._flight: list[FlightItem] = []
        # The flight the handshake is building: its messages as the handshake machine sent
        # them, each in the flight's current epoch (`FlightItem`), and its ChangeCipherSpec
        # in the epoch it ends (0: a DTLS 1.2 flight starts in epoch 0).
        self._building: list[FlightItem] = []
        self._building_epoch = 0
        self._early: list[DtlsRecord] = []
        self.records_dropped = 0

    # --- the handshake machine (server or client) ---------------------------------------------

    def _is_new_hello_verify_request(
        self, header: DtlsHandshakeHeader, fragment: bytes, sequence_number: int
    ) -> bool:
        """Whether ``fragment``, a plaintext HelloVerifyRequest's, asks us to start over
        with a new cookie (only a client's connection is ever asked)."""
        return False

    @property
    def state_name(self) -> str:
        """The name of the handshake state (for diagnostics and tests)."""
        return type(self._state).__name__

    @property
    def record_layer(self) -> RecordLayer:
        """The record protection of this connection (read-only view, for diagnostics)."""
        return self._records

    @property
    def early_records(self) -> int:
        """Records of an epoch not yet keyed, held until its keys arrive."""
        return len(self._early)

    @property
    def expected_messages(self) -> frozenset[int]:
        """The handshake message types legal in the current state."""
        return frozenset(self._machine.row(type(self._state)))

    # --- the sans-I/O interface -----------------------------------------------------------

    def receive(self, data: bytes, addr: Hashable | None, now: float) -> None:
        """Process one datagram from the peer. Raises `ProtocolError` (after queueing the
        fatal alert) or `AlertReceived`; garbage is dropped silently."""
        if self.closed:
            return
        if self.handshake_complete:
            # The hot path: one application data record of the current epoch.
            plain = self._records.open_application_data(data)
            if plain is not None:
                self._data_received(plain)
                return
        try:
            retransmit = False
            for record in split_dtls_records(bytes(data)):
                retransmit |= self._record(record, now)
            # RFC 6347 §4.2.4: the peer retransmitting its previous flight means ours was
            # lost. Answered at once only when no timer of ours is running (our flight ended
            # the exchange); otherwise our timer resends it, and two sides answering each
            # other's retransmissions cannot feed a storm.
            if retransmit and self._flight and self._timer.deadline is None:
                self._send_flight(now, restart_timer=False)
        except ProtocolError as exc:
            self._fail(exc)
            raise

    def get_timer(self) -> float | None:
        """When ``handle_timer`` should be called next, or None."""
        return None if self.closed else self._timer.deadline

    def handle_timer(self, now: float) -> None:
        """Retransmit the current flight when its timer expired (RFC 6347 §4.2.4.1)."""
        deadline = self._timer.deadline
        if self.closed or deadline is None or now < deadline:
            return
        if self._timer.exhausted:
            self._timed_out()
            return
        self._timer.backoff(now)
        self._send_flight(now, restart_timer=False)

    def send(self, data: bytes) -> None:
        """Send ``data`` as one application data record."""
        if self.closed:
            raise StateError("the connection is closed")
        if not self.handshake_complete:
            raise StateError("send() before the handshake completed")
        if type(data) is not bytes:
            data = bytes(data)
        # Raises UsageError beyond MAX_PLAINTEXT_LENGTH bytes.
        self._outgoing.append(self._records.protect_application_data(data))

    # --- records ----------------------------------------------------------------------------

    def _record(self, record: DtlsRecord, now: float) -> bool:
        if record.version >> 8 != DTLS_VERSION_MAJOR:
            self.records_dropped += 1
            return False
        data = self._records.open(record)
        if data is None:
            # Dropped, or of an epoch whose keys we do not have yet (open returns None for
            # both; the epoch is looked up only then).
            epoch = record.epoch
            if (
                epoch == 1
                and not self._records.knows_epoch(epoch)
                and len(self._early) < MAX_EARLY_RECORDS
            ):
                self._early.append(record)
            else:
                self.records_dropped += 1
            return False
        # Each content type to its handler by its wire number (one dict look-up, no
        # ContentType read per record); an unknown content type is dropped.
        handler = _RECORD_HANDLERS.get(record.content_type)
        if handler is None:
            self.records_dropped += 1
            return False
        return handler(self, data, record.epoch, record.sequence_number, now)

    def _application_data_record(
        self, data: bytes, epoch: int, sequence_number: int, now: float
    ) -> bool:
        if epoch > 0 and self.handshake_complete:
            self._data_received(data)
        else:
            self.records_dropped += 1
        return False

    def _peer_alert_record(self, data: bytes, epoch: int, sequence_number: int, now: float) -> bool:
        if not self._alert_record(data, epoch):
            self.records_dropped += 1
        return False

    def _change_cipher_spec_record(
        self, data: bytes, epoch: int, sequence_number: int, now: float
    ) -> bool:
        # ChangeCipherSpec needs no action: DTLS records carry their epoch.
        if data != b"\x01":
            self.records_dropped += 1
        return False

    def _handshake_record(self, data: bytes, epoch: int, sequence_number: int, now: float) -> bool:
        if epoch == 0 and self.handshake_complete:
            # RFC 6347 §4.1: after the handshake the peer's handshake messages (renegotiation,
            # its retransmitted Finished) come in the current epoch; a plaintext one is
            # forgeable by anyone who knows the addresses and must not reach the state
            # machine (an unexpected_message would tear the connection down).
            self.records_dropped += 1
            return False
        try:
            fragments = decode_dtls_handshake_fragments(data)
        except DecodeError:
            if epoch == 0:
                self.records_dropped += 1  # unauthenticated: garbage, not a violation
                return False
            raise
        # A record holding one message (the usual one) is delivered at once when that is the
        # whole of the message expected next and nothing else is buffered: it has nothing to
        # wait for, so it does not enter the reassembler's table.
        single = len(fragments) == 1 and not self.closed
        retransmit = False
        for header, fragment in fragments:
            if (
                epoch == 0
                and header.msg_type == HandshakeType.HELLO_VERIFY_REQUEST
                and self._is_new_hello_verify_request(header, fragment, sequence_number)
            ):
                self._reassembler.restart(header.message_seq)
            if single:
                message = self._reassembler.take_whole(header, fragment, epoch)
                if message is not None:
                    self._deliver(message, now)
                    return False
            retransmit |= self._reassembler.add(header, fragment, epoch)
        self._pump(now)
        return retransmit

    def _pump(self, now: float) -> None:
        while not self.closed:
            message = self._reassembler.pop()
            if message is None:
                return
            # RFC 6347 §4.2.4: the timer keeps running until the peer's whole flight has
            # arrived (our next flight restarts or stops it in _deliver). Stopping it at the
            # peer's first message let a peer that sent half a flight hold us forever.
            self._deliver(message, now)

    def _deliver(self, message: HandshakeMessage, now: float) -> None:
        """Feed ``message`` to the handshake machine and carry out what it asks for."""
        self._state, actions = step(self._machine, self._ctx, self._state, message, now)
        self._run(actions, now)

    def _run(self, actions: Actions, now: float) -> None:
        """Carry out what the handshake machine asked for, in order."""
        flight_sent = read_installed = False
        done: Complete[HandshakeCompleted] | None = None
        for action in actions:
            # By exact type (the action classes are final), the most frequent first: an
            # identity test per kind instead of an isinstance call.
            if type(action) is bytes:
                # A whole message, sent in the flight's current epoch (see `FlightItem`).
                self._building.append(action)
            elif type(action) is InstallCipherState:
                self._records.install_read(1, action.cipher)
                read_installed = True
            elif type(action) is EndFlight:
                self._end_flight(now, action.expect_reply)
                flight_sent = True
            elif type(action) is SendChangeCipherSpec:
                # RFC 5246 §7.1: the flight's messages after it go in the next epoch.
                self._building.append(OutgoingChangeCipherSpec(self._building_epoch))
                self._building_epoch += 1
                if action.cipher is not None:
                    self._records.install_write(1, action.cipher)
            elif type(action) is KeyLog:
                if self._keylog is not None:
                    self._keylog(action.line())
            elif type(action) is Complete:
                done = action
            elif type(action) is ExpectMessageSeq:
                self._reassembler.restart(action.message_seq)
            elif type(action) is SendWarning:
                self._alert(AlertLevel.WARNING, action.description)
        if done is not None:
            self._complete(done, flight_sent)
        if read_installed and self._early:
            early, self._early = self._early, []
            for record in early:
                self._record(record, now)

    def _end_flight(self, now: float, expect_reply: bool) -> None:
        self._flight, self._building, self._building_epoch = self._building, [], 0
        self._send_flight(now, restart_timer=expect_reply)
        if not expect_reply:
            self._timer.stop()  # our last flight: resent only on the peer's retransmission

    def _complete(self, done: Complete[HandshakeCompleted], flight_sent: bool) -> None:
        self.handshake_complete = True
        self.info = done.info
        self._exporter = done.exporter
        self._records.write_epoch = 1
        self._timer.stop()
        if not flight_sent:
            # The peer's flight ended the handshake. RFC 6347 §4.2.4: in FINISHED only
            # the node that sent the last flight answers a retransmission of its peer's
            # last flight; were we to answer the peer's retransmitted last flight with
            # ours too, each answer would draw another, forever.
            self._flight = []
        self._events.append(self.info)
        if done.session is not None:
            self._new_session(done.session)

    def _new_session(self, session: object) -> None:
        pass

    def _send_flight(self, now: float, *, restart_timer: bool) -> None:
        self._outgoing.extend(pack_flight(self._flight, self._records, self._mtu))
        if restart_timer:
            self._timer.start(now)

    def _alert(self, level: int, description: int) -> None:
        epoch = self._records.write_epoch
        body = Alert(level, description).encode()
        self._outgoing.append(self._records.protect(ContentType.ALERT, body, epoch))


# A record's handler by its content type's number (RFC 6347 §4.1); each returns whether the
# record held a retransmission of the peer's previous flight.
_RECORD_HANDLERS: dict[int, Callable[[DtlsConnection, bytes, int, int, float], bool]] = {
    ContentType.HANDSHAKE: DtlsConnection._handshake_record,
    ContentType.APPLICATION_DATA: DtlsConnection._application_data_record,
    ContentType.ALERT: DtlsConnection._peer_alert_record,
    ContentType.CHANGE_CIPHER_SPEC: DtlsConnection._change_cipher_spec_record,
}


class DtlsServerConnection(DtlsConnection):
    """A server connection, created from the gate's `Admit`: the cookie was verified there
    and is not checked again. ``context``: the config prepared for DTLS 1.2 handshakes
    (`ServerContext`), shared by the connections of one config (the gate's
    ``dtls12_context``); without it the connection prepares the config itself.

    ``context`` and ``keylog`` may be given by position, as `accept` and the benches give
    them: a class called with keywords builds a dict of them (for ``__init__`` to unpack
    again) per connection made."""

    __slots__ = ("_admit",)
    _machine = _server.SERVER
    _ctx: _server.ServerContext
    _state: _server.ServerState

    def __init__(
        self,
        admit: Admit,
        config: ServerConfig,
        context: _server.ServerContext | None = None,
        keylog: Callable[[str], None] | None = None,
    ) -> None:
        if context is not None and context.config is not config:
            raise UsageError("the ServerContext was made for another config")
        ctx = context or _server.ServerContext(config)
        self._ctx = ctx.logging_keys() if keylog is not None else ctx
        # RFC 6347 §4.2.2: after a stateless HelloVerifyRequest, the ServerHello's
        # message_seq is the second ClientHello's.
        self._state = _server.start(ctx, admit.message_seq, admit.client_hello)
        # RFC 6347 §4.2.1: the ServerHello's record reuses the ClientHello record's
        # sequence number; the ClientHello itself counts as seen (made so, not marked after).
        seq = admit.record_sequence_number
        records = RecordLayer(seq, seq)
        super().__init__(records, Reassembler(admit.message_seq), admit.peer, config.mtu, keylog)
        self._admit: Admit | None = admit

    def start(self, now: float) -> None:
        """Process the admitted ClientHello (and any records after it in the datagram):
        queues the server's first flight. Raises like `receive`."""
        admit = self._admit
        if admit is None:
            raise StateError("start() was already called")
        self._admit = None
        d = admit.datagram
        first_end = DTLS_RECORD_HEADER_LENGTH + int.from_bytes(d[11:13], "big")
        try:
            if admit.client_hello is not None:
                # The whole ClientHello as received: its transcript form (RFC 6347 §4.2.6).
                message = admit.client_hello_message
                body = message[DTLS_HANDSHAKE_HEADER_LENGTH:]
                hello = as_handshake_message((1, admit.message_seq, body, 0, message))
                self._reassembler.next_seq = admit.message_seq + 1
                self._deliver(hello, now)
            else:
                self._handshake_record(
                    d[DTLS_RECORD_HEADER_LENGTH:first_end], 0, admit.record_sequence_number, now
                )
        except ProtocolError as exc:
            self._fail(exc)
            raise
        if first_end < len(d):
            self.receive(d[first_end:], admit.peer, now)


class DtlsClientConnection(DtlsConnection):
    """A client connection; ``connect(now)`` queues the first ClientHello."""

    __slots__ = ("_first_flight", "_flight_first_sequence", "_session", "_started")
    _machine = _client.CLIENT
    _ctx: _client.ClientContext
    _state: _client.ClientState

    def __init__(
        self,
        config: ClientConfig,
        peer: Hashable | None = None,
        *,
        keylog: Callable[[str], None] | None = None,
    ) -> None:
        check_dtls12_identity(config.certificate_chain, config.private_key)
        trust: TrustStore | None = None
        if (config.pinned_keys or config.certificate_fingerprints) and not config.cafile:
            # RFC 7250: raw public keys checked against the pins; X.509 certificates by
            # their fingerprint alone (RFC 8122), no CA and no name.
            pass
        elif not config.insecure and config.psk is None:
            if not config.server_name:
                raise UsageError("set server_name to verify the server, or insecure=True")
            trust = config.trust_store()  # loaded once per config
        ctx = _client.ClientContext(config, trust)
        self._ctx = ctx.logging_keys() if keylog is not None else ctx
        self._session: Dtls12Session | None = self._ctx.session
        # The first ClientHello is made now (its random drawn), sent by connect().
        self._state, self._first_flight = _client.start(self._ctx)
        super().__init__(RecordLayer(), Reassembler(), peer, config.mtu, keylog)
        self._started = False
        # The epoch-0 record sequence number our current flight's first transmission began
        # with: every record we sent since belongs to that flight.
        self._flight_first_sequence = 0

    @classmethod
    def after_dtls13_offer(
        cls,
        config: ClientConfig,
        peer: Hashable | None,
        hello: ClientHello,
        record_sequence: int,
        now: float,
        *,
        keylog: Callable[[str], None] | None = None,
    ) -> DtlsClientConnection:
        """Go on in DTLS 1.2 from ``hello``, a ClientHello offering DTLS 1.3 and 1.2 that
        was sent (its last record numbered ``record_sequence - 1``), because the server
        answered in DTLS 1.2: ``hello`` is our first flight, retransmitted on our timer."""
        conn = cls(config, peer, keylog=keylog)
        conn._started = True
        conn._state, flight = _client.start_after_dtls13_offer(conn._ctx, hello)
        conn._first_flight = []
        conn._records = RecordLayer(first_write_sequence=record_sequence)
        conn._run(flight, now)
        conn._outgoing.clear()  # sent already, by the DTLS 1.3 connection
        return conn

    def _new_session(self, session: object) -> None:
        assert isinstance(session, Dtls12Session)
        self._session = session
        self._events.append(SessionTicketReceived(session))

    @property
    def session(self) -> Dtls12Session | None:
        """The session to resume with next time (like ``ssl.SSLSocket.session``): the one
        the server gave in this handshake (also reported by a `SessionTicketReceived`
        event), else the one offered in ``ClientConfig.session_ticket``; pass it as
        ``ClientConfig(session_ticket=...)``. None when there is none to resume."""
        return self._session

    def _is_new_hello_verify_request(
        self, header: DtlsHandshakeHeader, fragment: bytes, sequence_number: int
    ) -> bool:
        return (
            header.is_whole
            # RFC 6347 §4.2.1: a server answers with the record sequence number of the
            # ClientHello it read. One from before our current ClientHello answers an
            # earlier transmission of the first one, late (its cookie may differ: the
            # server's clock moved on); taking it for a refusal of our cookie would
            # restart a handshake the server has already begun.
            and sequence_number >= self._flight_first_sequence
            and _client.is_new_hello_verify_request(
                self._state, fragment[DTLS_HANDSHAKE_HEADER_LENGTH:]
            )
        )

    def _end_flight(self, now: float, expect_reply: bool) -> None:
        self._flight_first_sequence = self._records.next_write_sequence(0)
        super()._end_flight(now, expect_reply)

    def connect(self, now: float) -> None:
        if self._started:
            raise StateError("connect() was already called")
        self._started = True
        self._run(self._first_flight, now)
        self._first_flight = []
