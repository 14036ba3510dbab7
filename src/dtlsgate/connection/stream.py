"""Sans-I/O TLS 1.3 connections over a byte stream: `ServerConnection` and
`ClientConnection`.

The application feeds received bytes with ``receive_data(data, now)``, takes bytes to
write with ``data_to_send()`` and events with ``next_event()``; ``send(data)``,
``key_update()`` and ``close()`` queue records. ``now`` (seconds since the epoch) is only
used to judge certificate validity and ticket ages. Nothing here touches a socket or a
file: ``keylog``, when given, is called with each NSS key log line (``SSLKEYLOGFILE``
format); the adapters pass one that appends to ``config.keylog_file``.

Errors (STYLE.md practice 7): when the peer breaks the protocol the connection queues the
alert the error names (RFC 8446 §6.2; the mapping from error to alert is the error class,
``dtlsgate.errors``), enters its terminal state and raises the `ProtocolError`. A fatal
alert from the peer raises `AlertReceived`. Calls made in the wrong state raise `StateError`.

Closing (RFC 8446 §6.1) is per direction. ``close()`` sends close_notify and closes our
sending side only: ``send()`` and ``key_update()`` raise `StateError` afterwards, while
``receive_data`` goes on delivering the peer's data until its own close_notify
(`ConnectionClosed`) or a fatal alert. After the peer's close_notify we may still send,
until we ``close()`` too.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Callable
from typing import Any

from dtlsgate.crypto.exporters import KeyingMaterialExporter, export
from dtlsgate.errors import (
    AlertReceived,
    DecodeError,
    ProtocolError,
    StateError,
    UnexpectedMessage,
    UsageError,
)
from dtlsgate.events import (
    ClientCertificateReceived,
    ConnectionClosed,
    DataReceived,
    Event,
    HandshakeCompleted,
    SessionTicketReceived,
)
from dtlsgate.gate.results import StreamAdmit
from dtlsgate.handshake.engine import Machine, handler_for
from dtlsgate.handshake.tls13 import client as _client
from dtlsgate.handshake.tls13 import server as _server
from dtlsgate.handshake.tls13.common import (
    Actions,
    ClientAuthenticated,
    Complete,
    HandshakeInfo,
    InstallKey,
    KeyLog,
    OwnRecordLimit,
    PeerRecordLimit,
    SendChangeCipherSpec,
    SendMessage,
    SkipEarlyData,
    TicketReceived,
)
from dtlsgate.handshake.tls13.post_handshake import Connected, update_write
from dtlsgate.record.tls13 import (
    MAX_PLAINTEXT,
    HandshakeReassembler,
    RecordProtection,
    StreamRecordLayer,
)
from dtlsgate.wire.enums import AlertDescription, AlertLevel, ContentType, ProtocolVersion
from dtlsgate.wire.messages import Alert


def completed(
    info: HandshakeInfo, version: ProtocolVersion = ProtocolVersion.TLS13
) -> HandshakeCompleted:
    """The engine's report of a finished TLS 1.3 (or DTLS 1.3) handshake as the
    connection's event."""
    # By position, in the event's field order: a class called with keywords builds a dict
    # for its ``__init__`` to unpack again.
    return HandshakeCompleted(
        version,
        info.cipher_suite,
        info.alpn_protocol,
        info.server_name,
        info.peer_certificates,
        info.psk_identity,
        info.group,
        info.signature_scheme,
        True,  # extended_master_secret: TLS 1.3's key schedule binds the whole transcript
        info.hello_retry,
        info.resumed,
        info.peer_raw_public_key,
        info.srtp_profile,
    )


class TlsConnection:
    """What server and client connections share: records, reassembly, actions, events.

    Events are queued by ``receive_data`` and taken by ``next_event``. The queue has no
    bound of its own (as aioquic's ``QuicConnection``): the caller must drain
    ``next_event()`` after each ``receive_data``, as the adapters do. Between two drains it
    holds no more than the bytes fed meanwhile produce: one `DataReceived` per non-empty
    application data record, never larger than that record's plaintext (empty records
    queue nothing); one `SessionTicketReceived` per NewSessionTicket message; a single
    `HandshakeCompleted` and `ConnectionClosed`. A named count beyond which the connection
    fails was rejected: the caller already bounds the queue by how much it feeds before
    draining, and any count low enough to matter would fail a caller that legitimately
    feeds one large read at once.

    State, as booleans: ``closed`` -- we send nothing more (we sent close_notify, or a
    fatal alert went either way); ``failed`` -- terminal (a fatal alert either way, or
    ``close()`` before the handshake completed, which abandons it): ``receive_data``
    raises `StateError`; ``peer_closed`` -- the peer sent close_notify, what it sends
    afterwards is ignored.
    """

    def __init__(
        self,
        ctx: Any,
        state: Any,
        machine: Machine[Any],
        keylog: Callable[[str], None] | None = None,
    ) -> None:
        self._ctx = ctx
        self._keylog = keylog
        self._state = state
        self._machine = machine
        # The protection of the records we read, as an epoch (engine.py's numbering: 0
        # plaintext, 2 handshake keys, 3 and up application keys): the engine's epoch rule
        # checks each handshake message against it.
        self._read_epoch = 0
        self._records = StreamRecordLayer()
        self._reassembler = HandshakeReassembler()
        self._out = bytearray()
        self._events: deque[Event] = deque()
        self._initial_record = False
        self.info: HandshakeCompleted | None = None
        self._exporter: KeyingMaterialExporter | None = None  # once the handshake completed
        self.closed = False  # we send nothing more: close_notify sent, or failed
        self.failed = False  # terminal: a fatal alert either way, or the handshake abandoned
        self.peer_closed = False

    # -- public API -------------------------------------------------------------------------

    @property
    def state(self) -> object:
        """The handshake engine's current state (read-only view, for diagnostics)."""
        return self._state

    @property
    def record_layer(self) -> StreamRecordLayer:
        """The record layer of this connection (read-only view, for diagnostics)."""
        return self._records

    @property
    def reassembler(self) -> HandshakeReassembler:
        """Handshake messages being joined from records (read-only view, for diagnostics)."""
        return self._reassembler

    @property
    def handshake_complete(self) -> bool:
        return self.info is not None

    @property
    def state_name(self) -> str:
        return type(self._state).__name__

    def receive_data(self, data: bytes, now: float) -> None:
        """Process bytes from the peer; events become available from ``next_event``."""
        if self.failed:
            raise StateError("connection failed or was closed during the handshake")
        if self.peer_closed:
            # RFC 8446 §6.1: "Any data received after a closure alert has been received MUST
            # be ignored." Not buffered either: a peer could otherwise grow it forever.
            return
        self._records.feed(data)
        try:
            while not self.peer_closed and (record := self._records.next_record()) is not None:
                self._on_record(record.content_type, record.fragment, now)
            if self.peer_closed:
                self._records.discard()
        except ProtocolError as exc:
            self._fail(exc.alert)
            raise

    def data_to_send(self) -> bytes:
        out = bytes(self._out)
        self._out.clear()
        return out

    def next_event(self) -> Event | None:
        return self._events.popleft() if self._events else None

    def send(self, data: bytes) -> None:
        """Queue application data (RFC 8446 §5.1: after the handshake)."""
        if self.closed:
            raise StateError("send() after close(): our side of the connection is closed")
        if not self.handshake_complete:
            raise StateError("send() needs a completed handshake")
        if not isinstance(data, bytes | bytearray | memoryview):
            raise UsageError(f"send() takes bytes, not {type(data).__name__}")
        if data:
            self._out += self._records.encode(ContentType.APPLICATION_DATA, bytes(data))

    def export_keying_material(
        self, label: bytes, length: int, context: bytes | None = None
    ) -> bytes:
        """``length`` bytes of keying material bound to this connection's handshake, for
        ``label`` and ``context`` (RFC 8446 §7.5: no context is an empty one). `StateError`
        before the handshake completed."""
        return export(self._exporter, label, length, context)

    def key_update(self, request_peer: bool = True) -> None:
        """Send a KeyUpdate (RFC 8446 §4.6.3) and switch our sending key."""
        if self.closed or not isinstance(self._state, Connected):
            raise StateError("key_update() needs a completed, open connection")
        self._state, actions = update_write(self._state, request_peer)
        self._run(actions)

    def close(self) -> None:
        """Send close_notify (RFC 8446 §6.1) and close our sending side; receiving goes on
        until the peer's close_notify. Before the handshake completed it abandons the
        handshake: the connection is then terminal. Calling it again does nothing."""
        if not self.closed:
            self._send_alert(AlertLevel.WARNING, AlertDescription.close_notify)
            self.closed = True
            if not self.handshake_complete:
                self.failed = True

    # -- internals --------------------------------------------------------------------------

    def _on_record(self, content_type: int, fragment: bytes, now: float) -> None:
        # RFC 8446 §5.1: "if a handshake message is split over two or more records, there
        # MUST NOT be any other records between them."
        if content_type != ContentType.HANDSHAKE and self._reassembler.pending:
            raise UnexpectedMessage("record interleaved with a fragmented handshake message")
        if content_type == ContentType.HANDSHAKE:
            self._reassembler.feed(fragment)
            while (msg := self._reassembler.next_message()) is not None:
                self._on_message(*msg, now)
        elif content_type == ContentType.ALERT:
            self._on_alert(fragment)
        else:
            # RFC 8446 §5.1 / §2: application data only once the handshake is complete.
            if not self.handshake_complete:
                raise UnexpectedMessage("application data before the handshake completed")
            if fragment:
                if isinstance(self._state, Connected):
                    self._state.peer_key_updates = 0
                self._events.append(DataReceived(fragment))

    def _on_message(self, msg_type: int, body: bytes, raw: bytes, now: float) -> None:
        handler = handler_for(self._machine, self._state, msg_type, self._read_epoch)
        self._state, actions = handler(self._ctx, self._state, body, raw, now)
        self._run(actions)

    def _on_alert(self, fragment: bytes) -> None:
        try:
            alert = Alert.decode(fragment)
        except DecodeError:
            raise
        if alert.description == AlertDescription.close_notify:
            self.peer_closed = True
            self._events.append(ConnectionClosed())
            return
        if alert.description == AlertDescription.user_canceled:
            return  # RFC 8446 §6.1: followed by close_notify; nothing to do.
        # RFC 8446 §6.2: every other alert is fatal, whatever its level.
        self.closed = self.failed = True
        raise AlertReceived(alert.description, alert.level)

    def _run(self, actions: Actions) -> None:
        for action in actions:
            if self.closed and _sends(action):
                # RFC 8446 §6.1: nothing follows our close_notify. The one message this
                # drops is the answer to a KeyUpdate with update_requested, owed only
                # "prior to sending its next Application Data record" (§4.6.3): none comes.
                continue
            # By exact type (the action classes are final), the most frequent first: an
            # identity test per kind instead of an isinstance call.
            if type(action) is SendMessage:
                initial, self._initial_record = self._initial_record, False
                self._out += self._records.encode(
                    ContentType.HANDSHAKE, action.data, initial=initial
                )
            elif type(action) is InstallKey:
                self._install(action)
            elif type(action) is KeyLog:
                if self._keylog is not None:
                    self._keylog(action.line())
            elif type(action) is SendChangeCipherSpec:
                self._out += self._records.change_cipher_spec()
            elif type(action) is Complete:
                self.info = completed(action.info)
                self._exporter = action.exporter
                # RFC 8446 §5: a CCS after the peer's Finished is unexpected_message.
                self._records.ccs_allowed = False
                self._events.append(self.info)
            elif type(action) is OwnRecordLimit:
                self._records.receive_limit = action.limit
            elif type(action) is SkipEarlyData:
                self._records.early_data_skip = action.limit or None
            elif type(action) is PeerRecordLimit:
                self._records.send_limit = min(action.limit, MAX_PLAINTEXT + 1)
            elif type(action) is TicketReceived:
                self._events.append(SessionTicketReceived(action.ticket))
            elif type(action) is ClientAuthenticated:
                self._events.append(ClientCertificateReceived(action.chain))

    def _install(self, action: InstallKey) -> None:
        key, iv = action.schedule.traffic_keys(action.secret)
        protection = RecordProtection(self._ctx.provider.aead(action.aead, key), iv)
        if action.write:
            self._records.write = protection
            return
        # RFC 8446 §5.1: handshake messages MUST NOT span a key change.
        if self._reassembler.pending:
            raise UnexpectedMessage("handshake message spans a key change")
        self._records.read = protection
        self._read_epoch = 2 if self._read_epoch == 0 else self._read_epoch + 1

    def _send_alert(self, level: AlertLevel, description: AlertDescription) -> None:
        self._out += self._records.encode(ContentType.ALERT, Alert(level, description).encode())

    def _fail(self, alert: AlertDescription) -> None:
        # After our close_notify the alert is not sent (nothing follows close_notify,
        # RFC 8446 §6.1); the connection still becomes terminal and the error is raised.
        if not self.closed:
            self._send_alert(AlertLevel.FATAL, alert)
        self.closed = self.failed = True


def _sends(action: Any) -> bool:
    """Whether ``action`` writes to the peer (a record, or our next sending key)."""
    if isinstance(action, InstallKey):
        return action.write
    return isinstance(action, SendMessage | SendChangeCipherSpec)


class ServerConnection(TlsConnection):
    """The server side. Pass a shared ``context`` (`ServerContext`) when creating many
    connections from one config, to avoid re-encoding the certificate chain each time."""

    def __init__(
        self,
        config: Any,
        *,
        context: _server.ServerContext | None = None,
        keylog: Callable[[str], None] | None = None,
    ) -> None:
        ctx = context or _server.ServerContext(config)
        if keylog is not None:
            ctx = ctx.logging_keys()
        super().__init__(ctx, _server.SERVER_START, _server.SERVER, keylog)

    def request_client_certificate(self) -> None:
        """Ask the client for its certificate now (RFC 8446 §4.6.2, post-handshake
        authentication): a `ClientCertificateReceived` event follows once its Certificate,
        CertificateVerify and Finished verified (against ``config.cafile`` and/or
        ``config.certificate_fingerprints``). Needs a client that sent post_handshake_auth,
        a CA file or fingerprints, and no request already pending."""
        state = self._state
        if self.closed or type(state) is not Connected:
            raise StateError("request_client_certificate() needs an open connection, idle")
        if not state.post_handshake_auth:
            raise StateError("the client did not offer post_handshake_auth")
        if self._ctx.client_cas is None and self._ctx.client_fingerprints is None:
            raise UsageError(
                "request_client_certificate() needs config.cafile (client CAs) or "
                "config.certificate_fingerprints"
            )
        self._state, actions = _server.request_certificate(self._ctx, state)
        self._run(actions)

    @classmethod
    def from_admit(
        cls,
        config: Any,
        admit: StreamAdmit,
        now: float,
        *,
        context: _server.ServerContext | None = None,
        keylog: Callable[[str], None] | None = None,
    ) -> ServerConnection:
        """Continue a handshake the stateless gate admitted (``gate.results.StreamAdmit``):
        the ServerHello flight is queued at once; the cookie is not verified again."""
        conn = cls(config, context=context, keylog=keylog)
        try:
            conn._state, actions = _server.after_stateless_retry(conn._ctx, admit, now)
            conn._run(actions)
            conn._records.feed(admit.remaining)
        except ProtocolError as exc:
            conn._fail(exc.alert)
            raise
        return conn


class ClientConnection(TlsConnection):
    """The client side; ``start()`` queues the ClientHello."""

    def __init__(
        self,
        config: Any,
        *,
        context: _client.ClientContext | None = None,
        keylog: Callable[[str], None] | None = None,
    ) -> None:
        # Without a context given, the config's own, prepared at its first connection.
        ctx = context or config.prepared(_client.prepared_context)
        if keylog is not None:
            ctx = ctx.logging_keys()
        super().__init__(ctx, None, _client.CLIENT, keylog)
        self._ticket = _client.session_ticket(config)

    def start(self, now: float | None = None) -> None:
        """Queue the ClientHello; ``now`` (seconds since the epoch) is needed when the
        config holds a session ticket to offer (its age goes into the ClientHello)."""
        if self._state is not None:
            raise StateError("start() was already called")
        self._state, actions = _client.start(self._ctx, now, self._ticket)
        # RFC 8446 §5.1: the initial ClientHello may carry record version 0x0301.
        self._initial_record = True
        self._run(actions)
