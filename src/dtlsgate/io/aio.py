"""asyncio for DTLS 1.2: ``await serve(handler, host, port, config)`` and
``await connect(host, port, config)``.

One UDP socket serves every peer: the gate answers ClientHellos without a valid cookie and
keeps nothing; an admitted peer gets a connection, and ``handler(stream)`` runs once its
handshake completed. Datagrams keep their boundaries: ``stream.send(data)`` sends one record,
``await stream.recv()`` returns one record's data (b"" once the peer closed).

The socket is read until it is empty on each wake-up: on uvloop (``run()`` uses it when it is
installed) the server and the client read through uvloop's datagram transport, which drains
the socket in C; on asyncio's own loop, whose datagram transport reads one datagram per loop
iteration, through ``loop.add_reader`` (`_Reader.start_reading`). Datagrams are sent on the
socket itself. Timers are the loop's (``call_at``); the sans-I/O core gets wall-clock
``now``.

What the server keeps is bounded by the `ServerConfig` limits: handshakes in progress by the
admission table (`dtlsgate.connection.admission`: per address, in all, and by
``handshake_timeout``; an evicted or expired handshake is dropped without a word, as is an
association whose client restarted from its address, RFC 6347 §4.2.8), and established
associations by ``max_associations`` (at the cap new admits are dropped, none is evicted) and
``idle_timeout`` (an association that received nothing for that long is closed
with close_notify; one timer for them all, `dtlsgate.io.idle`).
"""

from __future__ import annotations

import asyncio
import importlib
import logging
import signal
import socket
import time
from collections import deque
from collections.abc import Awaitable, Callable, Coroutine, Hashable, Sequence
from contextlib import suppress
from typing import Any, TypeVar

from dtlsgate.config import DEFAULT_MAX_HANDSHAKES, ClientConfig, ServerConfig
from dtlsgate.connection.admission import AdmissionTable, FinishedHellos
from dtlsgate.connection.datagram13 import (
    AnyDatagramConnection,
    DatagramClientConnection,
    Dtls13Connection,
    accept,
)
from dtlsgate.connection.routing import ConnectionIdRoutes, follow
from dtlsgate.crypto.certs import check_dtls12_identity
from dtlsgate.errors import DtlsgateError, UsageError
from dtlsgate.events import ConnectionClosed, DataReceived, HandshakeCompleted
from dtlsgate.gate.datagram import Admit, Dtls13Admit, Gate, is_client_hello
from dtlsgate.io.idle import IdleOrder
from dtlsgate.io.keylog import keylog_writer
from dtlsgate.io.progress import HandshakeProgress, format_peer, port_unreachable
from dtlsgate.wire.enums import ConnectionIdUsage

# The library logs here and configures nothing; the command line (``-v``) configures it.
log = logging.getLogger("dtlsgate")

MAX_DATAGRAM = 65507
# Datagrams read per wake-up before yielding to other tasks: enough to drain a busy socket,
# bounded so one flood cannot starve the handlers.
MAX_READS_PER_WAKEUP = 256
# Records queued for a handler that does not read; more are dropped (datagram semantics).
MAX_QUEUED_RECORDS = 1024
# The default bound on admitted peers whose handshake has not completed yet: now
# ``ServerConfig.max_handshakes`` (this name stays for code that imported it).
MAX_HANDSHAKING_PEERS = DEFAULT_MAX_HANDSHAKES

T = TypeVar("T")
Handler = Callable[["DtlsStream"], Awaitable[None]]


class DtlsStream:
    """One DTLS association as seen by asyncio code.

    ``send_datagram(data, peer)`` sends one datagram to the stream's peer of the moment (a
    DTLS 1.3 one with connection IDs may move). It is called with the peer, not a closure
    over the stream: that would be a reference cycle, and every association, with its
    connection and keys, would wait for the cyclic garbage collector instead of being freed
    when its handler ends.

    ``clock`` gives the connection its wall-clock ``now`` (tests give a clock of their own,
    as to `dtlsgate.io.blocking.DtlsSocket`); the loop's timers wait until then."""

    def __init__(
        self,
        conn: AnyDatagramConnection,
        peer: Hashable | None,
        send_datagram: Callable[[bytes, Any], None],
        loop: asyncio.AbstractEventLoop,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.connection = conn
        self.peer = peer
        self._send_datagram = send_datagram
        self._loop = loop
        self._clock = clock
        # Records for recv(), and the recv() calls waiting for one, oldest first (not an
        # asyncio.Queue: its join() Event, its waiting put() and its coroutine per get() are
        # work nothing here uses; see `_queue`).
        self._records: deque[bytes] = deque()
        self._readers: deque[asyncio.Future[None]] = deque()
        # Done when the handshake completed (``handshake_info``) or failed (``_failure``):
        # not a future holding the error, which the stream could not let go of (below).
        self._handshake: asyncio.Future[None] = loop.create_future()
        self._failure: BaseException | None = None
        self._timer: asyncio.TimerHandle | None = None
        self.closed = asyncio.Event()
        self.handshake_info: HandshakeCompleted | None = None
        # A client's handshake progress: told of each transmission of a flight, read for
        # the error when the handshake fails (see `wait_handshake`).
        self.progress: HandshakeProgress | None = None
        self.started = loop.time()
        # The loop's time of the last datagram from the peer (the server's idle timeout).
        self.last_received = loop.time()
        # Abandoned by the server (evicted or expired handshake): nothing more is sent.
        self._abandoned = False
        # Called after each pump (the server's CID table follows the association's CIDs).
        self.on_pumped: Callable[[DtlsStream], None] | None = None
        # Called at the end of each close() (the client's: stop reading, close the socket).
        self.on_close: Callable[[], None] | None = None

    # --- driven by the socket reader --------------------------------------------------------

    def datagram_received(self, data: bytes, addr: Hashable | None = None) -> None:
        """Feed one datagram from the peer (from ``addr`` when it is not ``self.peer``: a
        DTLS 1.3 connection with connection IDs follows a peer whose address changed once
        a record from there authenticates, RFC 9146 §6; ``self.peer`` follows it)."""
        self.last_received = self._loop.time()
        try:
            self.connection.receive(data, self.peer if addr is None else addr, self._clock())
        except DtlsgateError as exc:
            self._fail(exc)
        self.peer = self.connection.peer
        self.pump()

    def pump(self) -> None:
        """Send what the connection queued, deliver its events, re-arm its timer."""
        conn = self.connection
        datagrams = conn.datagrams_to_send()
        for datagram, _ in datagrams:
            self._send_datagram(datagram, self.peer)
        if datagrams and self.progress is not None and self.handshake_info is None:
            self.progress.sent()
        while (event := conn.next_event()) is not None:
            if isinstance(event, HandshakeCompleted):
                self.handshake_info = event
                if log.isEnabledFor(logging.INFO):
                    self._log_handshake(event)
                if not self._handshake.done():
                    self._handshake.set_result(None)
            elif isinstance(event, DataReceived):
                self._queue(event.data)
            elif isinstance(event, ConnectionClosed):
                self._fail(TimeoutError(event.reason) if event.alert is None else None)
        if conn.closed:
            self._fail(None)
        self._arm_timer()
        if self.on_pumped is not None:
            self.on_pumped(self)

    def _log_handshake(self, info: HandshakeCompleted) -> None:
        took = (self._loop.time() - self.started) * 1000
        version = {0xFEFD: "DTLS 1.2", 0xFEFC: "DTLS 1.3"}.get(info.version, str(info.version))
        suite = getattr(info.cipher_suite, "name", info.cipher_suite)
        how = "resumed" if info.resumed else "full"
        peer = format_peer(self.peer)
        log.info("%s: %s %s, %s handshake %.1f ms", peer, version, suite, how, took)

    def _arm_timer(self) -> None:
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        deadline = self.connection.get_timer()
        if deadline is not None:
            delay = max(0.0, deadline - self._clock())
            self._timer = self._loop.call_later(delay, self._on_timer)

    def _on_timer(self) -> None:
        self._timer = None
        self.connection.handle_timer(self._clock())
        self.pump()

    def _fail(self, exc: BaseException | None) -> None:
        if not self._handshake.done():
            self._failure = exc
            self._handshake.set_result(None)
        if not self.closed.is_set():
            self.closed.set()
            while self._readers:  # each sees the close (b"" once the records ran out)
                reader = self._readers.popleft()
                if not reader.done():
                    reader.set_result(None)

    def _queue(self, data: bytes) -> None:
        """A record for recv(), which the first waiting recv() gets; past MAX_QUEUED_RECORDS
        (a handler that does not read) dropped, as a datagram may be."""
        if len(self._records) < MAX_QUEUED_RECORDS:
            self._records.append(data)
            self._wake_reader()

    def _wake_reader(self) -> None:
        while self._readers:
            reader = self._readers.popleft()
            if not reader.done():
                reader.set_result(None)
                return

    # --- the user's calls -------------------------------------------------------------------

    async def wait_handshake(self, timeout: float | None = None) -> HandshakeCompleted:
        """The handshake's outcome, or the error that ended it (after close(), a
        `ConnectionError`: the stream lets go of the error when it closes, as the error's
        traceback holds frames that hold the stream); `TimeoutError` when ``timeout``
        seconds pass first or the connection gives up (its retransmissions ran out). With
        ``self.progress`` (a client's), the error's message says how long and how far
        (`HandshakeProgress.timeout_message`)."""
        if timeout is None and self.progress is None:
            await self._handshake  # a server's: nothing to time, nothing to say
            return self._outcome()
        started = self._clock()
        try:
            await asyncio.wait_for(self._handshake, timeout)
            return self._outcome()
        except TimeoutError as exc:
            if self.progress is None:
                raise
            elapsed = self._clock() - started
            gave_up = self.connection.closed
            raise TimeoutError(self.progress.timeout_message(timeout, elapsed, gave_up)) from exc

    def _outcome(self) -> HandshakeCompleted:
        if self.handshake_info is not None:
            return self.handshake_info
        raise self._failure or ConnectionError("closed during the handshake")

    def send(self, data: bytes) -> None:
        """Send ``data`` as one record (datagram semantics: it may be lost)."""
        self.connection.send(data)
        self.pump()

    def new_connection_ids(
        self,
        cids: int | Sequence[bytes] = 1,
        usage: ConnectionIdUsage = ConnectionIdUsage.cid_spare,
    ) -> tuple[bytes, ...]:
        """`Dtls13Connection.new_connection_ids`, sent at once (DTLS 1.3, RFC 9147 §9)."""
        offered = self._dtls13("new_connection_ids()").new_connection_ids(cids, usage)
        self.pump()
        return offered

    def request_connection_ids(self, num_cids: int = 1) -> None:
        """`Dtls13Connection.request_connection_ids`, sent at once."""
        self._dtls13("request_connection_ids()").request_connection_ids(num_cids)
        self.pump()

    def use_next_connection_id(self) -> bytes:
        """`Dtls13Connection.use_next_connection_id`."""
        return self._dtls13("use_next_connection_id()").use_next_connection_id()

    def _dtls13(self, call: str) -> Dtls13Connection | DatagramClientConnection:
        conn = self.connection
        if not isinstance(conn, Dtls13Connection | DatagramClientConnection):
            raise UsageError(f"{call} needs DTLS 1.3 (this association is DTLS 1.2)")
        return conn

    async def recv(self) -> bytes:
        """The next record's data; b"" once the connection closed."""
        while not self._records:
            if self.closed.is_set():
                return b""
            reader = self._loop.create_future()
            self._readers.append(reader)
            try:
                await reader
            except asyncio.CancelledError:
                with suppress(ValueError):
                    self._readers.remove(reader)
                if reader.done() and not reader.cancelled() and self._records:
                    self._wake_reader()  # the wake-up this call took goes to the next reader
                raise
        return self._records.popleft()

    def close(self) -> None:
        """Send close_notify and stop."""
        if not self._abandoned:
            if not self.connection.closed:
                self.connection.close()
            self.pump()
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        self._fail(None)
        # The error's traceback holds frames that hold this stream (datagram_received's,
        # wait_handshake's, the waiter's): kept here, it would make a reference cycle.
        self._failure = None
        if self.on_close is not None:
            self.on_close()

    def abandon(self, reason: str) -> None:
        """Stop at once without sending anything (the server gave up on this handshake:
        evicted for a newcomer, or past its deadline); waiters see ``TimeoutError``."""
        self._stop_silently(TimeoutError(reason))

    def replaced(self) -> None:
        """The peer's address passed the gate with a new ClientHello (the client restarted,
        RFC 6347 §4.2.8): end as if the peer had sent close_notify, without sending anything,
        as the blocking Listener does. A close_notify under this association's keys could
        reach only the new client there, which holds none of them."""
        self._stop_silently(None)

    def _stop_silently(self, exc: BaseException | None) -> None:
        self._abandoned = True
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        self._fail(exc)


class _Reader:
    """Drains a non-blocking UDP socket on each wake-up and hands datagrams on."""

    def __init__(self, sock: socket.socket, loop: asyncio.AbstractEventLoop) -> None:
        sock.setblocking(False)
        self.sock = sock
        self.loop = loop
        self.failures = 0  # datagrams whose handling raised (logged once, then counted)
        # The loop's datagram transport when it reads the socket (`start_transport`).
        self._transport_reader: _TransportReader | None = None

    async def start_reading(self) -> None:
        """Read the socket: on uvloop through its datagram transport (`start_transport`);
        on asyncio's own loop, whose datagram transport reads one datagram per loop
        iteration, with `start`'s reader, which drains the socket on each wake-up."""
        if type(self.loop).__module__.partition(".")[0] == "uvloop":
            await self.start_transport()
        else:
            self.start()

    def start(self) -> None:
        self.loop.add_reader(self.sock.fileno(), self._readable)

    async def start_transport(self) -> None:
        """Read the socket through the loop's datagram transport rather than `start`'s
        reader: uvloop's drains the socket in C on each wake-up, so a wake-up makes no
        Python call of its own, and the read that finds the socket empty raises no
        ``BlockingIOError`` (about 8,000 instructions each). Datagrams are still sent on
        the socket itself (`sendto`: dropped when the kernel's buffer is full), not queued
        in the transport's send buffer."""
        protocol = self._transport_reader = _TransportReader(self)
        await self.loop.create_datagram_endpoint(lambda: protocol, sock=self.sock)

    def stop(self) -> None:
        if self._transport_reader is not None:
            self._transport_reader.stop()
            return
        with suppress(ValueError, OSError):
            self.loop.remove_reader(self.sock.fileno())

    async def close_socket(self) -> None:
        """Close the socket (the transport's first: it owns the descriptor until then)."""
        if self._transport_reader is not None:
            await self._transport_reader.close()
        self.sock.close()

    def close_now(self) -> None:
        """Stop reading and close the socket without waiting (the client's ``close()``): a
        transport that reads it closes it itself at the loop's next turn."""
        if self._transport_reader is not None:
            self._transport_reader.close_soon()
        else:
            self.stop()
            self.sock.close()

    def _readable(self) -> None:
        recvfrom, handle = self.sock.recvfrom, self.handle
        for _ in range(MAX_READS_PER_WAKEUP):
            try:
                data, peer = recvfrom(MAX_DATAGRAM)
            except (BlockingIOError, InterruptedError):
                return
            except OSError as exc:
                self.error(exc)  # e.g. ICMP port unreachable surfaced on the socket
                continue
            try:
                handle(data, peer)
            except Exception:
                self.raised(peer)

    def raised(self, peer: Any) -> None:
        """Handling a datagram from ``peer`` raised: a fault of ours or of the application's
        callbacks (a cookie_generate that raises or returns more than 255 bytes). The
        datagram is dropped, the traceback logged once, later ones counted."""
        self.failures += 1
        if self.failures == 1:
            log.exception("a datagram from %s raised; dropped", format_peer(peer))
        else:
            log.debug("a datagram from %s raised (%d so far)", peer, self.failures)

    def error(self, exc: OSError) -> None:
        """An error the socket reported instead of a datagram."""

    def handle(self, data: bytes, peer: Any) -> None:
        raise NotImplementedError

    def sendto(self, data: bytes, peer: Any) -> None:
        # Not contextlib.suppress: that is an object and three calls more per datagram sent.
        try:  # noqa: SIM105
            self.sock.sendto(data, peer)
        except OSError:
            pass  # a full buffer or a transient error: lost, as a datagram may be


class _TransportReader(asyncio.DatagramProtocol):
    """`_Reader.start_transport`'s protocol: the transport's datagrams to the reader."""

    def __init__(self, reader: _Reader) -> None:
        self.reader: _Reader | None = reader
        self.handle = reader.handle
        self.transport: asyncio.BaseTransport | None = None
        self.lost = reader.loop.create_future()

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport

    def datagram_received(self, data: bytes, addr: Any) -> None:
        try:
            self.handle(data, addr)
        except Exception:
            if self.reader is not None:
                self.reader.raised(addr)

    def error_received(self, exc: Exception) -> None:
        if self.reader is not None and isinstance(exc, OSError):
            self.reader.error(exc)

    def connection_lost(self, exc: Exception | None) -> None:
        if not self.lost.done():
            self.lost.set_result(None)

    def stop(self) -> None:
        """Read no more: what arrives is dropped (a datagram transport cannot pause)."""
        self.reader = None
        self.handle = _drop

    def close_soon(self) -> None:
        """Read no more, and let the transport close (with the socket it owns)."""
        self.stop()
        if self.transport is not None:
            self.transport.close()

    async def close(self) -> None:
        self.close_soon()
        if self.transport is not None:
            await self.lost


def _drop(data: bytes, peer: Any) -> None:
    """A datagram for a server that stopped reading."""


class DtlsServer(_Reader):
    """The server returned by `serve`: ``close()`` then ``await wait_closed()``.

    ``admission`` is the table of handshakes in progress; ``handshakes_in_progress`` and
    ``associations`` count what the server holds; ``admits_refused`` counts admits dropped
    at ``config.max_associations`` established associations, ``idle_closed`` the
    associations closed by ``config.idle_timeout``."""

    def __init__(
        self,
        handler: Handler,
        sock: socket.socket,
        config: ServerConfig,
        loop: asyncio.AbstractEventLoop,
        max_handshaking: int | None = None,
    ) -> None:
        super().__init__(sock, loop)
        self.handler = handler
        self.config = config
        # Refused now rather than at the first handshake: a certificate DTLS 1.2 cannot use.
        check_dtls12_identity(config.certificate_chain, config.private_key)
        self.gate = Gate(config)
        self.peers: dict[Hashable, DtlsStream] = {}
        self.admission: AdmissionTable[DtlsStream] = AdmissionTable.for_server(
            config, max_handshaking
        )
        self.admits_refused = 0  # Admits dropped at config.max_associations
        self.handshakes_completed = 0
        self.handshakes_failed = 0
        self.idle_closed = 0  # associations closed by config.idle_timeout
        # The established associations and the one idle timer.
        self._established: IdleOrder[DtlsStream] = IdleOrder(loop, config.idle_timeout, self._idle)
        self._deadline_timer: asyncio.TimerHandle | None = None
        self._client_randoms: dict[DtlsStream, bytes] = {}
        # Late copies of the ClientHellos of associations that closed are not admitted.
        self.finished_hellos = FinishedHellos.for_server(config)
        # DTLS 1.3 associations by connection ID (`dtlsgate.connection.routing`): a
        # datagram carrying one is routed by it, from whatever address.
        self._by_connection_id = ConnectionIdRoutes[DtlsStream](config.connection_id_length)
        self._tasks: set[asyncio.Task[None]] = set()
        self._keylog = keylog_writer(config.keylog_file)

    @property
    def address(self) -> tuple[str, int]:
        host, port = self.sock.getsockname()[:2]
        return str(host), int(port)

    @property
    def handshakes_in_progress(self) -> int:
        return len(self.admission)

    @property
    def associations(self) -> int:
        """Established associations (handshake completed, not closed yet)."""
        return len(self._established)

    def handle(self, data: bytes, peer: Any) -> None:
        stream = self.peers.get(peer)
        if stream is None and self._by_connection_id:
            self._by_connection_id_received(data, peer)
            return
        if stream is not None and not (stream.handshake_info is not None and is_client_hello(data)):
            stream.datagram_received(data)
            return
        self._judge(data, peer, stream)

    def _by_connection_id_received(self, data: bytes, peer: Any) -> None:
        """A datagram from an address with no association: routed by its connection ID
        when it carries a known one (the association decides whether to follow the new
        address, and the routing follows it), else judged by the gate."""
        stream = self._by_connection_id.find(data)
        if stream is None:
            self._judge(data, peer, None)
            return
        old = stream.peer
        stream.datagram_received(data, peer)
        follow(self.peers, stream, old, stream.peer)

    def _judge(self, data: bytes, peer: Any, stream: DtlsStream | None) -> None:
        result = self.gate.judge(data, peer, time.time())
        if type(result) is bytes:
            self.sendto(result, peer)
        elif type(result) is Admit or type(result) is Dtls13Admit:
            if stream is not None and not self._replaces(stream, result):
                return
            if stream is None and self.finished_hellos.is_copy(
                peer, result.client_random, time.time()
            ):
                return
            if len(self._established) >= self.config.max_associations:
                self.admits_refused += 1
                return
            self._admit(result, peer)

    def _replaces(self, old: DtlsStream, admit: Admit | Dtls13Admit) -> bool:
        """RFC 6347 §4.2.8: a ClientHello in epoch 0 from the address of an established
        association (a client that restarted) goes through the gate; once its cookie
        verified, the new handshake replaces the old association, which ends without a word
        (`DtlsStream.replaced`). A stale copy of the old association's own ClientHello (same
        random) is ignored."""
        if admit.client_random == self._client_randoms.get(old):
            return False
        del self.peers[old.peer]
        old.replaced()
        return True

    def _admit(self, admit: Admit | Dtls13Admit, peer: Any) -> None:
        conn = accept(admit, self.config, gate=self.gate, keylog=self._keylog)
        stream = DtlsStream(conn, peer, self.sendto, self.loop)
        for old in self.admission.admit(stream, peer, self.loop.time()):
            self._abandon(old, "evicted for a newer handshake")
        self._arm_deadline()
        self.peers[peer] = stream
        self._client_randoms[stream] = admit.client_random
        try:
            conn.start(time.time())
        except DtlsgateError as exc:
            stream._fail(exc)
        stream.pump()
        task = self.loop.create_task(self._run(stream))
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    def _abandon(self, stream: DtlsStream, reason: str) -> None:
        """Give up on a handshake in progress: its peer's datagrams go to the gate again."""
        if self.peers.get(stream.peer) is stream:
            del self.peers[stream.peer]
        stream.abandon(reason)

    def _arm_deadline(self) -> None:
        """One timer for every handshake deadline: at the oldest handshake's."""
        if self._deadline_timer is not None:
            return
        deadline = self.admission.next_deadline()
        if deadline is not None:
            self._deadline_timer = self.loop.call_at(deadline, self._deadline_passed)

    def _deadline_passed(self) -> None:
        self._deadline_timer = None
        for stream in self.admission.expire(self.loop.time()):
            self._abandon(stream, "the handshake did not complete in time")
        self._arm_deadline()

    def _idle(self, stream: DtlsStream) -> None:
        """``stream`` received nothing for ``config.idle_timeout`` seconds (`IdleOrder`):
        closed, unless it was already (by its peer or its handler, which has not returned)."""
        if not stream.closed.is_set():
            self.idle_closed += 1
            stream.close()

    async def _run(self, stream: DtlsStream) -> None:
        try:
            try:
                await stream.wait_handshake()
                self.handshakes_completed += 1
            except Exception as exc:
                self.handshakes_failed += 1
                log.info("%s: DTLS handshake failed: %s", format_peer(stream.peer), _why(exc))
            self.admission.finish(stream)
            if stream.handshake_info is None:
                return
            if len(self._established) >= self.config.max_associations:
                self.admits_refused += 1  # the cap was reached while this one shook hands
                return
            self._established.add(stream)
            if _connection_ids(stream):
                self._route(stream)
                stream.on_pumped = self._route
            await self.handler(stream)
        finally:
            self.admission.finish(stream)
            self._established.discard(stream)
            client_random = self._client_randoms.pop(stream, None)
            if client_random is not None and stream.handshake_info is not None:
                self.finished_hellos.add(stream.peer, client_random, time.time())
            stream.on_pumped = None
            self._by_connection_id.unroute(stream)
            stream.close()
            if self.peers.get(stream.peer) is stream:
                del self.peers[stream.peer]

    @property
    def routed_connection_ids(self) -> int:
        """Connection IDs in the routing table (every association's, RFC 9147 §9)."""
        return len(self._by_connection_id)

    def _route(self, stream: DtlsStream) -> None:
        """Keep ``stream``'s CIDs in the table (those it issued since, not those it
        retired)."""
        self._by_connection_id.route(stream, _connection_ids(stream))

    def close(self) -> None:
        self.stop()
        if self._deadline_timer is not None:
            self._deadline_timer.cancel()
            self._deadline_timer = None
        self._established.stop()
        for task in list(self._tasks):
            task.cancel()

    async def wait_closed(self) -> None:
        if self._tasks:
            await asyncio.gather(*self._tasks, return_exceptions=True)
        await self.close_socket()

    async def __aenter__(self) -> DtlsServer:
        return self

    async def __aexit__(self, *exc: object) -> None:
        self.close()
        await self.wait_closed()


def _connection_ids(stream: DtlsStream) -> tuple[bytes, ...]:
    """The connection IDs the peer of a DTLS 1.3 association may put in its records (none
    negotiated, or DTLS 1.2: empty)."""
    conn = stream.connection
    return conn.connection_ids if isinstance(conn, Dtls13Connection) else ()


def _bind(host: str, port: int, reuse_port: bool) -> socket.socket:
    infos = socket.getaddrinfo(host, port, 0, socket.SOCK_DGRAM)
    family, kind, proto, _, address = infos[0]
    sock = socket.socket(family, kind, proto)
    if reuse_port:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
    sock.bind(address)
    return sock


async def serve(
    handler: Handler,
    host: str = "127.0.0.1",
    port: int = 4433,
    config: ServerConfig | None = None,
    *,
    reuse_port: bool = False,
    sock: socket.socket | None = None,
    max_handshaking: int | None = None,
) -> DtlsServer:
    """Serve DTLS 1.2 on ``host:port``; ``handler(stream)`` runs for each peer whose
    handshake completed. ``reuse_port`` lets several processes share the port.

    The config's limits apply: ``handshake_timeout``, ``max_handshakes`` (``max_handshaking``,
    when given, overrides it), ``max_handshakes_per_address`` and ``ipv6_prefix_length`` for
    handshakes in progress; ``max_associations`` and ``idle_timeout`` for established ones."""
    loop = asyncio.get_running_loop()
    if config is None:
        raise UsageError("serve() needs a ServerConfig with a certificate or a PSK")
    config.check_can_serve()
    if sock is None:
        sock = _bind(host, port, reuse_port)
    server = DtlsServer(handler, sock, config, loop, max_handshaking)
    await server.start_reading()
    return server


class _ClientReader(_Reader):
    def __init__(
        self, sock: socket.socket, loop: asyncio.AbstractEventLoop, progress: HandshakeProgress
    ) -> None:
        super().__init__(sock, loop)
        self.stream: DtlsStream | None = None
        self.progress = progress

    def handle(self, data: bytes, peer: Any) -> None:
        if self.stream is not None:
            if self.stream.handshake_info is None:
                self.progress.received(data)
            self.stream.datagram_received(data)

    def error(self, exc: OSError) -> None:
        # On a connected UDP socket an ICMP port unreachable comes back as ECONNREFUSED.
        if isinstance(exc, ConnectionRefusedError) and self.stream is not None:
            self.stream._fail(port_unreachable(self.progress.peer))

    def sendto(self, data: bytes, peer: Any) -> None:
        try:
            self.sock.send(data)
        except ConnectionRefusedError as exc:
            self.error(exc)
        except OSError:
            pass  # a full buffer or a transient error: the flight's timer resends


def _why(exc: BaseException) -> str:
    """An exception as one line a user can read, never empty."""
    text = str(exc).strip().replace("\n", " ")
    return text or type(exc).__name__


async def connect(
    host: str, port: int, config: ClientConfig | None = None, *, timeout: float = 30.0
) -> DtlsStream:
    """Connect and complete the handshake; the returned stream's ``close()`` also closes
    its socket."""
    loop = asyncio.get_running_loop()
    if config is None:
        config = ClientConfig(server_name=host)
    infos = await loop.getaddrinfo(host, port, type=socket.SOCK_DGRAM)
    family, kind, proto, _, address = infos[0]
    sock = socket.socket(family, kind, proto)
    sock.connect(address)
    progress = HandshakeProgress(format_peer(address))
    reader = _ClientReader(sock, loop, progress)
    conn = DatagramClientConnection(config, address, keylog=keylog_writer(config.keylog_file))
    stream = DtlsStream(conn, address, reader.sendto, loop)
    stream.progress = progress
    reader.stream = stream

    def close() -> None:
        # Not a replacement of stream.close (a closure over the stream, kept on the stream,
        # would be a reference cycle); and the reader lets go of the stream, which holds
        # its sendto: a closed stream is freed by reference counting alone.
        reader.close_now()
        reader.stream = None

    stream.on_close = close
    try:
        await reader.start_reading()
        conn.connect(time.time())
        stream.pump()
        await stream.wait_handshake(timeout)
    except BaseException:
        stream.close()
        raise
    return stream


async def until_stopped(also: Awaitable[Any] | None = None) -> None:
    """Return when the process is asked to stop (SIGINT, as Ctrl-C sends, or SIGTERM), or
    when ``also`` completes, whichever comes first.

    The signals are handled on the running loop, and once one came both are blocked: a
    second signal while the server stops (Ctrl-C pressed twice, or `timeout`, which sends
    its signal to the child and again to the child's process group) stays pending until the
    process exits, and is never delivered. Handled, it would land in the loop's shutdown
    (a KeyboardInterrupt once the loop's handlers are removed; with asyncio's own loop, a
    write to the wakeup fd it has just closed, reported on stderr) or kill the interpreter
    as it finalizes. The serving process has no other thread a signal could go to. Where
    the loop cannot handle signals (not the main thread, Windows), this waits for ``also``
    or forever, and Ctrl-C raises KeyboardInterrupt as before."""
    loop = asyncio.get_running_loop()
    stop = asyncio.Event()
    stop_signals = (signal.SIGINT, signal.SIGTERM)

    def stopping() -> None:
        signal.pthread_sigmask(signal.SIG_BLOCK, stop_signals)
        stop.set()

    for signum in stop_signals:
        with suppress(NotImplementedError, RuntimeError, ValueError):
            loop.add_signal_handler(signum, stopping)
    waiters = [asyncio.ensure_future(stop.wait())]
    if also is not None:
        waiters.append(asyncio.ensure_future(also))
    try:
        await asyncio.wait(waiters, return_when=asyncio.FIRST_COMPLETED)
    finally:
        for waiter in waiters:
            waiter.cancel()


def run(main: Coroutine[Any, Any, T]) -> T:
    """``asyncio.run(main)``, on uvloop when it is installed."""
    try:
        uvloop = importlib.import_module("uvloop")
    except ImportError:
        return asyncio.run(main)
    result: T = uvloop.run(main)
    return result
