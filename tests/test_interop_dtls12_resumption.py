"""DTLS 1.2 session resumption against real peers (issue 15), both directions, each checked
by the peer's own report and on the wire, through a relay that records every datagram: a
resumed handshake is abbreviated (RFC 5246 §7.3), so the server sends a ServerHello and no
Certificate, ServerKeyExchange or ServerHelloDone.

- `openssl s_client -sess_out` then `-sess_in`, with tickets and with `-no_ticket` (the
  session ID cache): OpenSSL prints "Reused";
- `gnutls-cli --resume`, with and without `--noticket`: "This is a resumed session";
- our client resuming against `openssl s_server -dtls1_2` and `gnutls-serv --udp`.
"""

from __future__ import annotations

import select
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any

import pytest
from peers import converse, free_udp_port, openssl_dtls_client, process, require, wait_bound
from test_interop_dtls12 import EchoServer, make_cert, openssl_s_server, server_config

from dtlsgate.config import ClientConfig
from dtlsgate.handshake.dtls12.resume import Dtls12Session
from dtlsgate.io.blocking import connect
from dtlsgate.wire.enums import ContentType, HandshakeType
from dtlsgate.wire.handshake import decode_dtls_handshake_fragments
from dtlsgate.wire.record import split_dtls_records

pytestmark = pytest.mark.interop

HT = HandshakeType
FULL = [HT.SERVER_HELLO, HT.CERTIFICATE, HT.SERVER_KEY_EXCHANGE, HT.SERVER_HELLO_DONE]


class RecordingRelay:
    """A UDP relay on loopback in front of ``upstream``: one upstream socket per client
    address, every datagram the server sends recorded per client (each new connection of
    the peers here comes from a new port)."""

    def __init__(self, upstream_port: int) -> None:
        self.upstream = ("127.0.0.1", upstream_port)
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self.sock.bind(("127.0.0.1", 0))
        self.port = int(self.sock.getsockname()[1])
        self.from_server: dict[tuple[str, int], list[bytes]] = {}
        self._clients: dict[socket.socket, tuple[str, int]] = {}
        self._by_client: dict[tuple[str, int], socket.socket] = {}
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def __enter__(self) -> RecordingRelay:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join(5)
        for s in [self.sock, *self._clients]:
            s.close()

    def _run(self) -> None:
        deadline = time.monotonic() + 60
        while not self._stop.is_set() and time.monotonic() < deadline:
            ready, _, _ = select.select([self.sock, *self._clients], [], [], 0.1)
            for s in ready:
                if s is self.sock:
                    data, client = s.recvfrom(65535)
                    up = self._by_client.get(client)
                    if up is None and len(self._by_client) < 16:
                        up = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
                        up.connect(self.upstream)
                        self._by_client[client] = up
                        self._clients[up] = client
                        self.from_server[client] = []
                    if up is not None:
                        up.send(data)
                else:
                    client = self._clients[s]
                    try:
                        data = s.recv(65535)
                    except ConnectionRefusedError:
                        continue
                    self.from_server[client].append(data)
                    self.sock.sendto(data, client)

    def server_flights(self) -> list[list[int]]:
        """Per connection (in order), the plaintext handshake messages the server sent,
        HelloVerifyRequests left out."""
        return [
            [t for t in plaintext_types(datagrams) if t != HT.HELLO_VERIFY_REQUEST]
            for datagrams in self.from_server.values()
        ]


def plaintext_types(datagrams: list[bytes]) -> list[int]:
    out: list[int] = []
    for d in datagrams:
        for record in split_dtls_records(d):
            if record.content_type == ContentType.HANDSHAKE and record.epoch == 0:
                fragments = decode_dtls_handshake_fragments(record.fragment)
                out += [h.msg_type for h, _ in fragments if h.fragment_offset == 0]
    return out


def dedup(types: list[int]) -> list[int]:
    """Message types in order of first appearance (retransmissions left out)."""
    return list(dict.fromkeys(types))


# ---- peers' clients against our server ------------------------------------------------------------


def run_s_client(port: int, extra: list[str], until: str = "echo:") -> str:
    """`openssl s_client` (not -quiet: it prints "New" or "Reused"), one line sent; what
    it printed up to the line starting with ``until`` (the server's answer)."""
    with process(openssl_dtls_client(port, "-no_ign_eof", *extra), seconds=20) as proc:
        return converse(proc, ((b"hello from openssl\n", until),), 15)


@pytest.mark.parametrize("tickets", [True, False], ids=["ticket", "no_ticket"])
def test_openssl_s_client_resumes_with_our_server(tmp_path: Path, tickets: bool) -> None:
    require("openssl")
    cert, key = make_cert(tmp_path)
    sess = tmp_path / "sess.pem"
    extra = ["-CAfile", str(cert)] + ([] if tickets else ["-no_ticket"])
    with (
        EchoServer(server_config(cert, key), count=2) as server,
        RecordingRelay(server.port) as relay,
    ):
        first = run_s_client(relay.port, [*extra, "-sess_out", str(sess)])
        second = run_s_client(relay.port, [*extra, "-sess_in", str(sess)])
    assert not server.errors, server.errors
    assert "New, TLSv1.2" in first and "echo:hello from openssl" in first
    assert "Reused, TLSv1.2" in second and "echo:hello from openssl" in second
    assert [i.resumed for i in server.infos] == [False, True]
    full, resumed = (dedup(f) for f in relay.server_flights())
    assert full == ([*FULL, HT.NEW_SESSION_TICKET] if tickets else FULL)
    assert resumed == [HT.SERVER_HELLO]


def run_gnutls_cli_resume(port: int, extra: list[str]) -> str:
    args = ["gnutls-cli", "--udp", "-p", str(port), "127.0.0.1", "--resume", *extra]
    with process(args, seconds=25) as proc:
        exchange = ((b"", "- Simple Client Mode"), (b"hello from gnutls\n", "echo:"))
        return converse(proc, exchange, 20)


@pytest.mark.parametrize("tickets", [True, False], ids=["ticket", "noticket"])
def test_gnutls_cli_resumes_with_our_server(tmp_path: Path, tickets: bool) -> None:
    require("gnutls-cli")
    cert, key = make_cert(tmp_path)
    extra = ["--x509cafile", str(cert)] + ([] if tickets else ["--noticket"])
    # gnutls-cli 3.7 sends the session_ticket extension even with --noticket: our server
    # then issues none, for the session ID to be what resumes.
    config = server_config(cert, key, session_tickets=1 if tickets else 0)
    with (
        EchoServer(config, count=2) as server,
        RecordingRelay(server.port) as relay,
    ):
        out = run_gnutls_cli_resume(relay.port, extra)
    assert not server.errors, server.errors
    assert "*** This is a resumed session" in out and "echo:hello from gnutls" in out
    assert [i.resumed for i in server.infos] == [False, True]
    full, resumed = (dedup(f) for f in relay.server_flights())
    assert full == ([*FULL, HT.NEW_SESSION_TICKET] if tickets else FULL)
    assert resumed == [HT.SERVER_HELLO]


# ---- our client against the peers' servers ------------------------------------------------------


def connect_twice(port: int, config: ClientConfig) -> tuple[Any, Any, Dtls12Session]:
    """Connect, exchange a line, keep the session; connect again offering it."""
    with connect("127.0.0.1", port, config, timeout=15) as conn:
        conn.send(b"ping 1\n")
        first = conn.handshake_info
        session = conn.session
    assert session is not None
    again = ClientConfig(
        server_name=config.server_name, cafile=config.cafile, session_ticket=session
    )
    with connect("127.0.0.1", port, again, timeout=15) as conn:
        conn.send(b"ping 2\n")
        second = conn.handshake_info
    return first, second, session


@pytest.mark.parametrize("tickets", [True, False], ids=["ticket", "no_ticket"])
def test_our_client_resumes_with_openssl_s_server(tmp_path: Path, tickets: bool) -> None:
    require("openssl")
    cert, key = make_cert(tmp_path)
    port = free_udp_port()
    extra = ["-cert", str(cert), "-key", str(key), "-naccept", "2"]
    extra += [] if tickets else ["-no_ticket"]
    with openssl_s_server(port, extra) as proc, RecordingRelay(port) as relay:
        config = ClientConfig(server_name="localhost", cafile=str(cert))
        first, second, session = connect_twice(relay.port, config)
        assert proc.stdout is not None
    assert bool(session.ticket) == tickets
    assert not first.resumed and second.resumed
    full, resumed = (dedup(f) for f in relay.server_flights())
    assert full == ([*FULL, HT.NEW_SESSION_TICKET] if tickets else FULL)
    assert resumed[0] == HT.SERVER_HELLO and HT.CERTIFICATE not in resumed


@pytest.mark.parametrize("tickets", [True, False], ids=["ticket", "noticket"])
def test_our_client_resumes_with_gnutls_serv(tmp_path: Path, tickets: bool) -> None:
    require("gnutls-serv")
    cert, key = make_cert(tmp_path)
    port = free_udp_port()
    args = ["gnutls-serv", "--udp", "--echo", "-p", str(port)]
    args += ["--x509certfile", str(cert), "--x509keyfile", str(key)]
    args += [] if tickets else ["--noticket"]
    with (
        process(args, seconds=30, stdin=subprocess.DEVNULL) as server,
        RecordingRelay(port) as relay,
    ):
        wait_bound(server, port)
        config = ClientConfig(server_name="localhost", cafile=str(cert))
        first, second, session = connect_twice(relay.port, config)
    assert bool(session.ticket) == tickets
    assert not first.resumed and second.resumed
    full, resumed = (dedup(f) for f in relay.server_flights())
    # gnutls-serv asks for an optional client certificate.
    expected = [*FULL[:3], HT.CERTIFICATE_REQUEST, HT.SERVER_HELLO_DONE]
    assert full == ([*expected, HT.NEW_SESSION_TICKET] if tickets else expected)
    assert resumed[0] == HT.SERVER_HELLO and HT.CERTIFICATE not in resumed


def test_wolfssl_client_resumes_with_our_server(tmp_path: Path) -> None:
    """wolfSSL's client in resumption mode (`-r`): it connects, keeps the session (a ticket
    from us), and connects again resuming it. Both ClientHellos went through the cookie
    exchange: the gate stays as it is for a resuming client (issue 15 item 5)."""
    from peers import wolfssl_tree
    from test_interop_wolfssl import cert_config, run_wolfssl_client

    cert = make_cert(tmp_path)
    args = ["-v", "3", "-A", str(cert[0]), "-x", "-r"]
    run = run_wolfssl_client(wolfssl_tree(), cert_config(cert), args)
    assert run.returncode == 0, run.stdout
    assert "SSL reused session" in run.stdout
    assert run.received == [b"hello wolfssl!", b"resuming wolfssl!"]
    assert run.stats["reply"] >= 2 and run.stats["admit"] == 2


@pytest.mark.parametrize("same_key", [True, False], ids=["same-key", "other-key"])
def test_a_ticket_from_one_dtlsgate_serve_resumes_on_another(
    tmp_path: Path, same_key: bool
) -> None:
    """Fleet: `openssl s_client -sess_out` against one `dtlsgate serve`, `-sess_in` against
    another process. With the same --master-key the ticket opens there ("Reused", the
    abbreviated handshake on the wire); with another key it does not, and the handshake is
    a full one ("New"), not an error."""
    from test_dtls12_cli import dtlsgate_serve

    key_a, key_b = "11" * 32, ("11" if same_key else "22") * 32
    sess = tmp_path / "sess.pem"
    with (
        dtlsgate_serve(tmp_path, "--master-key", key_a) as port_a,
        dtlsgate_serve(tmp_path, "--master-key", key_b) as port_b,
        RecordingRelay(port_b) as relay_b,
    ):
        echo = "hello from openssl"  # serve echoes each record as it is
        first = run_s_client(port_a, ["-sess_out", str(sess)], echo)
        second = run_s_client(relay_b.port, ["-sess_in", str(sess)], echo)
    assert "New, TLSv1.2" in first and "hello from openssl" in first
    assert "hello from openssl" in second.split("Cipher is")[-1]
    (flight,) = (dedup(f) for f in relay_b.server_flights())
    if same_key:
        assert "Reused, TLSv1.2" in second
        assert flight == [HT.SERVER_HELLO]
    else:
        assert "New, TLSv1.2" in second
        assert flight == [*FULL, HT.NEW_SESSION_TICKET]


def test_openssl_client_resuming_in_memory_with_a_default_config_server() -> None:
    """OpenSSL's DTLS 1.2 client (through pyOpenSSL, memory BIOs) resuming with a ticket
    puts its long ClientHello in two records of one datagram; our server with the default
    config (DTLS 1.3 on, so the gate reassembles cookie-less fragments) must answer it.
    `bench/resumption.py` runs exactly that; it raises when a handshake does not complete."""
    pytest.importorskip("OpenSSL")
    bench = Path(__file__).resolve().parent.parent / "bench" / "resumption.py"
    out = subprocess.run(
        [sys.executable, "-W", "ignore", str(bench), "--count", "3", "--rounds", "1"],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert out.returncode == 0, out.stderr[-2000:]
    assert "dtlsgate resumed" in out.stdout, out.stdout
