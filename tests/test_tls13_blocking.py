"""The blocking TLS 1.3 API (`dtlsgate.io.blocking_tls`) over loopback TCP: ``accept`` with
``config.stateless`` (every client first gets a HelloRetryRequest with a cookie) and what a
server sees when a client is refused, fails or goes away; ``TlsSocket.close`` after the peer
reset the connection. The server is `test_interop_tls13_groups.our_server` (``accept`` in a
thread, one echo); the refused client is ``openssl s_client``."""

from __future__ import annotations

import socket
import struct
import threading

import pytest
from helpers import client_config, server_config
from peers import process, require, wait_for_line
from test_interop_tls13_groups import our_server

from dtlsgate.connection.stream import ClientConnection
from dtlsgate.errors import AlertReceived, UsageError
from dtlsgate.io.blocking_tls import TlsSocket, accept, connect
from dtlsgate.wire.enums import AlertDescription

WAIT = 20.0  # bound on every wait


def raw_client(port: int) -> socket.socket:
    sock = socket.create_connection(("127.0.0.1", port), timeout=WAIT)
    return sock


def read_to_end(sock: socket.socket) -> bytes:
    """Everything the server sends until it closes (bounded by the socket's timeout)."""
    data = b""
    for _ in range(1000):
        chunk = sock.recv(65536)
        if not chunk:
            return data
        data += chunk
    raise AssertionError("the server did not close")


def test_stateless_accept_sends_a_hello_retry_request_then_serves() -> None:
    with (
        our_server(server_config(stateless=True)) as (port, result),
        connect("127.0.0.1", port, client_config(), timeout=WAIT) as tls,
    ):
        assert tls.info is not None and tls.info.hello_retry
        tls.sendall(b"ping")
        assert tls.recv() == b"ping"
    assert "error" not in result, result.get("error")
    assert result["info"].hello_retry and result["data"] == b"ping"


@pytest.mark.interop
def test_stateless_accept_refuses_a_tls12_client_with_protocol_version() -> None:
    """``openssl s_client -tls1_2``: the stateless gate answers protocol_version (as
    ``SSL_stateless`` refuses older versions), ``accept`` raises and closes the socket."""
    require("openssl")
    with our_server(server_config(stateless=True)) as (port, result):
        args = ["openssl", "s_client", "-tls1_2", "-connect", f"127.0.0.1:{port}"]
        with process(args, seconds=WAIT) as client:
            line = wait_for_line(client.stderr, "alert protocol version")
            client.wait(WAIT)  # the server closed: s_client ends on its own
    assert "alert protocol version" in line
    error = result["error"]
    assert type(error) is ConnectionError
    assert str(error) == "ClientHello refused: client does not offer (D)TLS 1.3"


def test_stateless_accept_when_the_client_leaves_before_client_hello2() -> None:
    """Half a ClientHello (the gate waits for the rest), then the client closes."""
    with our_server(server_config(stateless=True)) as (port, result), raw_client(port) as sock:
        sock.sendall(b"\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03")
        sock.shutdown(socket.SHUT_WR)
        assert read_to_end(sock) == b""  # nothing sent back; closed
    error = result["error"]
    assert type(error) is ConnectionError
    assert str(error) == "peer closed the connection before ClientHello2"


def test_stateless_accept_with_a_failing_cookie_callback_says_internal_error() -> None:
    """An application cookie callback that raises is the application's bug: the client is
    told internal_error (RFC 8446 §6.2), ``accept`` raises the `UsageError`."""

    def generate(peer: object) -> bytes:
        raise RuntimeError("the cookie store is down")

    config = server_config(
        stateless=True,
        stateless_cookie_generate=generate,
        stateless_cookie_verify=lambda peer, cookie: True,
    )
    with our_server(config) as (port, result), pytest.raises(AlertReceived) as caught:
        connect("127.0.0.1", port, client_config(), timeout=WAIT)
    assert caught.value.description == AlertDescription.internal_error
    error = result["error"]
    assert type(error) is UsageError and "the cookie store is down" in str(error)


def test_accept_when_the_client_leaves_during_the_handshake() -> None:
    """A ClientHello, then end of stream: the server's flight is sent, then ``accept``
    raises and closes the connection."""
    client = ClientConnection(client_config())
    client.start()
    with our_server(server_config()) as (port, result), raw_client(port) as sock:
        sock.sendall(client.data_to_send())
        sock.shutdown(socket.SHUT_WR)
        flight = read_to_end(sock)
    assert flight[:1] == b"\x16"  # the ServerHello's record, then the close
    error = result["error"]
    assert type(error) is ConnectionError
    assert str(error) == "peer closed the connection during the handshake"


def test_close_after_the_peer_reset_the_connection_closes_the_socket() -> None:
    """A peer that resets the connection: ``recv()`` raises ConnectionResetError; the
    close_notify cannot be sent then, and ``close()`` closes the socket without raising (a
    second ``close()`` does nothing)."""
    with socket.socket() as listening:
        listening.bind(("127.0.0.1", 0))
        listening.listen(1)
        listening.settimeout(WAIT)
        accepted: list[TlsSocket] = []

        def serve() -> None:
            tls = accept(listening, server_config())
            accepted.append(tls)
            # Reset, not close: SO_LINGER with a zero timeout sends RST.
            tls.sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
            tls.sock.close()

        thread = threading.Thread(target=serve, daemon=True)
        thread.start()
        tls = connect("127.0.0.1", listening.getsockname()[1], client_config(), timeout=WAIT)
        thread.join(WAIT)
        assert accepted and not thread.is_alive()
        with pytest.raises(ConnectionResetError):
            tls.recv()  # the session tickets, then the reset
        tls.close()
        assert tls.sock.fileno() == -1
        tls.close()
