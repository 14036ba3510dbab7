"""Blocking TLS 1.3 over TCP sockets: ``connect(host, port, config)`` and
``accept(listening_socket, config)`` return a `TlsSocket`. An adapter: the only TLS code
here is the sans-I/O connection it drives; it reads the clock for ``now``."""

from __future__ import annotations

import contextlib
import socket
import time
from collections import deque
from typing import Any

from dtlsgate.connection.stream import ClientConnection, ServerConnection, TlsConnection
from dtlsgate.errors import StateError, UsageError
from dtlsgate.events import (
    ConnectionClosed,
    DataReceived,
    HandshakeCompleted,
    SessionTicketReceived,
)
from dtlsgate.gate.results import Drop, Refuse, StreamAdmit
from dtlsgate.gate.stream import StatelessGate, alert_record
from dtlsgate.io.keylog import keylog_writer
from dtlsgate.wire.enums import AlertDescription

READ_SIZE = 65536
# RFC 8446 §4.6.1 lets a server send NewSessionTickets at any time and any number of them;
# a client resumes with one (the newest), so the adapters keep the newest 8 and forget
# older ones instead of growing a list for as long as the connection lives.
MAX_TICKETS_KEPT = 8


class TlsSocket:
    """A connected TLS 1.3 stream over a TCP socket, with a blocking handshake."""

    def __init__(self, sock: socket.socket, conn: TlsConnection) -> None:
        self.sock = sock
        self.conn = conn
        self._buffer = bytearray()
        self._eof = False
        # Session tickets the server sent (RFC 8446 §4.6.1), newest last: pass one as
        # ``ClientConfig(session_ticket=...)`` to resume.
        self.tickets: deque[Any] = deque(maxlen=MAX_TICKETS_KEPT)

    @property
    def info(self) -> HandshakeCompleted | None:
        return self.conn.info

    def _flush(self) -> None:
        out = self.conn.data_to_send()
        if out:
            self.sock.sendall(out)

    def _pump(self) -> bool:
        """Read once from the socket and process it; False at end of stream."""
        self._flush()
        data = self.sock.recv(READ_SIZE)
        if not data:
            self._eof = True
            return False
        try:
            self.conn.receive_data(data, time.time())
        finally:
            self._flush()
        while (event := self.conn.next_event()) is not None:
            if isinstance(event, DataReceived):
                self._buffer += event.data
            elif isinstance(event, ConnectionClosed):
                self._eof = True
            elif isinstance(event, SessionTicketReceived):
                self.tickets.append(event.ticket)
        return True

    def do_handshake(self) -> HandshakeCompleted:
        while not self.conn.handshake_complete:
            if not self._pump():
                raise ConnectionError("peer closed the connection during the handshake")
        self._flush()
        assert self.conn.info is not None
        return self.conn.info

    def recv(self, n: int = READ_SIZE) -> bytes:
        """Up to ``n`` bytes of application data; b"" once the peer closed."""
        if n < 0:
            raise UsageError("recv(n) needs n >= 0")
        while not self._buffer and not self._eof:
            self._pump()
        out = bytes(self._buffer[:n])
        del self._buffer[:n]
        return out

    def sendall(self, data: bytes) -> None:
        self.conn.send(data)
        self._flush()

    def close(self) -> None:
        try:
            if not self.conn.closed:
                self.conn.close()
                self._flush()
        except (OSError, StateError):
            pass
        finally:
            self.sock.close()

    def _flush_quietly(self) -> None:
        """Send what is queued (an alert after a failure), ignoring a broken socket."""
        with contextlib.suppress(OSError):
            self._flush()

    def __enter__(self) -> TlsSocket:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def connect(host: str, port: int, config: Any, *, timeout: float | None = 10.0) -> TlsSocket:
    """Open TCP to ``host:port`` and complete a TLS 1.3 handshake as client."""
    sock = socket.create_connection((host, port), timeout=timeout)
    conn = ClientConnection(config, keylog=keylog_writer(config.keylog_file))
    conn.start(time.time())
    return _handshake(TlsSocket(sock, conn))


def _handshake(tls: TlsSocket) -> TlsSocket:
    """Complete ``tls``'s handshake; when it fails, send what is queued (the alert) and close
    the socket before the exception goes on."""
    try:
        tls.do_handshake()
    except BaseException:
        tls._flush_quietly()
        tls.sock.close()
        raise
    return tls


def stream_peer(address: Any) -> Any:
    """What a stream's cookie binds to: the client's IP address. Not its port: a client may
    send ClientHello2 on a new TCP connection (and so from a new port), possibly to another
    server of the fleet."""
    return address[0] if isinstance(address, tuple) else address


def stateless_accept(sock: socket.socket, peer: Any, gate: StatelessGate) -> ServerConnection:
    """Run the stateless gate on a freshly accepted stream until a ClientHello2 is admitted:
    HelloRetryRequests are sent back and nothing is kept but the unread bytes."""
    buffer = b""
    while True:
        data = sock.recv(READ_SIZE)
        if not data:
            raise ConnectionError("peer closed the connection before ClientHello2")
        buffer += data
        try:
            result = gate.receive(buffer, peer, time.time())
        except UsageError:
            # An application cookie callback failed (RFC 8446 §6.2 internal_error).
            sock.sendall(alert_record(AlertDescription.internal_error))
            raise
        if isinstance(result, Drop):  # the ClientHello is incomplete
            continue
        if isinstance(result, Refuse):
            sock.sendall(result.data)
            raise ConnectionError(f"ClientHello refused: {result.detail}")
        if isinstance(result, StreamAdmit):
            now = time.time()
            keylog = keylog_writer(gate.config.keylog_file)
            return ServerConnection.from_admit(
                gate.config, result, now, context=gate.context, keylog=keylog
            )
        sock.sendall(result.data)
        buffer = b""


def accept(
    listener: socket.socket,
    config: Any,
    *,
    context: Any = None,
    gate: StatelessGate | None = None,
) -> TlsSocket:
    """Accept one TCP connection and complete a TLS 1.3 handshake as server; with
    ``config.stateless`` every client first goes through the stateless HelloRetryRequest."""
    sock, address = listener.accept()
    if config.stateless:
        peer = stream_peer(address)
        gate = gate or StatelessGate(config, context=context)
        try:
            conn = stateless_accept(sock, peer, gate)
        except BaseException:
            sock.close()
            raise
        tls = TlsSocket(sock, conn)
    else:
        keylog = keylog_writer(config.keylog_file)
        tls = TlsSocket(sock, ServerConnection(config, context=context, keylog=keylog))
    return _handshake(tls)


__all__ = ["TlsSocket", "accept", "connect"]
