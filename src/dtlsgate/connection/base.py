"""What the DTLS 1.2 and DTLS 1.3 connections share (`dtlsgate.connection.datagram`,
`dtlsgate.connection.datagram13`): the datagrams queued for the peer, the event queue and
its bound on undrained application data, the retransmission timer giving up, the alerts
taken from the peer, and the way out (close_notify, or the fatal alert of a `ProtocolError`).

Each version keeps its own records, flights and handshake engine; it provides ``_alert``,
which protects an alert in its record layer.
"""

from __future__ import annotations

from collections.abc import Callable, Hashable

from dtlsgate.connection.flight import Reassembler, RetransmitTimer
from dtlsgate.crypto.exporters import KeyingMaterialExporter, export
from dtlsgate.errors import AlertReceived, DecodeError, ProtocolError
from dtlsgate.events import ConnectionClosed, DataReceived, Event, HandshakeCompleted
from dtlsgate.wire.enums import AlertDescription, AlertLevel
from dtlsgate.wire.messages import Alert

# Application data records received and not yet taken with next_event(): beyond this many,
# new ones are dropped (counted in ``data_dropped``), as a full socket receive buffer drops
# datagrams; DTLS application data is unreliable anyway (RFC 6347 §4.2.4 and RFC 9147 §5.8
# retransmit flights only). A caller that never drains events cannot make us hold more than
# this many records of at most 2^14 bytes (16 MiB). Handshake and close events are always
# kept.
MAX_QUEUED_DATA = 1024


class BaseDtlsConnection:
    """What the connections of both DTLS versions share: outgoing datagrams, events, the
    retransmission timer's end, alerts.

    Slotted, as the DTLS 1.2 connections are: a server holds one per association for as
    long as the association lives (bench/memory.py)."""

    __slots__ = (
        "_events",
        "_exporter",
        "_keylog",
        "_mtu",
        "_outgoing",
        "_queued_data",
        "_reassembler",
        "_timer",
        "closed",
        "data_dropped",
        "handshake_complete",
        "info",
        "peer",
    )

    def __init__(
        self,
        reassembler: Reassembler,
        peer: Hashable | None,
        mtu: int,
        keylog: Callable[[str], None] | None,
    ) -> None:
        self._reassembler = reassembler
        self.peer = peer
        self._mtu = mtu
        self._keylog = keylog
        self._timer = RetransmitTimer()
        self._outgoing: list[bytes] = []
        # A list, not a deque: an empty list holds no item array (an empty deque holds a
        # 64-slot block, 624 bytes, for the association's lifetime), and it is rarely longer
        # than one event, so taking from its front costs no more.
        self._events: list[Event] = []
        self._queued_data = 0
        self.info: HandshakeCompleted | None = None
        self.handshake_complete = False
        self._exporter: KeyingMaterialExporter | None = None  # once the handshake completed
        self.closed = False
        self.data_dropped = 0

    def _alert(self, level: int, description: int) -> None:
        """Queue an alert record to the peer, protected in our current write epoch."""
        raise NotImplementedError

    @property
    def reassembler(self) -> Reassembler:
        """The handshake messages being reassembled (read-only view, for diagnostics)."""
        return self._reassembler

    # --- the sans-I/O interface -----------------------------------------------------------

    def datagrams_to_send(self) -> list[tuple[bytes, Hashable | None]]:
        out, self._outgoing = self._outgoing, []
        return [(d, self.peer) for d in out]

    def next_event(self) -> Event | None:
        """The oldest event not yet taken, or None. Take them after each ``receive``:
        beyond ``MAX_QUEUED_DATA`` undrained `DataReceived` events, new application data
        is dropped (``data_dropped`` counts it)."""
        if not self._events:
            return None
        event = self._events.pop(0)
        if type(event) is DataReceived:
            self._queued_data -= 1
        return event

    def export_keying_material(
        self, label: bytes, length: int, context: bytes | None = None
    ) -> bytes:
        """``length`` bytes of keying material bound to this connection's handshake, for
        ``label`` and ``context`` (RFC 5705 in DTLS 1.2, RFC 8446 §7.5 in DTLS 1.3; DTLS-SRTP
        takes 2 * (key + salt) bytes of ``b"EXTRACTOR-dtls_srtp"``, no context, RFC 5764
        §4.2). `StateError` before the handshake completed."""
        return export(self._exporter, label, length, context)

    def close(self) -> None:
        """Send close_notify (when the handshake got far enough) and close."""
        if self.closed:
            return
        self._alert(AlertLevel.WARNING, AlertDescription.close_notify)
        self.closed = True
        self._timer.stop()

    # --- what the peer sent, and the way out ------------------------------------------------

    def _data_received(self, data: bytes) -> None:
        if self._queued_data >= MAX_QUEUED_DATA:
            self.data_dropped += 1
            return
        self._queued_data += 1
        self._events.append(DataReceived(data))

    def _alert_record(self, data: bytes, epoch: int) -> bool:
        """An alert record from the peer; False when it is dropped. close_notify closes;
        a fatal alert closes and raises `AlertReceived`."""
        try:
            alert = Alert.decode(data)
        except DecodeError:
            return False
        if epoch == 0 and self.handshake_complete:
            return False  # a plaintext alert after the handshake is forgeable
        if alert.description == AlertDescription.close_notify:
            self.closed = True
            self._timer.stop()
            self._events.append(ConnectionClosed(AlertDescription.close_notify, "close_notify"))
        elif alert.level == AlertLevel.FATAL:
            self.closed = True
            self._timer.stop()
            raise AlertReceived(alert.description, alert.level)
        return True

    def _timed_out(self) -> None:
        """Our flight was sent ``MAX_FLIGHT_TRANSMISSIONS`` times unanswered: give up."""
        self.closed = True
        self._timer.stop()
        self._events.append(ConnectionClosed(None, "handshake timed out"))

    def _fail(self, exc: ProtocolError) -> None:
        """The one place where a peer's fault becomes the alert we send (STYLE.md 6, 7)."""
        if not self.closed:
            self._alert(AlertLevel.FATAL, exc.alert)
        self.closed = True
        self._timer.stop()
