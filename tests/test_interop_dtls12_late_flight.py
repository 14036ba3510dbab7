"""A server's last flight that arrives after the client's retransmission timer fired, over
real UDP sockets: our client with our server (`dtlsgate serve`) and with
`openssl s_server -dtls1_2`, through a proxy on loopback that holds the server's first
ChangeCipherSpec/Finished datagram for longer than the client's first timeout (1 s).

The client retransmits its last flight, then completes on the late one; the server answers
the retransmission with its last flight again, which the client must take in silence
(RFC 6347 §4.2.4). A client that answered it instead started an endless exchange with a
server that answers every retransmission of the client's flight: the datagrams counted
after the handshake show which (measured with the old client: 5,684 in two seconds with
our server, 12 with OpenSSL's, which answers more slowly but as endlessly).
"""

from __future__ import annotations

import select
import socket
import threading
import time
from pathlib import Path

import pytest
from peers import require
from test_dtls12_cli import dtlsgate_serve
from test_interop_dtls12 import free_udp_port, make_cert, openssl_s_server

from dtlsgate.config import ClientConfig
from dtlsgate.io.blocking import DtlsSocket, connect

HOLD = 1.6  # seconds: past the client's first retransmission at 1 s
CHANGE_CIPHER_SPEC = 20

# These are DTLS 1.2 behaviours: the client offers DTLS 1.2 only.
DTLS12_ONLY = (0xFEFD,)


class LateFlightProxy:
    """Forwards one client's datagrams to ``upstream`` and back; the first datagram from
    the server that carries a ChangeCipherSpec record is delivered HOLD seconds late.
    Counts the datagrams the client sends (``from_client``) with their times."""

    def __init__(self, upstream: tuple[str, int]) -> None:
        self.upstream = upstream
        self.down = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self.down.bind(("127.0.0.1", 0))
        self.port = int(self.down.getsockname()[1])
        self.up = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self.up.connect(upstream)
        self.client: tuple[str, int] | None = None
        self.from_client: list[float] = []
        self.released_at: float | None = None
        self._held: tuple[float, bytes] | None = None
        self._holding_done = False
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def __enter__(self) -> LateFlightProxy:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join(5)
        self.down.close()
        self.up.close()

    def _run(self) -> None:
        deadline = time.monotonic() + 120  # a backstop: the test ends it before
        while not self._stop.is_set() and time.monotonic() < deadline:
            if self._held is not None and time.monotonic() >= self._held[0]:
                assert self.client is not None
                self.down.sendto(self._held[1], self.client)
                self.released_at = time.monotonic()
                self._held = None
            ready, _, _ = select.select([self.down, self.up], [], [], 0.01)
            for sock in ready:
                if sock is self.down:
                    data, self.client = self.down.recvfrom(65535)
                    self.from_client.append(time.monotonic())
                    self.up.send(data)
                    continue
                data = self.up.recv(65535)
                if self.client is None:
                    continue
                if not self._holding_done and carries(data, CHANGE_CIPHER_SPEC):
                    self._holding_done = True
                    self._held = (time.monotonic() + HOLD, data)
                    continue
                self.down.sendto(data, self.client)

    def sent_after_release(self, window: float) -> int:
        assert self.released_at is not None, "the server's last flight never came"
        return sum(1 for t in self.from_client if self.released_at < t <= self.released_at + window)


def carries(datagram: bytes, content_type: int) -> bool:
    """Whether a DTLS datagram holds a record of ``content_type``."""
    at = 0
    while at + 13 <= len(datagram):
        if datagram[at] == content_type:
            return True
        at += 13 + int.from_bytes(datagram[at + 11 : at + 13], "big")
    return False


def exchange_and_count(port: int, config: ClientConfig, line: bytes) -> tuple[int, bytes]:
    """Handshake through the proxy, wait, count what the client sent after the late
    flight arrived, then check the connection still carries data."""
    with (
        LateFlightProxy(("127.0.0.1", port)) as proxy,
        connect("127.0.0.1", proxy.port, config, timeout=15) as conn,
    ):
        read_quietly(conn, 2.5)
        counted = proxy.sent_after_release(2.0)
        conn.send(line)
        return counted, conn.recv(timeout=10)


def read_quietly(conn: DtlsSocket, seconds: float) -> None:
    """Read for ``seconds`` (the server sends no data meanwhile), so that the client takes
    the late flight and the server's answers, and answers them if it would."""
    with pytest.raises(TimeoutError):
        conn.recv(timeout=seconds)


def test_late_last_flight_from_our_server(tmp_path: Path) -> None:
    with dtlsgate_serve(tmp_path) as port:
        config = ClientConfig(insecure=True, dtls_versions=DTLS12_ONLY)
        counted, echoed = exchange_and_count(port, config, b"after a late flight")
    assert echoed == b"after a late flight"
    # Our server answered the client's retransmitted flight with its last flight again;
    # the client sent nothing more (the old client answered each one: hundreds a second).
    assert counted <= 1, f"the client sent {counted} datagrams after its handshake ended"


def test_late_last_flight_from_openssl_s_server(tmp_path: Path) -> None:
    require("openssl")
    cert, key = make_cert(tmp_path)
    port = free_udp_port()
    with openssl_s_server(port, ["-cert", str(cert), "-key", str(key)]) as proc:
        config = ClientConfig(server_name="localhost", cafile=str(cert), dtls_versions=DTLS12_ONLY)
        with (
            LateFlightProxy(("127.0.0.1", port)) as proxy,
            connect("127.0.0.1", proxy.port, config, timeout=15) as conn,
        ):
            read_quietly(conn, 2.5)
            counted = proxy.sent_after_release(2.0)
        assert proc.poll() is None or proc.returncode == 0
    assert counted <= 1, f"the client sent {counted} datagrams after its handshake ended"
