"""Blocking-socket adapter for the gate: OpenSSL's ``DTLSv1_listen()`` on a UDP socket.

``Listener(sock, config).listen()`` reads datagrams from an unconnected UDP socket, answers
each ClientHello without a valid cookie with a HelloVerifyRequest, ignores what the gate
drops, and returns ``(peer, admit)`` for the first ClientHello whose cookie verifies. On a
non-blocking socket (or one with a timeout) it returns None when no datagram is waiting:
OpenSSL's non-fatal 0. This module and the other adapters are the only code that touches
sockets and clocks.

``accept(peer, admit)`` continues an admitted handshake in a `DtlsSocket`; that peer's
datagrams go to it from then on, except an epoch-0 ClientHello once its handshake completed:
a client that restarted from the same address and port (RFC 6347 §4.2.8). The gate judges
that one, and an Admit replaces the old association (see `Listener.listen`). An established
DTLS 1.3 association on the listener's socket also gets, from any address, the datagrams
carrying one of its connection IDs, and follows its peer to a new address once a record
from there authenticates (RFC 9147 §9, RFC 9146 §6; `dtlsgate.connection.routing`, shared
with the asyncio server).

Handshakes accepted but not completed yet (``accept(..., timeout=None)``, driven by the
application) are kept in an admission table (`dtlsgate.connection.admission`) with the
config's ``max_handshakes*`` and ``handshake_timeout``: one evicted for a newcomer, or past
its deadline at the next ``accept``, is ended (its ``do_handshake()`` raises
``StateError``; nothing is sent). ``accept`` waits ``config.handshake_timeout`` by default.
Established sockets belong to the application, which sets their ``recv`` timeouts: the
config's ``idle_timeout`` and ``max_associations`` are the asyncio server's.
"""

from __future__ import annotations

import socket
import time
from collections import deque
from collections.abc import Callable, Hashable
from contextlib import suppress
from typing import TYPE_CHECKING, Any

from dtlsgate.config import ServerConfig
from dtlsgate.connection.admission import AdmissionTable, FinishedHellos
from dtlsgate.connection.routing import ConnectionIdRoutes, follow
from dtlsgate.crypto.certs import check_dtls12_identity
from dtlsgate.errors import UsageError
from dtlsgate.gate.datagram import Admit, Drop, Dtls13Admit, Gate, is_client_hello

if TYPE_CHECKING:
    from dtlsgate.io.blocking import DtlsSocket

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
        # Refused now rather than at the first handshake: a certificate DTLS 1.2 cannot use.
        check_dtls12_identity(self.config.certificate_chain, self.config.private_key)
        self.gate = Gate(self.config)
        # Wall-clock time: cookies carry a timestamp that other servers of a fleet check.
        self._clock = clock
        # accept(): admitted peers whose datagrams go to their DtlsSocket, not the gate;
        # admissions seen while a DtlsSocket was reading, returned by the next listen().
        self._routes: dict[Hashable, DtlsSocket] = {}
        # Established DTLS 1.3 associations on our socket by connection ID
        # (`dtlsgate.connection.routing`): a datagram from an address with no route that
        # carries one goes to its association, which may follow the peer's new address.
        self._by_connection_id: ConnectionIdRoutes[DtlsSocket] = ConnectionIdRoutes(
            self.config.connection_id_length
        )
        self._pending: deque[tuple[Hashable, Admit | Dtls13Admit]] = deque()
        # The random of the ClientHello that created each route's association: a copy of
        # that ClientHello arriving late is not a restart (RFC 6347 §4.2.8).
        self._client_randoms: dict[Hashable, bytes] = {}
        # Late copies of the ClientHellos of associations that closed are not admitted.
        self.finished_hellos = FinishedHellos.for_server(self.config)
        # Datagrams read in the last batch but not yet judged (listen() returned an Admit
        # before reaching them): at most batch - 1.
        self._unread: deque[tuple[bytes, Any]] = deque()
        # Accepted handshakes not completed yet (accept(timeout=None)).
        self.admission: AdmissionTable[DtlsSocket] = AdmissionTable.for_server(self.config)

    def listen(self) -> tuple[Hashable, Admit | Dtls13Admit] | None:
        """Serve the gate until a ClientHello is admitted; return ``(peer, admit)``.

        Returns None when the socket has no datagram waiting (non-blocking socket, or a
        socket timeout expired). Errors of the socket itself propagate.

        A datagram from an accepted peer goes to its `DtlsSocket`, unless that handshake
        completed and the datagram is an epoch-0 ClientHello: the client restarted from the
        same address (RFC 6347 §4.2.8). The gate judges it like any other: a Reply is sent;
        an Admit whose random differs from the old association's ends the old one (its
        ``recv()`` returns b"", as after close_notify) and is returned, to be accepted; a
        late copy of the ClientHello that created the old association is ignored."""
        if self._pending:
            return self._pending.popleft()
        sock, judge, clock = self.sock, self.gate.judge, self._clock
        recvfrom, sendto, routes, unread = sock.recvfrom, sock.sendto, self._routes, self._unread
        by_cid = self._by_connection_id
        # With a socket timeout, Python polls before every recvfrom, so MSG_DONTWAIT would
        # wait out the timeout: batch only on blocking and non-blocking sockets.
        batch = self.batch if _DONTWAIT and sock.gettimeout() in (None, 0.0) else 1
        if batch == 1 and not unread:
            return self._listen_one_at_a_time()
        more = range(batch - 1)
        while True:
            datagrams: list[tuple[bytes, Any]] = []
            if unread:
                datagrams.extend(unread)
                unread.clear()
            else:
                try:
                    datagrams.append(recvfrom(MAX_DATAGRAM))
                    for _ in more:
                        datagrams.append(recvfrom(MAX_DATAGRAM, _DONTWAIT))
                except (BlockingIOError, InterruptedError, TimeoutError):
                    if not datagrams:
                        return None
            # Judge the batch, then send its replies: the gate's code runs back to back
            # and the sends follow one another (bench/listen.py: +7% over interleaving).
            # What is not judged yet when an Admit returns (or an error propagates) stays in
            # ``unread`` for the next call.
            now = clock()
            replies: list[tuple[bytes, Any]] = []
            admitted: tuple[Hashable, Admit | Dtls13Admit] | None = None
            waiting = iter(datagrams)
            try:
                for datagram, peer in waiting:
                    if routes and peer in routes:
                        result = self._routed(datagram, peer, now)
                        if result is None:
                            continue
                    elif by_cid and self._routed_by_connection_id(datagram, peer):
                        continue
                    else:
                        result = judge(datagram, peer, now)
                    if type(result) is bytes:
                        replies.append((result, peer))
                    elif (type(result) is Admit or type(result) is Dtls13Admit) and not (
                        self.finished_hellos.is_copy(peer, result.client_random, now)
                    ):
                        admitted = (peer, result)
                        unread.extend(waiting)
                        break
            except BaseException:
                unread.extend(waiting)
                raise
            for data, peer in replies:
                try:  # noqa: SIM105 (suppress() costs a microsecond per datagram here)
                    sendto(data, peer)
                except (BlockingIOError, InterruptedError):
                    pass  # a full send buffer loses a reply; the client retransmits
            if admitted is not None:
                return admitted

    def _listen_one_at_a_time(self) -> tuple[Hashable, Admit | Dtls13Admit] | None:
        """listen() reading one datagram per system call: each is judged, then answered,
        before the next is read (the batch loop's lists would only add work here)."""
        recvfrom, sendto, judge = self.sock.recvfrom, self.sock.sendto, self.gate.judge
        clock, routes, by_cid = self._clock, self._routes, self._by_connection_id
        while True:
            try:
                datagram, peer = recvfrom(MAX_DATAGRAM)
            except (BlockingIOError, InterruptedError, TimeoutError):
                return None
            if routes and peer in routes:
                result = self._routed(datagram, peer, clock())
                if result is None:
                    continue
            elif by_cid and self._routed_by_connection_id(datagram, peer):
                continue
            else:
                result = judge(datagram, peer, clock())
            if type(result) is bytes:
                try:  # noqa: SIM105 (suppress() costs a microsecond per datagram here)
                    sendto(result, peer)
                except (BlockingIOError, InterruptedError):
                    pass  # a full send buffer loses a reply; the client retransmits
            elif (type(result) is Admit or type(result) is Dtls13Admit) and not (
                self.finished_hellos.is_copy(peer, result.client_random, clock())
            ):
                return peer, result

    def accept(
        self,
        peer: Hashable,
        admit: Admit | Dtls13Admit,
        *,
        timeout: float | str | None = "config",
        connected_socket: bool = False,
    ) -> DtlsSocket:
        """Continue the handshake of an admitted peer (OpenSSL's ``SSL_accept`` after
        ``DTLSv1_listen``); returns the `DtlsSocket`. ``timeout`` defaults to
        ``config.handshake_timeout`` (seconds; when that is None, 30 s);
        ``timeout=None`` returns before the handshake runs (call ``do_handshake()``): the
        handshake then counts in ``admission`` until it completes, and may be ended by a
        newer one (module docstring).

        By default the connection shares the listener's socket: datagrams from this peer
        go to it from now on. With ``connected_socket=True`` it gets a UDP socket of its
        own (OpenSSL's pattern after ``DTLSv1_listen``): bound to the listener's address
        with SO_REUSEADDR (also set on the listener's socket) and SO_REUSEPORT, and
        connect()ed to the peer, so the kernel hands it this peer's datagrams; the
        `DtlsSocket` closes it on ``close()``.

        A client that restarts from the same address (RFC 6347 §4.2.8) is noticed by the
        `DtlsSocket` reading that peer's datagrams: on the listener's socket, by whoever
        reads it; on a connected socket, only while the application waits in the old
        socket's ``recv()``, which hands the new ClientHello to the listener to be judged.
        Its Admit is returned by the next ``listen()``. Close the old `DtlsSocket` once its
        ``recv()`` returned b"": until then its connected socket may take datagrams of the
        new handshake, which the client then retransmits."""
        from dtlsgate.connection.datagram13 import accept
        from dtlsgate.io.blocking import DtlsSocket
        from dtlsgate.io.keylog import keylog_writer

        if admit.peer is not None and admit.peer != peer:
            raise UsageError(f"this Admit is for {admit.peer!r}, not {peer!r}")
        if peer in self._routes:
            raise UsageError(f"{peer!r} was already accepted; close its DtlsSocket first")
        if timeout == "config":
            timeout = self.config.handshake_timeout or 30.0
        if isinstance(timeout, str) or (timeout is not None and timeout <= 0):
            raise UsageError("timeout must be positive, or None")
        keylog = keylog_writer(self.config.keylog_file)
        conn = accept(admit, self.config, gate=self.gate, keylog=keylog)
        sock = self._connected_socket(peer) if connected_socket else self.sock
        dtls = DtlsSocket(conn, sock, peer, listener=self, clock=self._clock)
        # Also with a socket of its own: this peer's datagrams already queued on the
        # listener's socket (a retransmitted ClientHello) reach it, not the gate.
        self._routes[peer] = dtls
        self._client_randoms[peer] = admit.client_random
        if sock is not self.sock:
            self._drain(sock, dtls)
        if timeout is None:
            self._admit_pending(dtls)
        try:
            conn.start(self._clock())
            if timeout is not None:
                dtls.do_handshake(timeout)
        except BaseException:
            dtls._flush()
            self._forget(peer, dtls)
            if sock is not self.sock:
                sock.close()
            raise
        return dtls

    def _admit_pending(self, dtls: DtlsSocket) -> None:
        """Count a handshake the application will drive; end those it displaces and
        those past their deadline. A handshake leaves the table when it completes (seen
        here) or its socket is closed (``_forget``)."""
        now = self._clock()
        table = self.admission
        for key in [k for k in table if k.connection.handshake_complete]:
            table.finish(key)
        for old in table.expire(now) + table.admit(dtls, dtls.peer, now):
            self._forget(old.peer, old)
            old._abandoned()

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
                    dtls._feed(data, src)
                else:
                    self._dispatch(data, src)
        except (BlockingIOError, InterruptedError, ConnectionRefusedError):
            pass
        finally:
            sock.setblocking(True)

    def _dispatch(self, datagram: bytes, peer: Hashable) -> None:
        """A datagram a `DtlsSocket` read for another peer, or for its own peer when it is
        a ClientHello after the handshake: route it or judge it."""
        if peer in self._routes:
            result = self._routed(datagram, peer, self._clock())
        elif self._by_connection_id and self._routed_by_connection_id(datagram, peer):
            return
        else:
            result = self.gate.judge(datagram, peer, self._clock())
        if type(result) is bytes:
            with suppress(BlockingIOError, InterruptedError):
                self.sock.sendto(result, peer)  # type: ignore[call-overload]
        elif (type(result) is Admit or type(result) is Dtls13Admit) and not (
            self.finished_hellos.is_copy(peer, result.client_random, self._clock())
        ):
            self._pending.append((peer, result))

    def _routed(
        self, datagram: bytes, peer: Hashable, now: float
    ) -> bytes | Admit | Dtls13Admit | Drop | None:
        """A datagram from a peer that has a `DtlsSocket`: fed to it (None), or judged by
        the gate when it is a ClientHello in epoch 0 after the handshake completed.

        RFC 6347 §4.2.8: such a ClientHello from the address of an established association
        means the client restarted; once its cookie verified, the new handshake replaces
        the old association. A late copy of the ClientHello that created the association
        (same random, its cookie still valid) is ignored."""
        route = self._routes[peer]
        if not (route.connection.handshake_complete and is_client_hello(datagram)):
            route._feed(datagram, peer)
            return None
        result = self.gate.judge(datagram, peer, now)
        if type(result) is Admit or type(result) is Dtls13Admit:
            if result.client_random == self._client_randoms.get(peer):
                return None
            self._forget(peer, route)
            route._peer_restarted()
        return result

    def _routed_by_connection_id(self, datagram: bytes, peer: Hashable) -> bool:
        """A datagram from an address with no route: fed to the association whose
        connection ID it carries (with the address it came from: the association follows
        it once a record from there authenticates, RFC 9146 §6), or False. Without a known
        CID the gate judges it (a DTLS 1.3 record is dropped there: no state is made)."""
        dtls = self._by_connection_id.find(datagram)
        if dtls is None:
            return False
        dtls._feed(datagram, peer)
        return True

    @property
    def routed_connection_ids(self) -> int:
        """Connection IDs in the routing table (every association's, RFC 9147 §9)."""
        return len(self._by_connection_id)

    def _route(self, dtls: DtlsSocket, cids: tuple[bytes, ...]) -> None:
        """Keep ``dtls``'s connection IDs (``cids``) in the routing table."""
        self._by_connection_id.route(dtls, cids)

    def _moved(self, dtls: DtlsSocket, old: Hashable | None) -> None:
        """``dtls`` follows its peer from ``old`` to its new address: so do its route and
        the random that tells a restart of the peer (RFC 6347 §4.2.8) from a late copy."""
        if follow(self._routes, dtls, old, dtls.peer):
            client_random = self._client_randoms.pop(old, None)
            if client_random is not None:
                self._client_randoms[dtls.peer] = client_random

    def _forget(self, peer: Hashable | None, dtls: DtlsSocket) -> None:
        """Stop routing ``peer``'s datagrams (and ``dtls``'s connection IDs) to ``dtls``
        (and not to a newer association of the same peer that replaced it)."""
        self.admission.finish(dtls)
        self._by_connection_id.unroute(dtls)
        if self._routes.get(peer) is dtls:
            del self._routes[peer]
            client_random = self._client_randoms.pop(peer, None)
            if client_random is not None and dtls.connection.handshake_complete:
                self.finished_hellos.add(peer, client_random, self._clock())
