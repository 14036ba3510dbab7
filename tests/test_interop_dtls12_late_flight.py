"""A server's last flight that arrives after the client's retransmission timer fired, over
real UDP sockets: our client with our server (`dtlsgate serve`) and with
`openssl s_server -dtls1_2`, through a proxy on loopback that holds the server's first
ChangeCipherSpec/Finished datagram for longer than the client's first timeout (1 s).

The client retransmits its last flight, then completes on the late one; the server answers
the retransmission with its last flight again, which the client must take in silence
(RFC 6347 §4.2.4). A client that answered it instead started an endless exchange with a
server that answers every retransmission of the client's flight (measured with the old
client: 5,684 datagrams in two seconds with our server, 12 with OpenSSL's, which answers
more slowly but as endlessly).

Counted by events, not in a window of wall-clock time (which a client held longer than the
window before it read the late flight passed, whatever it then sent): once the late flight
went to the client, a line goes to the server and back, which the client reads after the
late flight (the proxy sent it that first); then a second line reaches the server, after
everything the client sent before it. The client's first data record marks the end of its
handshake: a handshake or ChangeCipherSpec record from it after that can only answer the
server's repeated flight.
"""

from __future__ import annotations

import select
import socket
import threading
import time
from collections.abc import Callable
from pathlib import Path

from peers import free_udp_port, require, wait_for_line
from test_dtls12_cli import dtlsgate_serve
from test_interop_dtls12 import make_cert, openssl_s_server

from dtlsgate.config import ClientConfig
from dtlsgate.io.blocking import DtlsSocket, connect

HOLD = 1.6  # seconds: past the client's first retransmission at 1 s
CHANGE_CIPHER_SPEC, HANDSHAKE, APPLICATION_DATA = 20, 22, 23

# These are DTLS 1.2 behaviours: the client offers DTLS 1.2 only.
DTLS12_ONLY = (0xFEFD,)


class LateFlightProxy:
    """Forwards one client's datagrams to ``upstream`` and back; the first datagram from
    the server that carries a ChangeCipherSpec record is delivered HOLD seconds late
    (``released`` is set once it went). Keeps the datagrams the client sends
    (``from_client``), in the order received."""

    def __init__(self, upstream: tuple[str, int]) -> None:
        self.upstream = upstream
        self.down = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self.down.bind(("127.0.0.1", 0))
        self.port = int(self.down.getsockname()[1])
        self.up = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self.up.connect(upstream)
        self.client: tuple[str, int] | None = None
        self.from_client: list[bytes] = []
        self.released = threading.Event()
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
                self._held = None
                self.released.set()
            ready, _, _ = select.select([self.down, self.up], [], [], 0.01)
            for sock in ready:
                if sock is self.down:
                    data, self.client = self.down.recvfrom(65535)
                    self.from_client.append(data)
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


def handshake_after_data(sent: list[bytes]) -> int:
    """Of a DTLS 1.2 client's datagrams in the order sent, how many with a handshake or
    ChangeCipherSpec record came after its first one with application data (its handshake
    had ended then: any later one answers the server's repeated last flight)."""
    data = [carries(d, APPLICATION_DATA) for d in sent]
    assert True in data, "the client sent no data"
    after = sent[data.index(True) :]
    return sum(1 for d in after if carries(d, HANDSHAKE) or carries(d, CHANGE_CIPHER_SPEC))


def carries(datagram: bytes, content_type: int) -> bool:
    """Whether a DTLS datagram holds a record of ``content_type``."""
    at = 0
    while at + 13 <= len(datagram):
        if datagram[at] == content_type:
            return True
        at += 13 + int.from_bytes(datagram[at + 11 : at + 13], "big")
    return False


def count_answers(
    port: int, config: ClientConfig, round_trip: Callable[[DtlsSocket, bytes], None]
) -> int:
    """Handshake through the proxy; once the late flight went to the client, a line there
    and back (``round_trip``: the client reads the late flight before the answer), then a
    second line to the server (which the proxy forwards after whatever the client sent
    before it); how many handshake datagrams the client sent after its first data."""
    with (
        LateFlightProxy(("127.0.0.1", port)) as proxy,
        connect("127.0.0.1", proxy.port, config, timeout=15) as conn,
    ):
        assert proxy.released.wait(30), "the server's last flight never came"
        round_trip(conn, b"after a late flight")
        round_trip(conn, b"and another line")
        return handshake_after_data(proxy.from_client)


def echo_round_trip(conn: DtlsSocket, line: bytes) -> None:
    conn.send(line)
    assert conn.recv(timeout=30) == line


def test_late_last_flight_from_our_server(tmp_path: Path) -> None:
    with dtlsgate_serve(tmp_path) as port:
        config = ClientConfig(insecure=True, dtls_versions=DTLS12_ONLY)
        answers = count_answers(port, config, echo_round_trip)
    # Our server answered the client's retransmitted flight with its last flight again;
    # the client sent nothing more (the old client answered each one: hundreds a second).
    assert answers == 0, f"the client sent {answers} handshake datagrams after its data"


def test_late_last_flight_from_openssl_s_server(tmp_path: Path) -> None:
    require("openssl")
    cert, key = make_cert(tmp_path)
    port = free_udp_port()
    with openssl_s_server(port, ["-cert", str(cert), "-key", str(key)]) as proc:
        assert proc.stdin is not None and proc.stdout is not None
        stdin, stdout = proc.stdin, proc.stdout

        def round_trip(conn: DtlsSocket, line: bytes) -> None:
            """The line printed by s_server, then one from s_server's input to the client."""
            conn.send(line + b"\n")
            wait_for_line(stdout, line.decode(), 30)
            stdin.write(b"back: " + line + b"\n")
            stdin.flush()
            assert conn.recv(timeout=30) == b"back: " + line + b"\n"

        config = ClientConfig(server_name="localhost", cafile=str(cert), dtls_versions=DTLS12_ONLY)
        answers = count_answers(port, config, round_trip)
    assert answers == 0, f"the client sent {answers} handshake datagrams after its data"
