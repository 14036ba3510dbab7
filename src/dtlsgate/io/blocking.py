"""Blocking sockets for DTLS 1.2: a connection object over a UDP socket, and ``connect``.

``DtlsSocket`` drives a sans-I/O connection with blocking reads: ``do_handshake()``,
``send(data)``, ``recv()`` (one record's data; b"" once the peer closed), ``close()``.
Server-side sockets come from ``Listener.accept()`` and share the listener's UDP socket
(datagrams of other peers read while waiting are handed to the listener, which routes
them) or own a UDP socket connected to their peer (``accept(..., connected_socket=True)``).
Either way, an epoch-0 ClientHello from the peer after the handshake (a client that
restarted, RFC 6347 §4.2.8) goes to the listener to be judged; when the gate admits it, the
new association replaces this one, whose ``recv()`` then returns b"".
Client sockets come from ``connect(host, port, config)`` and own a connected UDP socket.
This module and the other adapters are the only code that reads clocks and sockets.
"""

from __future__ import annotations

import select
import socket
import time
from collections import deque
from collections.abc import Callable, Hashable
from contextlib import suppress
from typing import TYPE_CHECKING

from dtlsgate.config import ClientConfig
from dtlsgate.connection.datagram13 import (
    AnyDatagramConnection,
    DatagramClientConnection,
    Dtls13Connection,
)
from dtlsgate.errors import StateError
from dtlsgate.events import ConnectionClosed, DataReceived, HandshakeCompleted
from dtlsgate.gate.datagram import is_client_hello
from dtlsgate.handshake.dtls12.resume import Dtls12Session
from dtlsgate.io.keylog import keylog_writer
from dtlsgate.io.progress import HandshakeProgress, format_peer, port_unreachable

if TYPE_CHECKING:
    from dtlsgate.io.listener import Listener

MAX_DATAGRAM = 65507
# How long a blocking handshake waits in all before giving up (the connection itself gives
# up after its last retransmission, about two minutes).
DEFAULT_HANDSHAKE_TIMEOUT = 30.0
# Datagrams from our peer that the listener read for us while we were not reading: more are
# dropped, as a full socket buffer would drop them, so a peer flooding a socket that nobody
# reads cannot grow our memory. 256 covers the longest flight, retransmitted, many times.
MAX_INBOX_DATAGRAMS = 256


class DtlsSocket:
    """One DTLS connection over a UDP socket, used with blocking calls."""

    def __init__(
        self,
        conn: AnyDatagramConnection,
        sock: socket.socket,
        peer: Hashable | None,
        *,
        listener: Listener | None = None,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.connection = conn
        self.sock = sock
        self.peer = peer
        self._listener = listener
        self._clock = clock
        # Shared: the listener's unconnected socket (sendto/recvfrom, other peers' datagrams
        # handed back to it). Otherwise a socket connected to the peer, ours to close.
        self._shared = listener is not None and sock is listener.sock
        # A DTLS 1.3 association on the listener's socket: once established, the listener
        # routes the datagrams carrying its connection IDs to it from any address, and it
        # follows its peer to a new one (RFC 9146 §6). A connected socket stays with its
        # peer's address, as the kernel hands it only that address's datagrams.
        self._routed_by_connection_id = self._shared and isinstance(conn, Dtls13Connection)
        # Datagrams the listener read for us, each with the address it came from.
        self._inbox: deque[tuple[bytes, Hashable | None]] = deque()
        self._data: deque[bytes] = deque()
        self._closed_by_peer = False
        # A new association of the same peer replaced this one (RFC 6347 §4.2.8): its
        # address is no longer ours to send to.
        self._replaced = False
        self.handshake_info: HandshakeCompleted | None = None
        # A client's handshake progress, for the error when it fails (see `connect`).
        self.progress: HandshakeProgress | None = None

    # --- I/O plumbing -----------------------------------------------------------------------

    def _flush(self) -> None:
        # Not once replaced or abandoned: the listener forgot us.
        routed = self._routed_by_connection_id and not self._replaced
        if routed and self.connection.handshake_complete:
            self._route()
        datagrams = self.connection.datagrams_to_send()
        for datagram, _ in datagrams:
            with suppress(BlockingIOError, InterruptedError):
                if not self._shared:
                    self._send_connected(datagram)
                else:
                    self.sock.sendto(datagram, self.peer)  # type: ignore[call-overload]
        if datagrams and self.progress is not None and self.handshake_info is None:
            self.progress.sent()

    def _send_connected(self, datagram: bytes) -> None:
        try:
            self.sock.send(datagram)
        except ConnectionRefusedError:
            # An ICMP port unreachable for an earlier datagram, reported on this send.
            if self.progress is not None and self.handshake_info is None:
                raise port_unreachable(self.progress.peer) from None

    def _feed(self, datagram: bytes, addr: Hashable | None) -> None:
        """A datagram from our peer, read by someone else (the listener); from ``addr``,
        which is not ``self.peer`` when the listener routed it by our connection ID."""
        if len(self._inbox) < MAX_INBOX_DATAGRAMS:
            self._inbox.append((datagram, addr))

    def _route(self) -> None:
        """Keep the listener's routes of our connection IDs as our connection has them
        (those issued since added, those retired removed)."""
        conn = self.connection
        assert self._listener is not None and isinstance(conn, Dtls13Connection)
        self._listener._route(self, conn.connection_ids)

    def _follow_peer(self) -> None:
        """Our connection followed its peer to a new address (a record from there carried
        one of our connection IDs and authenticated, RFC 9146 §6): we send there, and the
        listener routes that address to us, from now on."""
        old, self.peer = self.peer, self.connection.peer
        if self._listener is not None:
            self._listener._moved(self, old)

    def _peer_restarted(self) -> None:
        """The listener admitted a new handshake from our peer's address (RFC 6347
        §4.2.8): end as if the peer had sent close_notify, without sending anything."""
        self._replaced = True
        self._closed_by_peer = True
        self._inbox.clear()

    def _abandoned(self) -> None:
        """The listener gave up on our handshake (evicted for a newer one, or past its
        deadline): end without sending anything; ``do_handshake()`` raises."""
        self._replaced = True
        self._closed_by_peer = True
        self._inbox.clear()

    def _events(self) -> None:
        while (event := self.connection.next_event()) is not None:
            if isinstance(event, HandshakeCompleted):
                self.handshake_info = event
            elif isinstance(event, DataReceived):
                self._data.append(event.data)
            elif isinstance(event, ConnectionClosed):
                self._closed_by_peer = True
                if event.alert is None:
                    raise TimeoutError(event.reason)

    def _step(self, deadline: float | None) -> bool:
        """Wait for one datagram or a timer; False when ``deadline`` passed."""
        conn = self.connection
        while self._inbox:
            data, addr = self._inbox.popleft()
            conn.receive(data, addr, self._clock())
        if conn.peer != self.peer:
            self._follow_peer()
        self._flush()
        self._events()
        if self._data or self._closed_by_peer:
            return True
        now = self._clock()
        timer = conn.get_timer()
        waits = [t for t in (timer, deadline) if t is not None]
        wait = max(0.0, min(waits) - now) if waits else None
        if deadline is not None and now >= deadline:
            return False
        ready, _, _ = select.select([self.sock], [], [], wait)
        if ready:
            self._read_socket()
        if timer is not None and self._clock() >= timer:
            conn.handle_timer(self._clock())
        self._flush()
        self._events()
        return True

    def _read_socket(self) -> None:
        try:
            if self._shared:
                data, peer = self.sock.recvfrom(MAX_DATAGRAM)
            else:
                data, peer = self.sock.recv(MAX_DATAGRAM), self.peer
        except (BlockingIOError, InterruptedError):
            return
        except ConnectionRefusedError:
            # On a connected UDP socket: an ICMP port unreachable. During a client's
            # handshake it means nothing listens there; otherwise it is ignored.
            if self.progress is not None and self.handshake_info is None:
                raise port_unreachable(self.progress.peer) from None
            return
        if self.progress is not None and self.handshake_info is None:
            self.progress.received(data)
        listener = self._listener
        if listener is not None and (
            peer != self.peer
            or self._replaced
            or (self.connection.handshake_complete and is_client_hello(data))
        ):
            # Another peer's datagram, our peer restarting (RFC 6347 §4.2.8), or one for
            # the association that replaced ours: the listener routes or judges it.
            listener._dispatch(data, peer)
        else:
            self.connection.receive(data, peer, self._clock())

    # --- the public calls -------------------------------------------------------------------

    @property
    def session(self) -> Dtls12Session | None:
        """A client's session to resume next time (``ClientConfig(session_ticket=...)``),
        like ``ssl.SSLSocket.session``; None on a server or when there is none."""
        conn = self.connection
        return conn.session if isinstance(conn, DatagramClientConnection) else None

    def do_handshake(self, timeout: float | None = DEFAULT_HANDSHAKE_TIMEOUT) -> None:
        """Run the handshake to completion; `TimeoutError` when it does not finish."""
        started = self._clock()
        deadline = None if timeout is None else started + timeout
        try:
            while not self.connection.handshake_complete:
                if self._closed_by_peer:
                    raise StateError("the peer closed the connection during the handshake")
                if not self._step(deadline):
                    raise TimeoutError("DTLS handshake timed out")
        except TimeoutError as exc:
            if self.progress is None:
                raise
            elapsed = self._clock() - started
            gave_up = self.connection.closed
            raise TimeoutError(self.progress.timeout_message(timeout, elapsed, gave_up)) from exc
        finally:
            self._flush()

    def send(self, data: bytes) -> None:
        if self._replaced:
            raise StateError("the peer restarted: a new association replaced this one")
        self.connection.send(data)
        self._flush()

    def recv(self, timeout: float | None = None) -> bytes:
        """The next record's data; b"" once the peer sent close_notify. `TimeoutError`
        when ``timeout`` seconds pass first."""
        deadline = None if timeout is None else self._clock() + timeout
        try:
            while not self._data:
                if self._closed_by_peer:
                    return b""
                if not self._step(deadline):
                    raise TimeoutError("no data before the timeout")
        finally:
            self._flush()
        return self._data.popleft()

    def close(self) -> None:
        """Send close_notify; the listener forgets the peer. A client socket is closed.
        After the peer restarted (RFC 6347 §4.2.8) nothing is sent: its address belongs to
        the new association."""
        if not self._replaced:
            self.connection.close()
            self._flush()
        if self._listener is not None:
            self._listener._forget(self.peer, self)
        if not self._shared:
            self.sock.close()

    def __enter__(self) -> DtlsSocket:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def connect(
    host: str,
    port: int,
    config: ClientConfig | None = None,
    *,
    timeout: float | None = DEFAULT_HANDSHAKE_TIMEOUT,
) -> DtlsSocket:
    """Connect to a DTLS 1.2 server and complete the handshake (OpenSSL's SSL_connect)."""
    if config is None:
        config = ClientConfig(server_name=host)
    infos = socket.getaddrinfo(host, port, 0, socket.SOCK_DGRAM)
    family, kind, proto, _, address = infos[0]
    sock = socket.socket(family, kind, proto)
    try:
        sock.connect(address)
        keylog = keylog_writer(config.keylog_file)
        conn = DatagramClientConnection(config, address, keylog=keylog)
        dtls = DtlsSocket(conn, sock, address)
        dtls.progress = HandshakeProgress(format_peer(address))
        conn.connect(time.time())
        dtls.do_handshake(timeout)
    except BaseException:
        sock.close()
        raise
    return dtls
