"""The blocking DTLS client and server sockets (`dtlsgate.io.blocking.DtlsSocket`) over
loopback: a client's ``session`` resumed on the next connection, ``connect`` without a
config verifying the server, a server whose peer went away, a handshake left to the
application that times out, and the bound on what the listener holds for a socket that
does not read. The servers are `AioEchoServer` (asyncio, its own thread) and a `Listener`
on the test's thread."""

from __future__ import annotations

import os
import select
import socket
import threading
from collections.abc import Iterator
from typing import Any

import pytest
from builders import client_hello, datagram, with_cookie
from helpers import one_cpu
from test_dtls12_aio import configs
from test_interop_dtls12_loss import AioEchoServer
from test_listener import fence

from dtlsgate.errors import ProtocolError, UsageError
from dtlsgate.io import blocking
from dtlsgate.io.listener import Listener
from dtlsgate.wire.enums import AlertDescription

WAIT = 10.0  # bound on every wait


@pytest.fixture
def listening() -> Iterator[socket.socket]:
    """The server's UDP socket on loopback, non-blocking (as `Listener.listen()` reads)."""
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
        sock.bind(("127.0.0.1", 0))
        sock.setblocking(False)
        yield sock


@pytest.fixture
def client() -> Iterator[socket.socket]:
    """A client's UDP socket on loopback whose reads wait at most ``WAIT`` seconds."""
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
        sock.bind(("127.0.0.1", 0))
        sock.settimeout(WAIT)
        yield sock


def test_a_client_session_resumes_the_next_connection() -> None:
    """``DtlsSocket.session`` (like ``ssl.SSLSocket.session``), given back as
    ``ClientConfig(session_ticket=...)``: the next handshake is abbreviated (DTLS 1.2)."""
    server_config, client_config = configs()
    client_config.dtls_versions = (0xFEFD,)
    with AioEchoServer(server_config) as server:
        with blocking.connect("127.0.0.1", server.port, client_config, timeout=WAIT) as first:
            assert first.handshake_info is not None and not first.handshake_info.resumed
            first.send(b"one")
            assert first.recv(timeout=WAIT) == b"echo:one"
            session = first.session
        assert session is not None
        client_config.session_ticket = session
        with blocking.connect("127.0.0.1", server.port, client_config, timeout=WAIT) as second:
            assert second.handshake_info is not None and second.handshake_info.resumed
            second.send(b"two")
            assert second.recv(timeout=WAIT) == b"echo:two"


def test_connect_without_a_config_verifies_the_server_certificate() -> None:
    """As ``aio.connect``: against the system's CAs and the host given, so a self-signed
    server is refused (README: the client verifies by default)."""
    server_config, _ = configs()
    with AioEchoServer(server_config) as server, pytest.raises(ProtocolError) as caught:
        blocking.connect("127.0.0.1", server.port, timeout=WAIT)
    assert caught.value.alert == AlertDescription.unknown_ca, caught.value


def connected(
    listener: Listener, client_config: Any, *, timeout: float | None = WAIT
) -> tuple[blocking.DtlsSocket, blocking.DtlsSocket]:
    """A blocking client (on a thread) accepted by ``listener`` (non-blocking socket, on
    this thread): the client's socket and the server's. With ``timeout=None`` the server
    drives its handshake with ``do_handshake``."""
    clients: list[blocking.DtlsSocket] = []
    port = listener.sock.getsockname()[1]
    thread = threading.Thread(
        target=lambda: clients.append(
            blocking.connect("127.0.0.1", port, client_config, timeout=WAIT)
        ),
        daemon=True,
    )
    thread.start()
    admitted = None
    for _ in range(10):  # the ClientHello, then the one with the cookie
        if (admitted := listen_once(listener)) is not None:
            break
    assert admitted is not None
    server = listener.accept(*admitted, timeout=timeout)  # type: ignore[arg-type]
    if timeout is None:
        server.do_handshake(WAIT)
    thread.join(WAIT)
    return clients[0], server


def test_a_client_whose_server_went_away(listening: socket.socket) -> None:
    """A server that vanishes without a word (its socket closed): the ICMP port unreachable
    its host answers with is not authenticated, and after the handshake it is ignored:
    ``send`` does not raise, ``recv`` waits out its timeout."""
    server_config, client_config = configs()
    dtls, server = connected(Listener(listening, server_config), client_config)
    dtls.send(b"x")
    assert server.recv(timeout=WAIT) == b"x"
    listening.close()
    try:
        for _ in range(3):  # each answered with an ICMP error, reported on the next call
            dtls.send(b"anyone?")
        with pytest.raises(TimeoutError, match="no data before the timeout"):
            dtls.recv(timeout=0.5)
    finally:
        dtls.close()
    assert dtls.sock.fileno() == -1


def test_listen_hands_an_accepted_peers_records_to_its_socket(listening: socket.socket) -> None:
    """On a non-blocking socket ``listen()`` reads in batches: a record of an accepted peer
    read there goes to that peer's socket, whose next ``recv()`` returns it."""
    server_config, client_config = configs()
    listener = Listener(listening, server_config)
    dtls, server = connected(listener, client_config)
    dtls.send(b"read by listen()")
    assert listen_once(listener) is None
    assert server.recv(timeout=WAIT) == b"read by listen()"
    dtls.close()
    server.close()


def test_a_completed_handshake_left_to_the_application_is_never_evicted(
    listening: socket.socket, client: socket.socket
) -> None:
    """``accept(..., timeout=None)`` counts the handshake in ``admission`` until it
    completes; once completed it is no longer counted, so a newer handshake from the same
    address (at ``max_handshakes_per_address=1``) does not end it."""
    server_config, client_config = configs()
    server_config.max_handshakes_per_address = 1
    listener = Listener(listening, server_config)
    dtls, server = connected(listener, client_config, timeout=None)
    pending = listener.accept(*admitted_by(listener, client), timeout=None)  # type: ignore[arg-type]
    assert list(listener.admission) == [pending]
    assert listener.admission.evicted_per_address == 0
    dtls.send(b"still here")
    assert server.recv(timeout=WAIT) == b"still here"
    for sock in (dtls, server, pending):
        sock.close()


def test_accept_misuse_is_refused(listening: socket.socket, client: socket.socket) -> None:
    server_config, _ = configs()
    for batch in (0, 1025):
        with pytest.raises(UsageError, match="batch must be between 1 and 1024"):
            Listener(listening, server_config, batch=batch)
    listener = Listener(listening, server_config)
    peer, admit = admitted_by(listener, client)
    with pytest.raises(UsageError, match="this Admit is for"):
        listener.accept(("127.0.0.1", 9), admit)  # type: ignore[arg-type]
    for timeout in (0, -1.0, "soon"):
        with pytest.raises(UsageError, match="timeout must be positive, or None"):
            listener.accept(peer, admit, timeout=timeout)  # type: ignore[arg-type]
    dtls = listener.accept(peer, admit, timeout=None)  # type: ignore[arg-type]
    with pytest.raises(UsageError, match="was already accepted; close its DtlsSocket"):
        listener.accept(peer, admit, timeout=None)  # type: ignore[arg-type]
    dtls.close()


def open_descriptors() -> int:
    return len(os.listdir("/proc/self/fd"))


@pytest.mark.skipif(not os.path.isdir("/proc/self/fd"), reason="counts /proc/self/fd")
def test_a_failed_accept_closes_its_connected_socket(
    listening: socket.socket, client: socket.socket
) -> None:
    """``accept(..., connected_socket=True)`` whose handshake times out (a client silent
    after its cookie) raises, and the socket it made for the peer is closed."""
    server_config, _ = configs()
    listener = Listener(listening, server_config)
    admitted = admitted_by(listener, client)
    before = open_descriptors()
    with pytest.raises(TimeoutError) as caught:
        listener.accept(*admitted, timeout=0.3, connected_socket=True)  # type: ignore[arg-type]
    # The exception's traceback still holds accept's frame, and with it the socket.
    assert caught.value is not None and open_descriptors() == before


def listen_once(listener: Listener) -> object:
    """``listener.listen()`` on its non-blocking socket once a datagram waits there: it
    judges what waits and returns None, or an admission."""
    readable, _, _ = select.select([listener.sock], [], [], WAIT)
    assert readable, "no datagram came"
    return listener.listen()


def admitted_by(listener: Listener, sock: socket.socket) -> tuple[object, object]:
    """Have ``sock`` pass ``listener``'s cookie exchange (a ClientHello, its cookie); the
    listener's ``(peer, admit)``."""
    address = listener.sock.getsockname()
    first = datagram(client_hello(random=os.urandom(32)))
    sock.sendto(first, address)
    assert listen_once(listener) is None  # answered with a HelloVerifyRequest
    reply = sock.recv(2048)
    sock.sendto(with_cookie(first, reply[28 : 28 + reply[27]]), address)
    admitted = listen_once(listener)
    assert admitted is not None
    return admitted  # type: ignore[return-value]


def test_a_handshake_left_to_the_application_times_out(
    listening: socket.socket, client: socket.socket
) -> None:
    """``accept(..., timeout=None)`` then ``do_handshake(timeout)`` with a client that went
    silent after its cookie: TimeoutError."""
    server_config, _ = configs()
    listener = Listener(listening, server_config)
    dtls = listener.accept(*admitted_by(listener, client), timeout=None)  # type: ignore[arg-type]
    with pytest.raises(TimeoutError, match=r"^DTLS handshake timed out$"):
        dtls.do_handshake(timeout=0.3)
    dtls.close()


def test_a_socket_that_does_not_read_gets_at_most_max_inbox_datagrams(
    listening: socket.socket,
) -> None:
    """While the application is in ``listen()`` rather than the accepted socket's
    ``recv()``, the listener keeps that peer's datagrams for the socket, up to
    ``MAX_INBOX_DATAGRAMS``; those beyond are dropped, as by a full socket buffer. The
    socket's ``recv()`` then returns the first ``MAX_INBOX_DATAGRAMS`` records, then the
    next one sent after the listener stopped reading."""
    bound = blocking.MAX_INBOX_DATAGRAMS
    server_config, client_config = configs()
    # One CPU for the client's thread too: a fence then follows everything it sent.
    with one_cpu():
        listener = Listener(listening, server_config)
        dtls, server = connected(listener, client_config)
        try:
            # Whatever the handshake left for the server's socket is read with this.
            dtls.send(b"ready")
            fence(dtls.sock)
            assert listener.listen() is None
            assert server.recv(timeout=WAIT) == b"ready"
            # In rounds of 32, each read by listen() before the next: 32 records fit in
            # the listener's socket buffer, all of them might not.
            for start in range(0, bound + 64, 32):
                for i in range(start, start + 32):
                    dtls.send(b"record %d" % i)
                fence(dtls.sock)
                assert listener.listen() is None
            dtls.send(b"after")
            got = [server.recv(timeout=WAIT) for _ in range(bound + 1)]
            assert got == [b"record %d" % i for i in range(bound)] + [b"after"]
        finally:
            dtls.close()
            server.close()
