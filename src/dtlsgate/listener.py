"""Blocking-socket adapter for the gate: OpenSSL's ``DTLSv1_listen()`` on a UDP socket.

``Listener(sock, config).listen()`` reads datagrams from an unconnected UDP socket, answers
each ClientHello without a valid cookie with a HelloVerifyRequest, ignores what the gate
drops, and returns ``(peer, admit)`` for the first ClientHello whose cookie verifies. On a
non-blocking socket (or one with a timeout) it returns None when no datagram is waiting:
OpenSSL's non-fatal 0. This module and the other adapters are the only code that touches
sockets and clocks.
"""

from __future__ import annotations

import socket
import time
from collections import deque
from collections.abc import Callable, Hashable
from contextlib import suppress
from typing import TYPE_CHECKING, Any

from dtlsgate.config import ServerConfig
from dtlsgate.errors import UsageError
from dtlsgate.gate import Admit, Gate, Reply

if TYPE_CHECKING:
    from dtlsgate.blocking import DtlsSocket

# The largest UDP payload (IPv4: 65535 - 20 - 8). A ClientHello larger than the buffer
# would be truncated by the kernel and then dropped as malformed, so read it whole.
MAX_DATAGRAM = 65507
# Under load, listen() reads up to this many waiting datagrams before judging them: the same
# system calls, but the gate's Python code then runs back to back instead of between two
# system calls, which measured 10% more ClientHellos per second (bench/listen.py). 32
# datagrams of at most 64 KiB bound what is held between two calls.
LISTEN_BATCH = 32
_DONTWAIT = getattr(socket, "MSG_DONTWAIT", 0)


class Listener:
    """Stateless listen on ``sock`` (an unconnected ``SOCK_DGRAM`` socket, IPv4 or IPv6)."""

    def __init__(
        self,
        sock: socket.socket,
        config: ServerConfig | None = None,
        *,
        clock: Callable[[], float] = time.time,
        batch: int = LISTEN_BATCH,
    ) -> None:
        if sock.type != socket.SOCK_DGRAM:
            raise UsageError("Listener needs a SOCK_DGRAM (UDP) socket")
        if not 1 <= batch <= 1024:
            raise UsageError("batch must be between 1 and 1024 datagrams")
        self.batch = batch
        self.sock = sock
        self.config = config if config is not None else ServerConfig()
        self.gate = Gate(self.config)
        # Wall-clock time: cookies carry a timestamp that other servers of a fleet check.
        self._clock = clock
        # accept(): admitted peers whose datagrams go to their DtlsSocket, not the gate;
        # admissions seen while a DtlsSocket was reading, returned by the next listen().
        self._routes: dict[Hashable, DtlsSocket] = {}
        self._pending: deque[tuple[Hashable, Admit]] = deque()
        # Datagrams read in the last batch but not yet judged (listen() returned an Admit
        # before reaching them): at most batch - 1.
        self._unread: deque[tuple[bytes, Any]] = deque()

    def listen(self) -> tuple[Hashable, Admit] | None:
        """Serve the gate until a ClientHello is admitted; return ``(peer, admit)``.

        Returns None when the socket has no datagram waiting (non-blocking socket, or a
        socket timeout expired). Errors of the socket itself propagate."""
        sock, receive, clock, unread = self.sock, self.gate.receive, self._clock, self._unread
        if self._pending:
            return self._pending.popleft()
        # With a socket timeout, Python polls before every recvfrom, so MSG_DONTWAIT would
        # wait out the timeout: batch only on blocking and non-blocking sockets.
        batch = self.batch if _DONTWAIT and sock.gettimeout() in (None, 0.0) else 1
        while True:
            if not unread:
                try:
                    unread.append(sock.recvfrom(MAX_DATAGRAM))
                    for _ in range(batch - 1):
                        unread.append(sock.recvfrom(MAX_DATAGRAM, _DONTWAIT))
                except (BlockingIOError, InterruptedError, TimeoutError):
                    if not unread:
                        return None
            # Judge the batch, then send its replies: the gate's code runs back to back
            # and the sends follow one another (bench/listen.py: +7% over interleaving).
            now = clock()
            replies: list[tuple[bytes, Any]] = []
            admitted: tuple[Hashable, Admit] | None = None
            while unread:
                datagram, peer = unread.popleft()
                if self._routes and peer in self._routes:
                    self._routes[peer]._feed(datagram)
                    continue
                result = receive(datagram, peer, now)
                if type(result) is Reply:
                    replies.append((result.data, peer))
                elif type(result) is Admit:
                    admitted = (peer, result)
                    break
            for data, peer in replies:
                try:  # noqa: SIM105 (suppress() costs a microsecond per datagram here)
                    sock.sendto(data, peer)
                except (BlockingIOError, InterruptedError):
                    pass  # a full send buffer loses a reply; the client retransmits
            if admitted is not None:
                return admitted

    def accept(
        self,
        peer: Hashable,
        admit: Admit,
        *,
        timeout: float | None = 30.0,
        connected_socket: bool = False,
    ) -> DtlsSocket:
        """Continue the handshake of an admitted peer (OpenSSL's ``SSL_accept`` after
        ``DTLSv1_listen``); returns the `DtlsSocket`. ``timeout=None`` returns before the
        handshake runs (call ``do_handshake()``).

        By default the connection shares the listener's socket: datagrams from this peer
        go to it from now on. With ``connected_socket=True`` it gets a UDP socket of its
        own (OpenSSL's pattern after ``DTLSv1_listen``): bound to the listener's address
        with SO_REUSEADDR (also set on the listener's socket) and SO_REUSEPORT, and
        connect()ed to the peer, so the kernel hands it this peer's datagrams; the
        `DtlsSocket` closes it on ``close()``."""
        from dtlsgate.blocking import DtlsSocket, keylog_writer
        from dtlsgate.dtls import DtlsServerConnection

        if admit.peer is not None and admit.peer != peer:
            raise UsageError(f"this Admit is for {admit.peer!r}, not {peer!r}")
        if peer in self._routes:
            raise UsageError(f"{peer!r} was already accepted; close its DtlsSocket first")
        if timeout is not None and timeout <= 0:
            raise UsageError("timeout must be positive, or None")
        conn = DtlsServerConnection(
            admit, self.config, keylog=keylog_writer(self.config.keylog_file)
        )
        sock = self._connected_socket(peer) if connected_socket else self.sock
        dtls = DtlsSocket(conn, sock, peer, listener=self, clock=self._clock)
        # Also with a socket of its own: this peer's datagrams already queued on the
        # listener's socket (a retransmitted ClientHello) reach it, not the gate.
        self._routes[peer] = dtls
        if sock is not self.sock:
            self._drain(sock, dtls)
        try:
            conn.start(self._clock())
            if timeout is not None:
                dtls.do_handshake(timeout)
        except BaseException:
            dtls._flush()
            self._forget(peer)
            if sock is not self.sock:
                sock.close()
            raise
        return dtls

    def _connected_socket(self, peer: Hashable) -> socket.socket:
        listening = self.sock
        if peer is None:
            raise UsageError("a connected socket needs the peer's address")
        # Linux lets a second UDP socket bind the same address when both sockets have
        # SO_REUSEADDR (checked at the second bind, so setting it now on ours suffices);
        # SO_REUSEPORT joins a --workers group. A connected socket then wins the lookup
        # for its peer's datagrams.
        listening.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock = socket.socket(listening.family, socket.SOCK_DGRAM)
        try:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            if hasattr(socket, "SO_REUSEPORT"):
                with suppress(OSError):
                    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
            sock.bind(listening.getsockname())
            sock.connect(peer)  # type: ignore[arg-type]
        except OSError as exc:
            sock.close()
            raise UsageError(f"cannot create a connected socket for {peer!r}: {exc}") from exc
        return sock

    def _drain(self, sock: socket.socket, dtls: DtlsSocket) -> None:
        """Datagrams the new socket received between bind() and connect() may be other
        peers': route or judge them like the listener would."""
        sock.setblocking(False)
        try:
            for _ in range(LISTEN_BATCH * 32):
                data, src = sock.recvfrom(MAX_DATAGRAM)
                if src == dtls.peer:
                    dtls._feed(data)
                else:
                    self._dispatch(data, src)
        except (BlockingIOError, InterruptedError, ConnectionRefusedError):
            pass
        finally:
            sock.setblocking(True)

    def _dispatch(self, datagram: bytes, peer: Hashable) -> None:
        """A datagram a `DtlsSocket` read for another peer: route it or judge it."""
        route = self._routes.get(peer)
        if route is not None:
            route._feed(datagram)
            return
        result = self.gate.receive(datagram, peer, self._clock())
        if type(result) is Reply:
            with suppress(BlockingIOError, InterruptedError):
                self.sock.sendto(result.data, peer)  # type: ignore[call-overload]
        elif type(result) is Admit:
            self._pending.append((peer, result))

    def _forget(self, peer: Hashable | None) -> None:
        self._routes.pop(peer, None)
