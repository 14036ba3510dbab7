"""asyncio adapter for TLS 1.3 over TCP, in asyncio's streams style:

- ``await serve_tls(client_connected_cb, host, port, config)`` -> ``asyncio.Server``; the
  callback gets ``(reader, writer)`` once the handshake completed;
- ``await connect_tls(host, port, config)`` -> ``(reader, writer)``;
  ``writer.get_extra_info("tls")`` is the `HandshakeCompleted` event, ``"session_tickets"`` the
  tickets received so far (for ``ClientConfig(session_ticket=...)``).

With ``config.stateless`` every new client first goes through the stateless
HelloRetryRequest (`dtlsgate.gate.stream`): until ClientHello2 is admitted the server
keeps only the unread bytes of the stream. The TLS work is the sans-I/O connection's; this
module moves bytes and reads the clock.

The server applies the `ServerConfig` limits (see `ServerLimits`, ``limits_of(server)``):
``handshake_timeout`` from the TCP accept; ``max_handshakes`` and
``max_handshakes_per_address`` over the handshakes in progress (with ``stateless``: those
whose ClientHello2 passed the cookie; without: every connection not yet established), the
oldest making way as in `dtlsgate.connection.admission`; at ``max_associations``
established connections a new one is closed before its handshake goes on; an established
connection that receives nothing for ``idle_timeout`` seconds is closed with close_notify
(one timer for them all, `dtlsgate.io.idle`).

To stop a server, ``limits_of(server).close_all()`` closes its connections (close_notify on
the established ones), then ``server.close()`` and ``await server.wait_closed()``. From
Python 3.12.1 on, ``wait_closed`` waits until every connection the server accepted has
closed: without ``close_all`` one idle client holds it until it leaves or ``idle_timeout``
closes it.
"""

from __future__ import annotations

import asyncio
import enum
import logging
import time
import weakref
from collections import deque
from collections.abc import Awaitable, Callable
from typing import Any

from dtlsgate.config import DEFAULT_HANDSHAKE_TIMEOUT, ClientConfig, ServerConfig
from dtlsgate.connection.admission import AdmissionTable
from dtlsgate.connection.stream import ClientConnection, ServerConnection, TlsConnection
from dtlsgate.errors import AlertReceived, ProtocolError, UsageError
from dtlsgate.events import ConnectionClosed, DataReceived, SessionTicketReceived
from dtlsgate.gate.results import Drop, Refuse, StreamAdmit
from dtlsgate.gate.stream import StatelessGate, alert_record
from dtlsgate.handshake.tls13.server import ServerContext
from dtlsgate.io.blocking_tls import MAX_TICKETS_KEPT, stream_peer
from dtlsgate.io.idle import IdleOrder
from dtlsgate.io.keylog import keylog_writer
from dtlsgate.io.progress import format_peer
from dtlsgate.wire.enums import AlertDescription

# A peer that connects and never completes its handshake would hold its connection (and, in
# stateless mode, its unread bytes) forever. 60 s is many round trips even on a slow link
# (the reasons are at config.DEFAULT_HANDSHAKE_TIMEOUT); connect_tls takes
# ``handshake_timeout`` (None: wait forever), serve_tls uses ``config.handshake_timeout``
# unless given one.
HANDSHAKE_TIMEOUT = DEFAULT_HANDSHAKE_TIMEOUT


class _Default(enum.Enum):
    FROM_CONFIG = enum.auto()


class ServerLimits:
    """What a `serve_tls` server holds, bounded by its config: the handshakes in progress
    (``admission``), the established connections (``associations``), and counters; and
    every connection open, for ``close_all``."""

    def __init__(self, config: ServerConfig, loop: asyncio.AbstractEventLoop) -> None:
        self.config = config
        self._loop = loop
        # The deadline is each connection's own timer, from its TCP accept.
        self.admission: AdmissionTable[_TlsProtocol] = AdmissionTable(
            per_address=config.max_handshakes_per_address,
            total=config.max_handshakes,
            timeout=None,
            ipv6_prefix=config.ipv6_prefix_length,
        )
        self._established: IdleOrder[_TlsProtocol] = IdleOrder(
            loop, config.idle_timeout, self._idle
        )
        self.admits_refused = 0  # connections closed at max_associations
        self.idle_closed = 0  # connections closed by idle_timeout
        # Every connection accepted and not lost yet, the stateless ones whose ClientHello2
        # has not come too (the admission table does not hold those).
        self._open: set[_TlsProtocol] = set()

    @property
    def handshakes_in_progress(self) -> int:
        return len(self.admission)

    @property
    def associations(self) -> int:
        return len(self._established)

    @property
    def connections(self) -> int:
        """Every connection open: in the stateless gate, in its handshake or established."""
        return len(self._open)

    def admit(self, protocol: _TlsProtocol, peer: Any) -> bool:
        """A handshake starts (stateless: its ClientHello2 was admitted); False when it is
        refused at ``max_associations``."""
        if len(self._established) >= self.config.max_associations:
            self.admits_refused += 1
            return False
        for old in self.admission.admit(protocol, peer, self._loop.time()):
            old._fail(ConnectionError("evicted for a newer handshake"))
        return True

    def established(self, protocol: _TlsProtocol) -> bool:
        """The handshake completed; False when the cap was reached meanwhile."""
        self.admission.finish(protocol)
        if len(self._established) >= self.config.max_associations:
            self.admits_refused += 1
            return False
        self._established.add(protocol)
        return True

    def opened(self, protocol: _TlsProtocol) -> None:
        """A TCP connection was accepted."""
        self._open.add(protocol)

    def gone(self, protocol: _TlsProtocol) -> None:
        self._open.discard(protocol)
        self.admission.finish(protocol)
        self._established.discard(protocol)

    def close_all(self) -> None:
        """Close every open connection, as a server that stops: close_notify on the
        established ones; a handshake in progress ends at once (``on_handshake_failure`` is
        told, ``ConnectionError``). Their handlers' reads then end."""
        for protocol in list(self._open):
            if protocol.ready.done():
                protocol.tls.close()
            else:
                protocol._fail(ConnectionError("the server is closing"))

    def _idle(self, protocol: _TlsProtocol) -> None:
        """Nothing received for ``idle_timeout`` seconds (`IdleOrder`): close_notify."""
        if protocol.tls.raw is not None:
            self.idle_closed += 1
            protocol.tls.close()


# serve_tls's servers and their limits, for ``limits_of``.
_SERVER_LIMITS: weakref.WeakKeyDictionary[asyncio.Server, ServerLimits] = (
    weakref.WeakKeyDictionary()
)


def limits_of(server: asyncio.Server) -> ServerLimits:
    """The `ServerLimits` of a server made by `serve_tls`."""
    return _SERVER_LIMITS[server]


# The library logs here and configures nothing; the command line (``-v``) configures it.
log = logging.getLogger("dtlsgate")

ClientConnected = Callable[[asyncio.StreamReader, asyncio.StreamWriter], Awaitable[None] | None]


class _TlsTransport(asyncio.Transport):
    """The transport a StreamWriter writes to: the TLS connection over its TCP transport
    (``raw``, None once the connection is lost); writes are encrypted and passed on.

    It does not refer to its `_TlsProtocol`: the protocol holds it, and so do the
    StreamReader and the StreamReaderProtocol the protocol holds, so a reference back would
    be a cycle, and every finished connection, with its keys and buffers, would wait for the
    cyclic garbage collector instead of being freed when the application lets go of it."""

    def __init__(self) -> None:
        super().__init__()
        self.conn: TlsConnection = None  # type: ignore[assignment]
        self.raw: asyncio.Transport | None = None
        # The newest session tickets (RFC 8446 §4.6.1): a server may send any number.
        self.tickets: deque[Any] = deque(maxlen=MAX_TICKETS_KEPT)

    def flush(self) -> None:
        if self.raw is not None and self.conn is not None:
            out = self.conn.data_to_send()
            if out:
                self.raw.write(out)

    def write(self, data: bytes | bytearray | memoryview) -> None:
        self.conn.send(bytes(data))
        self.flush()

    def can_write_eof(self) -> bool:
        return False

    def close(self) -> None:
        """close_notify, then the TCP close."""
        if self.raw is not None and not self.raw.is_closing():
            if self.conn is not None and not self.conn.closed:
                self.conn.close()
                self.flush()
            self.raw.close()

    def abort(self) -> None:
        """Close at once, without close_notify (asyncio's ``Transport.abort``)."""
        if self.raw is not None:
            self.raw.abort()

    def is_closing(self) -> bool:
        return self.raw is None or self.raw.is_closing()

    def get_extra_info(self, name: str, default: Any = None) -> Any:
        if name == "tls":
            return self.conn.info
        if name == "tls_connection":
            # The connection itself, for what a stream cannot say (``key_update()``).
            return self.conn
        if name == "session_tickets":
            # Tickets the server sent so far, newest last (RFC 8446 §4.6.1): pass one as
            # ``ClientConfig(session_ticket=...)`` to resume.
            return list(self.tickets)
        if self.raw is not None:
            return self.raw.get_extra_info(name, default)
        return default

    def get_write_buffer_size(self) -> int:
        return self.raw.get_write_buffer_size() if self.raw is not None else 0

    def pause_reading(self) -> None:
        if self.raw is not None:
            self.raw.pause_reading()

    def resume_reading(self) -> None:
        if self.raw is not None:
            self.raw.resume_reading()


class _TlsProtocol(asyncio.Protocol):
    """TCP protocol driving one TLS connection; app data goes to a StreamReader."""

    def __init__(
        self,
        make: Callable[[], TlsConnection | None],
        gate: StatelessGate | None,
        on_ready: Callable[[_TlsProtocol], None],
        on_failure: Callable[[BaseException], None] | None = None,
        handshake_timeout: float | None = HANDSHAKE_TIMEOUT,
        limits: ServerLimits | None = None,
    ) -> None:
        self._make = make
        self._limits = limits
        self.last_received = 0.0  # the loop's time of the last bytes read (idle_timeout)
        self._handshake_timeout = handshake_timeout
        self._deadline: asyncio.TimerHandle | None = None
        self._gate = gate
        self._on_ready = on_ready
        self._on_failure = on_failure
        self._pending = b""
        self._started = time.monotonic()
        self._peer = "?"
        # The connection and the TCP transport live on the transport (its docstring says why).
        self.tls = _TlsTransport()
        self.reader = asyncio.StreamReader()
        self.stream_protocol = asyncio.StreamReaderProtocol(self.reader)
        self.ready: asyncio.Future[None] = asyncio.get_running_loop().create_future()

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        assert isinstance(transport, asyncio.Transport)
        self.tls.raw = transport
        self._started = time.monotonic()
        self._peer = format_peer(transport.get_extra_info("peername"))
        if self._limits is not None:
            self._limits.opened(self)
        if self._handshake_timeout is not None:
            self._deadline = asyncio.get_running_loop().call_later(
                self._handshake_timeout, self._handshake_timed_out
            )
        made = self._make()
        if made is not None:
            if self._limits is not None and not self._limits.admit(
                self, stream_peer(transport.get_extra_info("peername"))
            ):
                self._fail(ConnectionError("too many connections"))
                return
            self.tls.conn = made
            self.tls.flush()

    def pause_writing(self) -> None:
        # The TCP transport's buffer is over its high-water mark: make the application's
        # ``await writer.drain()`` wait (without this a peer that does not read, e.g. from
        # an echo server, would grow our send buffer without bound).
        self.stream_protocol.pause_writing()

    def resume_writing(self) -> None:
        self.stream_protocol.resume_writing()

    def data_received(self, data: bytes) -> None:
        self.last_received = asyncio.get_running_loop().time()
        tls = self.tls
        try:
            if tls.conn is None:
                data = self._through_gate(data)
                if tls.conn is None:
                    return
            was_complete = tls.conn.handshake_complete
            tls.conn.receive_data(data, time.time())
        except (ProtocolError, AlertReceived) as exc:
            tls.flush()
            self._fail(exc)
            # The exception's traceback keeps this frame, with its locals, for as long as
            # the exception lives (in the reader and in ready, which self holds): without
            # self there, that is no reference cycle.
            del self
            return
        tls.flush()
        if not was_complete and tls.conn.handshake_complete:
            if self._limits is not None and not self._limits.established(self):
                tls.close()
                return
            self.stream_protocol.connection_made(tls)
            if not self.ready.done():
                self.ready.set_result(None)
            self._cancel_deadline()
            self._log_handshake()
            self._on_ready(self)
        while (event := tls.conn.next_event()) is not None:
            if isinstance(event, DataReceived):
                self.reader.feed_data(event.data)
            elif isinstance(event, ConnectionClosed):
                self.reader.feed_eof()
            elif isinstance(event, SessionTicketReceived):
                tls.tickets.append(event.ticket)

    def _log_handshake(self) -> None:
        info = self.tls.conn.info
        if info is not None:
            log.info(
                "%s: TLS 1.3 %s %s, hello_retry=%s resumed=%s, handshake %.1f ms",
                self._peer,
                info.cipher_suite.name,
                info.group.name if info.group else "-",
                info.hello_retry,
                info.resumed,
                (time.monotonic() - self._started) * 1000,
            )

    def _through_gate(self, data: bytes) -> bytes:
        tls = self.tls
        raw = tls.raw
        assert self._gate is not None and raw is not None
        self._pending += data
        peer = stream_peer(raw.get_extra_info("peername"))
        try:
            result = self._gate.receive(self._pending, peer, time.time())
        except UsageError as exc:
            # An application cookie callback failed: not the client's fault, but the
            # handshake cannot go on (RFC 8446 §6.2 internal_error); reported, not raised
            # into the event loop.
            raw.write(alert_record(AlertDescription.internal_error))
            self._fail(exc)
            return b""
        if isinstance(result, Drop):  # the ClientHello is incomplete
            return b""
        if isinstance(result, Refuse):
            raw.write(result.data)
            self._fail(ConnectionError(result.detail))
            return b""
        if isinstance(result, StreamAdmit):
            if self._limits is not None and not self._limits.admit(self, peer):
                self._fail(ConnectionError("too many connections"))
                return b""
            tls.conn = ServerConnection.from_admit(
                self._gate.config,
                result,
                time.time(),
                context=self._gate.context,
                keylog=keylog_writer(self._gate.config.keylog_file),
            )
            tls.flush()
            return b""
        raw.write(result.data)
        self._pending = b""
        return b""

    def _handshake_timed_out(self) -> None:
        self._deadline = None
        if not self.ready.done():
            self._fail(TimeoutError("the TLS handshake did not complete in time"))

    def _cancel_deadline(self) -> None:
        if self._deadline is not None:
            self._deadline.cancel()
            self._deadline = None

    def _handshake_failed(self, exc: BaseException) -> None:
        """The handshake did not complete: settle ``ready`` and tell the server, once."""
        self._cancel_deadline()
        if self.ready.done():
            return
        log.info("%s: TLS handshake failed: %s", self._peer, str(exc) or type(exc).__name__)
        self.ready.set_exception(exc)
        if self._on_failure is not None or self._limits is not None:
            # A server's: reported through the callback, if any; nobody awaits the future
            # (otherwise every refused, evicted or timed-out client logs a traceback).
            self.ready.exception()
        if self._on_failure is not None:
            self._on_failure(exc)

    def _fail(self, exc: Exception) -> None:
        self._handshake_failed(exc)
        self.reader.set_exception(exc)
        if self.tls.raw is not None:
            self.tls.raw.close()

    def connection_lost(self, exc: Exception | None) -> None:
        if self._limits is not None:
            self._limits.gone(self)
        self._handshake_failed(exc or ConnectionError("closed during the handshake"))
        self.reader.feed_eof()
        if self.tls.conn is not None and self.tls.conn.handshake_complete:
            self.stream_protocol.connection_lost(exc)
        self.tls.raw = None


def _writer(protocol: _TlsProtocol) -> asyncio.StreamWriter:
    loop = asyncio.get_running_loop()
    return asyncio.StreamWriter(protocol.tls, protocol.stream_protocol, protocol.reader, loop)


async def serve_tls(
    client_connected_cb: ClientConnected,
    host: str | None,
    port: int | None,
    config: ServerConfig,
    *,
    on_handshake_failure: Callable[[BaseException], None] | None = None,
    handshake_timeout: float | _Default | None = _Default.FROM_CONFIG,
    **kwargs: Any,
) -> asyncio.Server:
    """Like ``asyncio.start_server``, with TLS 1.3 from ``config`` on every connection.
    ``on_handshake_failure(exc)`` is called for each connection whose handshake did not
    complete (a protocol error, a refused ClientHello, the peer leaving, eviction by a newer
    handshake, or ``handshake_timeout`` seconds passing first: the connection is then
    closed). ``handshake_timeout`` defaults to ``config.handshake_timeout``; the config's
    other limits apply too (module docstring; ``limits_of(server)`` counts)."""
    loop = asyncio.get_running_loop()
    config.check_can_serve()
    if handshake_timeout is _Default.FROM_CONFIG:
        handshake_timeout = config.handshake_timeout
    limits = ServerLimits(config, loop)
    context = ServerContext(config)
    gate = StatelessGate(config, context=context) if config.stateless else None
    keylog = keylog_writer(config.keylog_file)

    # Handler tasks are kept referenced until they finish (asyncio keeps only weak ones).
    tasks: set[asyncio.Task[Any]] = set()

    def ready(protocol: _TlsProtocol) -> None:
        result = client_connected_cb(protocol.reader, _writer(protocol))
        if asyncio.iscoroutine(result):
            task = loop.create_task(result)
            tasks.add(task)
            task.add_done_callback(tasks.discard)

    def factory() -> _TlsProtocol:
        def make() -> TlsConnection | None:
            if gate is not None:
                return None
            return ServerConnection(config, context=context, keylog=keylog)

        return _TlsProtocol(make, gate, ready, on_handshake_failure, handshake_timeout, limits)

    server = await loop.create_server(factory, host, port, **kwargs)
    _SERVER_LIMITS[server] = limits
    return server


async def connect_tls(
    host: str,
    port: int,
    config: ClientConfig,
    *,
    handshake_timeout: float | None = HANDSHAKE_TIMEOUT,
    **kwargs: Any,
) -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
    """Like ``asyncio.open_connection``; returns once the TLS 1.3 handshake completed
    (raises ``TimeoutError`` when it did not within ``handshake_timeout`` seconds)."""
    loop = asyncio.get_running_loop()

    def make() -> TlsConnection:
        conn = ClientConnection(config, keylog=keylog_writer(config.keylog_file))
        conn.start(time.time())
        return conn

    _, protocol = await loop.create_connection(
        lambda: _TlsProtocol(make, None, lambda p: None, None, handshake_timeout),
        host,
        port,
        **kwargs,
    )
    try:
        await protocol.ready
    except BaseException:
        del protocol  # as in data_received: the traceback keeps this frame
        raise
    return protocol.reader, _writer(protocol)
