"""``Listener.accept(..., connected_socket=True)``: after the stateless listen, each admitted
peer gets a UDP socket of its own, bound to the listener's address and connected to the peer
(OpenSSL's pattern after ``DTLSv1_listen``), while the listener keeps serving the gate on its
socket. Checked with `openssl s_client -dtls1_2` and with our client."""

from __future__ import annotations

import socket
import threading
import time
from pathlib import Path
from typing import Any

import pytest
from test_interop_dtls12 import make_cert, run_s_client, server_config

from dtlsgate.config import ClientConfig
from dtlsgate.io.blocking import DtlsSocket, connect
from dtlsgate.io.listener import Listener


class ConnectedEchoServer:
    """Admit ``count`` peers one after the other, each on a connected socket, and keep every
    connection open until the end: echo each record with a prefix, up to 5 per peer."""

    def __init__(self, config: Any, count: int) -> None:
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self.sock.bind(("127.0.0.1", 0))
        self.sock.settimeout(0.5)
        self.port = int(self.sock.getsockname()[1])
        self.listener = Listener(self.sock, config)
        self.count = count
        self.conns: list[DtlsSocket] = []
        self.errors: list[BaseException] = []
        self.received: list[bytes] = []
        # (connection socket is the listener's, its local address, its connected peer)
        self.sockets: list[tuple[bool, Any, Any]] = []
        self.thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        deadline = time.monotonic() + 40
        try:
            while len(self.conns) < self.count and time.monotonic() < deadline:
                admitted = self.listener.listen()
                if admitted is None:
                    continue
                conn = self.listener.accept(*admitted, timeout=15, connected_socket=True)
                self.conns.append(conn)
                shared = conn.sock is self.sock
                self.sockets.append((shared, conn.sock.getsockname(), conn.sock.getpeername()))
                data = conn.recv(timeout=10)
                self.received.append(data)
                conn.send(b"echo:" + data)
        except Exception as exc:  # recorded for the test to assert on
            self.errors.append(exc)

    def __enter__(self) -> ConnectedEchoServer:
        self.thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.thread.join(45)
        for conn in self.conns:
            conn.close()
        self.sock.close()


def check_connected(server: ConnectedEchoServer) -> None:
    assert not server.errors, server.errors
    assert len(server.conns) == server.count
    for conn, (shared, local, remote) in zip(server.conns, server.sockets, strict=True):
        assert not shared
        assert local == ("127.0.0.1", server.port)
        assert remote == conn.peer


@pytest.mark.interop
def test_openssl_s_client_served_on_connected_sockets(tmp_path: Path) -> None:
    cert, key = make_cert(tmp_path)
    with ConnectedEchoServer(server_config(cert, key), count=2) as server:
        first = run_s_client(server.port, ["-CAfile", str(cert)], b"first client")
        # The first connection's socket stays open and connected while the listener
        # admits the second client on the shared address.
        second = run_s_client(server.port, ["-CAfile", str(cert)], b"second client")
    check_connected(server)
    assert (first, second) == ("echo:first client", "echo:second client")
    assert server.received == [b"first client\n", b"second client\n"]
    assert server.conns[0].peer != server.conns[1].peer


def test_our_clients_at_once_on_connected_sockets(tmp_path: Path) -> None:
    cert, key = make_cert(tmp_path)
    config = ClientConfig(server_name="localhost", cafile=str(cert))
    with ConnectedEchoServer(server_config(cert, key), count=2) as server:
        a = connect("127.0.0.1", server.port, config, timeout=15)
        a.send(b"from a")
        assert a.recv(timeout=10) == b"echo:from a"
        b = connect("127.0.0.1", server.port, config, timeout=15)
        b.send(b"from b")
        assert b.recv(timeout=10) == b"echo:from b"
        a.close()
        b.close()
    check_connected(server)


def test_connected_socket_needs_a_peer_address() -> None:
    from dtlsgate.errors import UsageError

    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
        sock.bind(("127.0.0.1", 0))
        with pytest.raises(UsageError, match="peer's address"):
            Listener(sock)._connected_socket(None)
