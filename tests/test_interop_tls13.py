"""TLS 1.3 interop with real peers, started by the tests on 127.0.0.1 under ``timeout``:
our server (``dtlsgate serve --tls``) with openssl s_client (compat mode, -no_middlebox,
forced into an HRR, stateless), gnutls-cli and curl; our client (``dtlsgate connect --tls``)
with openssl s_server (also -stateless) and gnutls-serv. Application data is checked both
ways. Also: a ClientHello1 answered by one server process and ClientHello2 completed by
another sharing only the cookie master key; TLS 1.2-only clients refused cleanly."""

from __future__ import annotations

import contextlib
import signal
import socket
import ssl
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from peers import (
    announced_port,
    capture_to,
    free_tcp_port,
    process,
    require,
    wait_bound,
    wait_for_line,
)

from dtlsgate.config import ClientConfig
from dtlsgate.connection.stream import ClientConnection
from dtlsgate.crypto.certs import make_self_signed
from dtlsgate.events import DataReceived

pytestmark = pytest.mark.interop
MASTER = "11" * 32
PYTHON = [sys.executable, "-m", "dtlsgate"]


@pytest.fixture(scope="module")
def certs(tmp_path_factory: pytest.TempPathFactory) -> tuple[str, str]:
    d = tmp_path_factory.mktemp("tls13")
    cert, key = make_self_signed("localhost")
    (d / "cert.pem").write_bytes(cert)
    (d / "key.pem").write_bytes(key)
    return str(d / "cert.pem"), str(d / "key.pem")


@contextlib.contextmanager
def our_server(
    certs: tuple[str, str], *extra: str, connections: int = 1
) -> Iterator[tuple[subprocess.Popen[bytes], int]]:
    args = [*PYTHON, "serve", "--tls", "--host", "127.0.0.1", "--port", "0"]
    args += ["--cert", certs[0], "--key", certs[1], "--max-connections", str(connections)]
    with process([*args, *extra], seconds=30, stdin=subprocess.DEVNULL) as proc:
        yield proc, announced_port(proc, "listening on ")


# ---- our server, their clients -----------------------------------------------------------


@pytest.mark.parametrize(
    ("client_args", "server_args", "retry"),
    [
        ([], [], False),
        (["-no_middlebox"], [], False),
        (["-groups", "P-256:X25519"], [], True),
        ([], ["--stateless"], True),
        (["-no_middlebox", "-groups", "P-256:X25519"], ["--stateless"], True),
    ],
    ids=["compat", "no_middlebox", "hrr", "stateless", "stateless_no_middlebox_hrr"],
)
def test_openssl_client_with_our_server(
    certs: tuple[str, str], client_args: list[str], server_args: list[str], retry: bool
) -> None:
    require("openssl")
    with our_server(certs, *server_args) as (server, port):
        args = ["openssl", "s_client", "-tls1_3", "-connect", f"127.0.0.1:{port}"]
        args += ["-quiet", "-no_ign_eof", "-CAfile", certs[0], *client_args]
        with process(args, seconds=20) as client:
            assert client.stdin is not None
            client.stdin.write(b"hello from openssl\n")
            client.stdin.flush()
            accepted = wait_for_line(server.stdout, "accepted")
            assert f"hello_retry={retry}" in accepted
            # Our server echoes: the line comes back through openssl's decryption.
            wait_for_line(client.stdout, "hello from openssl")


def test_gnutls_client_with_our_server(certs: tuple[str, str]) -> None:
    require("gnutls-cli")
    with our_server(certs) as (server, port):
        args = ["gnutls-cli", "-p", str(port), "127.0.0.1", "--x509cafile", certs[0]]
        args += ["--priority", "NORMAL:-VERS-ALL:+VERS-TLS1.3"]
        with process(args, seconds=20) as client:
            assert client.stdin is not None
            client.stdin.write(b"hello from gnutls\n")
            client.stdin.flush()
            wait_for_line(server.stdout, "accepted")
            wait_for_line(client.stdout, "hello from gnutls")


@pytest.mark.parametrize("stateless", [False, True], ids=["stateful", "stateless"])
def test_curl_with_our_www_server(certs: tuple[str, str], stateless: bool) -> None:
    require("curl")
    extra = ["--www", *(["--stateless"] if stateless else [])]
    with our_server(certs, *extra) as (_, port):
        out = subprocess.run(
            [
                "timeout",
                "15",
                "curl",
                "-s",
                "--tlsv1.3",
                "--cacert",
                certs[0],
                f"https://localhost:{port}/",
            ],
            capture_output=True,
            check=True,
        )
    assert b"dtlsgate TLS 1.3" in out.stdout
    assert f"hello retry: {stateless}".encode() in out.stdout


@pytest.mark.parametrize("stateless", [False, True], ids=["stateful", "stateless"])
def test_tls12_only_client_is_refused_cleanly(certs: tuple[str, str], stateless: bool) -> None:
    require("openssl")
    extra = ["--stateless"] if stateless else []
    with our_server(certs, *extra, connections=1) as (server, port):
        args = ["openssl", "s_client", "-tls1_2", "-connect", f"127.0.0.1:{port}"]
        with process(args, seconds=15, stdin=subprocess.DEVNULL) as client:
            _, err = client.communicate(timeout=15)
        assert client.returncode != 0
        assert b"protocol version" in err
        _, server_err = server.communicate(timeout=15)
    assert b"handshake failed" in server_err or b"refused" in server_err


def test_serve_stops_on_sigterm_with_connections_open(certs: tuple[str, str]) -> None:
    """SIGTERM stops ``serve --tls`` at once while clients are connected: the established
    one gets close_notify (Python's ``ssl``, OpenSSL, tells it from a bare TCP close: a
    clean end of stream, not an EOF error), one whose handshake never started is closed.
    From Python 3.12.1 on, asyncio's ``Server.wait_closed`` waits for every connection to
    close: before ``close_all`` the server kept running as long as a client stayed."""
    context = ssl.create_default_context(cafile=certs[0])
    context.minimum_version = ssl.TLSVersion.TLSv1_3
    with (
        our_server(certs, connections=100) as (server, port),
        socket.create_connection(("127.0.0.1", port), timeout=15) as tcp,
        context.wrap_socket(tcp, server_hostname="localhost", suppress_ragged_eofs=False) as tls,
        socket.create_connection(("127.0.0.1", port), timeout=15) as silent,
    ):
        tls.sendall(b"hello\n")
        assert tls.recv(100) == b"hello\n"
        server.send_signal(signal.SIGTERM)
        assert tls.recv(100) == b""  # close_notify: an EOF error would raise here
        assert silent.recv(100) == b""
        assert server.wait(15) == 0


# ---- our client, their servers -------------------------------------------------------------


def our_client(port: int, certs: tuple[str, str], data: bytes, *extra: str) -> bytes:
    args = ["timeout", "20", *PYTHON, "connect", "--tls", f"127.0.0.1:{port}"]
    args += ["--cafile", certs[0], "--servername", "localhost", *extra]
    out = subprocess.run(args, input=data, capture_output=True, timeout=25)
    assert out.returncode == 0, out.stderr.decode()
    return out.stdout + out.stderr


@pytest.mark.parametrize("stateless", [False, True], ids=["stateful", "stateless"])
def test_our_client_with_openssl_server(certs: tuple[str, str], stateless: bool) -> None:
    require("openssl")
    port = free_tcp_port()
    args = ["openssl", "s_server", "-tls1_3", "-accept", f"127.0.0.1:{port}", "-naccept", "1"]
    args += ["-cert", certs[0], "-key", certs[1], *(["-stateless"] if stateless else [])]
    with process(args, seconds=25) as server:
        # Not a probe connection: -naccept 1 would spend its one accept on it.
        wait_for_line(server.stdout, "ACCEPT")
        result: dict[str, bytes] = {}

        def run_client() -> None:
            result["out"] = our_client(port, certs, b"ping from dtlsgate\n")

        import threading

        thread = threading.Thread(target=run_client)
        thread.start()
        # s_server prints what it receives; then we answer through its stdin.
        wait_for_line(server.stdout, "ping from dtlsgate", 15)
        assert server.stdin is not None
        server.stdin.write(b"pong from openssl\n")
        server.stdin.flush()
        thread.join(25)
    out = result["out"]
    assert b"pong from openssl" in out
    assert f"hello_retry={stateless}".encode() in out


def test_our_client_with_gnutls_server(certs: tuple[str, str]) -> None:
    require("gnutls-serv")
    port = free_tcp_port()
    args = ["gnutls-serv", "--echo", "-p", str(port), "--x509certfile", certs[0]]
    args += ["--x509keyfile", certs[1], "--priority", "NORMAL:-VERS-ALL:+VERS-TLS1.3"]
    with process(args, seconds=25, stdin=subprocess.DEVNULL) as proc:
        wait_bound(proc, port)
        out = our_client(port, certs, b"ping from dtlsgate\n")
    assert b"ping from dtlsgate" in out


# ---- two processes sharing only the cookie master key --------------------------------------


def exchange(sock: socket.socket, client: ClientConnection, until: object) -> None:
    """Write what the client has, read and feed until ``until()`` holds (bounded)."""
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        if until():  # type: ignore[operator]
            return
        out = client.data_to_send()
        if out:
            sock.sendall(out)
        data = sock.recv(65536)
        if not data:
            break
        client.receive_data(data, time.time())
    if not until():  # type: ignore[operator]
        raise AssertionError("exchange did not finish")


def test_client_hello2_completes_on_another_process(certs: tuple[str, str]) -> None:
    extra = ["--stateless", "--master-key", MASTER]
    with our_server(certs, *extra) as (first, port1), our_server(certs, *extra) as (second, port2):
        config = ClientConfig(server_name="localhost", cafile=certs[0])
        client = ClientConnection(config)
        client.start()
        with socket.create_connection(("127.0.0.1", port1), 10) as sock:
            # ClientHello1 to the first process; its HelloRetryRequest puts the client in
            # wait for the ServerHello and makes it queue ClientHello2.
            exchange(sock, client, lambda: client.state.retry is not None)  # type: ignore[union-attr]
        with socket.create_connection(("127.0.0.1", port2), 10) as sock:
            exchange(sock, client, lambda: client.handshake_complete)
            sock.sendall(client.data_to_send())  # the client's Finished
            client.send(b"across processes\n")
            received: list[bytes] = []

            def got() -> bool:
                while (e := client.next_event()) is not None:
                    if isinstance(e, DataReceived):
                        received.append(e.data)
                return b"across processes\n" in b"".join(received)

            sock.sendall(client.data_to_send())
            exchange(sock, client, got)
        assert "hello_retry=True" in wait_for_line(second.stdout, "accepted")
        # The first process never completed a handshake: it only sent the HRR.
        first.kill()
        out, _ = first.communicate(timeout=5)
        assert b"accepted" not in out


def test_client_hello2_with_another_master_key_is_refused(certs: tuple[str, str]) -> None:
    with (
        our_server(certs, "--stateless", "--master-key", MASTER) as (_, port1),
        our_server(certs, "--stateless", "--master-key", "22" * 32) as (_, port2),
    ):
        client = ClientConnection(ClientConfig(server_name="localhost", cafile=certs[0]))
        client.start()
        with socket.create_connection(("127.0.0.1", port1), 10) as sock:
            exchange(sock, client, lambda: client.state.retry is not None)  # type: ignore[union-attr]
        with socket.create_connection(("127.0.0.1", port2), 10) as sock:
            sock.sendall(client.data_to_send())
            sock.settimeout(10)
            reply = sock.recv(100)
    # A fatal illegal_parameter alert, in the clear, then the connection closes.
    assert reply == bytes((21, 3, 3, 0, 2, 2, 47))


# ---- session resumption (RFC 8446 §4.6.1, psk_dhe_ke) -------------------------------------


def test_openssl_client_resumes_with_our_server(
    certs: tuple[str, str], tmp_path: pytest.TempPathFactory
) -> None:
    require("openssl")
    session = str(tmp_path / "session.pem")  # type: ignore[operator]
    with our_server(certs, connections=2) as (server, port):
        base = ["openssl", "s_client", "-tls1_3", "-connect", f"127.0.0.1:{port}"]
        base += ["-CAfile", certs[0]]
        # First connection: a full handshake; s_client stores our NewSessionTicket.
        # (-no_ign_eof after -quiet, which turns ign_eof on: s_client ends at end of input.)
        first = [*base, "-quiet", "-no_ign_eof", "-sess_out", session]
        with process(first, seconds=20) as client:
            assert client.stdin is not None
            client.stdin.write(b"first\n")
            client.stdin.flush()
            wait_for_line(client.stdout, "first")  # echoed: our ticket went before the echo
            client.stdin.close()
            client.wait(10)
        assert "resumed=False" in wait_for_line(server.stdout, "accepted")
        # Second connection offers the ticket: resumed on both sides.
        with process([*base, "-no_ign_eof", "-sess_in", session], seconds=20) as client:
            assert client.stdin is not None
            client.stdin.write(b"second\n")
            client.stdin.flush()
            assert "Reused, TLSv1.3" in wait_for_line(client.stdout, "second")
        assert "resumed=True" in wait_for_line(server.stdout, "accepted")


def tickets_before(tls: object, server: subprocess.Popen[bytes], line: bytes) -> list[object]:
    """The session tickets ``tls`` (our client, connected to ``server``, an `openssl
    s_server`) has once ``line``, written to the server's standard input, has come back
    through the connection: s_server sends its NewSessionTickets as it completes the
    handshake, before it reads its input, so over TCP they arrive first. An event to wait
    on instead of a time: a bounded wait for the tickets ended early on a loaded machine,
    and read them through the socket's private pump."""
    from dtlsgate.io.blocking_tls import TlsSocket

    assert isinstance(tls, TlsSocket) and server.stdin is not None
    server.stdin.write(line)
    server.stdin.flush()
    received = b""
    while not received.endswith(b"\n"):  # each recv() bounded by the socket's timeout
        data = tls.recv()
        assert data, f"the connection ended after {received!r}"
        received += data
    assert received == line, received
    return list(tls.tickets)


@pytest.mark.parametrize("hrr", [False, True], ids=["plain", "after_hrr"])
def test_our_client_resumes_with_openssl_server(certs: tuple[str, str], hrr: bool) -> None:
    require("openssl")
    from dtlsgate.io.blocking_tls import connect
    from dtlsgate.wire.enums import NamedGroup

    port = free_tcp_port()
    args = ["openssl", "s_server", "-tls1_3", "-accept", f"127.0.0.1:{port}", "-naccept", "2"]
    args += ["-cert", certs[0], "-key", certs[1], *(["-groups", "X25519"] if hrr else [])]
    # Our first key share is for P-256; a server accepting only X25519 answers with an HRR.
    groups = (NamedGroup.secp256r1, NamedGroup.x25519) if hrr else None
    with process(args, seconds=25) as server:
        wait_for_line(server.stdout, "ACCEPT")
        config = ClientConfig(server_name="localhost", cafile=certs[0], groups=groups)
        with connect("127.0.0.1", port, config) as tls:
            assert tls.info is not None and not tls.info.resumed
            tickets = tickets_before(tls, server, b"tickets are ahead of this line\n")
            tls.sendall(b"first from dtlsgate\n")
            wait_for_line(server.stdout, "first from dtlsgate")
        assert tickets, "openssl sent no NewSessionTicket"
        config = ClientConfig(
            server_name="localhost", cafile=certs[0], groups=groups, session_ticket=tickets[-1]
        )
        with connect("127.0.0.1", port, config) as tls:
            assert tls.info is not None and tls.info.resumed
            assert tls.info.hello_retry is hrr
            assert tls.info.peer_certificates == ()
            tls.sendall(b"resumed from dtlsgate\n")
            wait_for_line(server.stdout, "resumed from dtlsgate")


# ---- key log (NSS format, SSLKEYLOGFILE) ---------------------------------------------------


def test_keylog_lets_tshark_decrypt_our_client_with_openssl_server(
    certs: tuple[str, str], tmp_path: Path
) -> None:
    require("openssl", "tshark")
    from dtlsgate.io.blocking_tls import connect

    keylog = str(tmp_path / "keys.log")
    pcap = tmp_path / "capture.pcapng"
    port = free_tcp_port()
    with capture_to(pcap, port, transport="tcp"):
        args = ["openssl", "s_server", "-tls1_3", "-accept", f"127.0.0.1:{port}"]
        args += ["-naccept", "1", "-cert", certs[0], "-key", certs[1]]
        with process(args, seconds=20) as server:
            wait_for_line(server.stdout, "ACCEPT")
            config = ClientConfig(server_name="localhost", cafile=certs[0], keylog_file=keylog)
            with connect("127.0.0.1", port, config) as tls:
                tls.sendall(b"keylog plaintext from dtlsgate\n")
                wait_for_line(server.stdout, "keylog plaintext from dtlsgate")
                assert server.stdin is not None
                server.stdin.write(b"keylog reply from openssl\n")
                server.stdin.flush()
                assert b"keylog reply" in tls.recv()
    with open(keylog, encoding="ascii") as lines:
        labels = {line.split()[0] for line in lines}
    assert labels == {
        "CLIENT_HANDSHAKE_TRAFFIC_SECRET",
        "SERVER_HANDSHAKE_TRAFFIC_SECRET",
        "CLIENT_TRAFFIC_SECRET_0",
        "SERVER_TRAFFIC_SECRET_0",
        "EXPORTER_SECRET",
    }
    out = subprocess.run(
        ["timeout", "30", "tshark", "-r", pcap, "-o", f"tls.keylog_file:{keylog}", "-x"],
        capture_output=True,
        check=True,
    ).stdout
    # tshark shows the decrypted records as "Decrypted TLS" hex dumps; the text columns
    # (16 bytes per line) are joined to find the plaintext in both directions.
    text = b"".join(line[56:72] for line in out.splitlines() if line[:4].isalnum())
    assert b"keylog plaintext from dtlsgate" in text.replace(b"\n", b"")
    assert b"keylog reply from openssl" in text.replace(b"\n", b"")


# ---- serve --tls: concurrent connections ---------------------------------------------------


def test_our_server_serves_connections_concurrently(certs: tuple[str, str]) -> None:
    from dtlsgate.io.blocking_tls import connect

    config = ClientConfig(server_name="localhost", cafile=certs[0])
    with our_server(certs, connections=3) as (server, port):
        # A first client completes its handshake and then stays idle...
        with connect("127.0.0.1", port, config) as idle:
            # ...while two more are served meanwhile (a sequential server would make them
            # wait for the idle one, which stays open: their handshakes would never complete,
            # so the bound is for that case only and can be long).
            for n in (1, 2):
                with connect("127.0.0.1", port, config, timeout=20) as busy:
                    busy.sendall(b"busy %d\n" % n)
                    assert busy.recv() == b"busy %d\n" % n
            idle.sendall(b"idle\n")
            assert idle.recv() == b"idle\n"
        out, _ = server.communicate(timeout=15)
    assert server.returncode == 0
    assert out.count(b"accepted") == 3


def test_our_client_reports_a_bad_certificate_cleanly(
    certs: tuple[str, str], tmp_path: pytest.TempPathFactory
) -> None:
    other_ca = tmp_path / "other.pem"  # type: ignore[operator]
    other_ca.write_bytes(make_self_signed("localhost")[0])
    with our_server(certs) as (_, port):
        # Verifying against another CA: the handshake fails with a message, no traceback.
        args = ["timeout", "20", *PYTHON, "connect", "--tls", f"127.0.0.1:{port}"]
        args += ["--cafile", str(other_ca), "--servername", "localhost"]
        out = subprocess.run(args, input=b"", capture_output=True, timeout=25)
    assert out.returncode == 1
    assert b"handshake failed" in out.stderr and b"Traceback" not in out.stderr
