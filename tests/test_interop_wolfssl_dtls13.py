"""DTLS 1.3 with wolfSSL 5.5.4 (RFC 9147), both directions: our sans-I/O DTLS 1.3 client
and server, driven over loopback UDP (tests/dtls13_socket.py), against wolfSSL's example
server and client (`-u -v 4`).

Certificates (ECDSA P-256, RSA), client certificates both ways, the AES-CCM suites,
fragmentation at a small MTU (`-u<MTU>` sets wolfSSL's), KeyUpdate each way (wolfSSL's
client `-I` and server `-U` update their keys before writing; ours with ``key_update()``),
and wolfSSL's server's HelloRetryRequest with its cookie, answered by our client.

External PSK (`-s`: identity `Client_identity` and the 32-byte key wolfssl/test.h's TLS 1.3
callbacks return) with AES-128-CCM-8, psk_dhe_ke both ways and psk_ke (`-K`) from wolfSSL's
client.

Certificate fingerprints (RFC 8122) both ways: wolfSSL's self-signed certificates taken by
their SHA-256 fingerprint alone (no CA, no server name); another fingerprint refused with
bad_certificate, which wolfSSL's server logs.

Connection IDs (`--cid`) both ways. wolfSSL 5.5.4 does not implement NewConnectionId or
RequestConnectionId (RFC 9147 §9): it answers ours with unexpected_message, which a test
pins.

Not here: TLS_CHACHA20_POLY1305_SHA256 (5.5.4 computes ChaCha20 record number masks
wrongly, fixed upstream later). wolfSSL's example server does not always print the
client's line in DTLS 1.3: data is judged by what comes back.
"""

from __future__ import annotations

import socket
import time
from pathlib import Path
from subprocess import DEVNULL
from typing import Any

import pytest
from cryptography.hazmat.primitives.serialization import Encoding
from dtls13_socket import data_of, pump, serve_one
from peers import free_udp_port, process, wait_bound, wolfssl_tree

from dtlsgate.config import ClientConfig, ServerConfig
from dtlsgate.connection.datagram13 import Dtls13ClientConnection, Dtls13ServerConnection
from dtlsgate.crypto.certs import (
    certificate_fingerprint,
    load_certificate_chain,
    load_private_key,
    make_self_signed,
)
from dtlsgate.errors import AlertReceived, BadCertificate
from dtlsgate.events import HandshakeCompleted
from dtlsgate.wire.enums import AlertDescription, CipherSuite, ProtocolVersion

pytestmark = pytest.mark.interop

PSK_ID = b"Client_identity"
# wolfssl/test.h, my_psk_*_tls13_cb: 32 bytes from 0x01 in steps of 0x22, wrapping to 0x01.
PSK_KEY = bytes.fromhex("0123456789abcdef" * 4)
CLIENT_TEXT = b"hello wolfssl!"
SERVER_TEXT = b"I hear you fa shizzle!"
WOLFSSL_SUITES = {
    CipherSuite.TLS_AES_128_GCM_SHA256: "TLS13-AES128-GCM-SHA256",
    CipherSuite.TLS_AES_256_GCM_SHA384: "TLS13-AES256-GCM-SHA384",
    CipherSuite.TLS_AES_128_CCM_SHA256: "TLS13-AES128-CCM-SHA256",
    CipherSuite.TLS_AES_128_CCM_8_SHA256: "TLS13-AES128-CCM-8-SHA256",
}


@pytest.fixture(scope="module")
def wolfssl() -> Path:
    return wolfssl_tree()


def identity(tmp_path: Path, key_type: str, name: str = "localhost") -> tuple[Path, Path]:
    """A fresh self-signed certificate and key (its own trust anchor)."""
    cert_pem, key_pem = make_self_signed(name, key_type, days=30)
    cert, key = tmp_path / f"{key_type}-{name}.pem", tmp_path / f"{key_type}-{name}.key"
    cert.write_bytes(cert_pem)
    key.write_bytes(key_pem)
    return cert, key


def udp_socket() -> socket.socket:
    sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    sock.bind(("127.0.0.1", 0))
    return sock


def completed(events: list[Any]) -> HandshakeCompleted:
    (done,) = [e for e in events if isinstance(e, HandshakeCompleted)]
    return done


# --- wolfSSL's client, our server ---------------------------------------------------------


def wolfssl_client(
    tree: Path, config: ServerConfig, args: list[str], mtu: int | None = None
) -> tuple[Dtls13ServerConnection | None, list[Any], str, list[int]]:
    events: list[Any] = []
    sizes: list[int] = []
    udp = f"-u{mtu}" if mtu else "-u"
    with udp_socket() as sock:
        port = int(sock.getsockname()[1])
        command = ["./examples/client/client", udp, "-v", "4", "-p", str(port), *args]
        with process(command, seconds=25, cwd=tree, stdin=DEVNULL, stderr=DEVNULL) as proc:
            conn = serve_one(
                lambda peer: Dtls13ServerConnection(config, peer),
                sock,
                events,
                20,
                sizes=sizes,
                gone=lambda: proc.poll() is not None,
            )
            assert proc.stdout is not None
            out = proc.stdout.read().decode(errors="replace")
    assert conn is None or isinstance(conn, Dtls13ServerConnection)
    return conn, events, out, sizes


def server_config(cert: tuple[Path, Path], **kwargs: Any) -> ServerConfig:
    return ServerConfig(
        certificate_chain=load_certificate_chain(cert[0]),
        private_key=load_private_key(cert[1]),
        **kwargs,
    )


@pytest.mark.parametrize("key_type", ["ecdsa-p256", "rsa-2048"])
def test_wolfssl_client_with_our_server(wolfssl: Path, tmp_path: Path, key_type: str) -> None:
    cert = identity(tmp_path, key_type)
    conn, events, out, _ = wolfssl_client(wolfssl, server_config(cert), ["-A", str(cert[0]), "-x"])
    assert conn is not None
    assert "SSL version is DTLSv1.3" in out
    assert completed(events).version == ProtocolVersion.DTLS13
    assert data_of(events) == CLIENT_TEXT
    assert "echo:hello wolfssl!" in out
    # Our NewSessionTicket reached wolfSSL's client, which acknowledged it (RFC 9147 §5.8.4).
    assert "Session Ticket CB" in out
    assert conn.tickets_acknowledged == 1


@pytest.mark.parametrize("suite", list(WOLFSSL_SUITES), ids=lambda s: s.name)
def test_wolfssl_client_suites(wolfssl: Path, tmp_path: Path, suite: CipherSuite) -> None:
    cert = identity(tmp_path, "ecdsa-p256")
    config = server_config(cert, cipher_suites=tuple(WOLFSSL_SUITES))
    args = ["-A", str(cert[0]), "-x", "-l", WOLFSSL_SUITES[suite]]
    _, events, out, _ = wolfssl_client(wolfssl, config, args)
    assert completed(events).cipher_suite == suite
    assert f"SSL cipher suite is {suite.name}" in out
    assert "echo:hello wolfssl!" in out


def test_wolfssl_client_certificate(wolfssl: Path, tmp_path: Path) -> None:
    cert = identity(tmp_path, "ecdsa-p256")
    client = identity(tmp_path, "rsa-2048", "client")
    config = server_config(cert, verify_client="required", cafile=str(client[0]))
    args = ["-A", str(cert[0]), "-c", str(client[0]), "-k", str(client[1])]
    _, events, out, _ = wolfssl_client(wolfssl, config, args)
    assert completed(events).peer_certificates
    assert "echo:hello wolfssl!" in out


def test_wolfssl_client_small_mtu(wolfssl: Path, tmp_path: Path) -> None:
    cert = identity(tmp_path, "rsa-2048")
    config = server_config(cert, mtu=300)
    _, _, out, sizes = wolfssl_client(wolfssl, config, ["-A", str(cert[0]), "-x"], 300)
    assert "echo:hello wolfssl!" in out
    # The certificate flight went in several datagrams, none over the MTU.
    assert len(sizes) >= 5 and max(sizes) <= 300


def test_wolfssl_client_key_update(wolfssl: Path, tmp_path: Path) -> None:
    # `-I`: wolfSSL's client updates its keys before writing, and writes twice.
    cert = identity(tmp_path, "ecdsa-p256")
    conn, events, out, _ = wolfssl_client(
        wolfssl, server_config(cert), ["-A", str(cert[0]), "-x", "-I"]
    )
    assert conn is not None
    assert data_of(events) == CLIENT_TEXT * 2
    assert 4 in conn.records.read_epochs  # its records came in epoch 4
    assert conn.records.write_epoch == 4  # and we answered update_requested
    assert "echo:hello wolfssl!" in out


# --- our client, wolfSSL's server ---------------------------------------------------------


def wolfssl_server(
    tree: Path,
    config: ClientConfig,
    args: list[str],
    mtu: int | None = None,
    key_update: bool = False,
) -> tuple[Dtls13ClientConnection, list[Any], list[int]]:
    events: list[Any] = []
    sizes: list[int] = []
    udp = f"-u{mtu}" if mtu else "-u"
    port = free_udp_port()
    command = ["./examples/server/server", udp, "-v", "4", "-p", str(port), *args]
    with (
        process(command, seconds=25, cwd=tree, stdin=DEVNULL, stderr=DEVNULL),
        udp_socket() as sock,
    ):
        # No readiness line: our ClientHello is retransmitted until the server listens.
        conn = Dtls13ClientConnection(config, ("127.0.0.1", port))
        conn.connect(time.time())
        assert pump(conn, sock, lambda e: conn.handshake_complete, events, 15, sizes)
        if key_update:
            conn.key_update()
            assert pump(conn, sock, lambda e: conn.records.write_epoch == 4, events, 10, sizes)
        conn.send(b"hello from dtlsgate")
        assert pump(conn, sock, lambda e: SERVER_TEXT in data_of(e), events, 10, sizes)
    return conn, events, sizes


@pytest.mark.parametrize("key_type", ["ecdsa-p256", "rsa-2048"])
def test_our_client_with_wolfssl_server(wolfssl: Path, tmp_path: Path, key_type: str) -> None:
    cert = identity(tmp_path, key_type)
    config = ClientConfig(server_name="localhost", cafile=str(cert[0]))
    args = ["-c", str(cert[0]), "-k", str(cert[1]), "-d"]
    _, events, _ = wolfssl_server(wolfssl, config, args)
    done = completed(events)
    assert done.version == ProtocolVersion.DTLS13
    # wolfSSL's server sends a HelloRetryRequest with a cookie first; we answered it.
    assert done.hello_retry
    assert data_of(events) == SERVER_TEXT


@pytest.mark.parametrize("suite", list(WOLFSSL_SUITES), ids=lambda s: s.name)
def test_our_client_suites(wolfssl: Path, tmp_path: Path, suite: CipherSuite) -> None:
    cert = identity(tmp_path, "ecdsa-p256")
    config = ClientConfig(server_name="localhost", cafile=str(cert[0]), cipher_suites=(suite,))
    args = ["-c", str(cert[0]), "-k", str(cert[1]), "-d", "-l", WOLFSSL_SUITES[suite]]
    _, events, _ = wolfssl_server(wolfssl, config, args)
    assert completed(events).cipher_suite == suite
    assert data_of(events) == SERVER_TEXT


def test_our_client_certificate_small_mtu(wolfssl: Path, tmp_path: Path) -> None:
    # Without -d, wolfSSL's server requires and verifies our certificate (-A: its CA).
    cert = identity(tmp_path, "ecdsa-p256")
    client = identity(tmp_path, "rsa-2048", "client")
    config = ClientConfig(
        server_name="localhost",
        cafile=str(cert[0]),
        certificate_chain=load_certificate_chain(client[0]),
        private_key=load_private_key(client[1]),
        mtu=300,
    )
    args = ["-c", str(cert[0]), "-k", str(cert[1]), "-A", str(client[0])]
    _, events, sizes = wolfssl_server(wolfssl, config, args, mtu=300)
    assert data_of(events) == SERVER_TEXT
    # Our RSA certificate went in fragments, no datagram over the MTU.
    assert max(sizes) <= 300 and len([s for s in sizes if s > 250]) >= 2


def test_key_update_both_ways_with_wolfssl_server(wolfssl: Path, tmp_path: Path) -> None:
    # Ours first (acknowledged before our key changes), then wolfSSL's (`-U`: its server
    # updates its keys before replying).
    cert = identity(tmp_path, "ecdsa-p256")
    config = ClientConfig(server_name="localhost", cafile=str(cert[0]))
    args = ["-c", str(cert[0]), "-k", str(cert[1]), "-d", "-U"]
    conn, events, _ = wolfssl_server(wolfssl, config, args, key_update=True)
    assert data_of(events) == SERVER_TEXT
    assert conn.records.write_epoch >= 4
    # Epoch 4: its answer to our update_requested; 5: its own update (-U).
    assert max(conn.records.read_epochs) == 5


@pytest.mark.parametrize("mode", ["psk_dhe_ke", "psk_ke"])
def test_wolfssl_client_psk_ccm8(wolfssl: Path, mode: str) -> None:
    suite = CipherSuite.TLS_AES_128_CCM_8_SHA256
    # wolfSSL's client appends the PSK's hash to the identity (test.h).
    # psk_ke (the IoT case, no (EC)DHE) is accepted only when the config lists it.
    modes = (0, 1) if mode == "psk_ke" else (1,)
    config = ServerConfig(
        psk={PSK_ID + b"SHA256": PSK_KEY}, cipher_suites=(suite,), psk_modes=modes
    )
    args = ["-s", "-l", WOLFSSL_SUITES[suite], *(["-K"] if mode == "psk_ke" else [])]
    _, events, out, _ = wolfssl_client(wolfssl, config, args)
    done = completed(events)
    assert done.psk_identity == PSK_ID + b"SHA256" and done.cipher_suite == suite
    assert (done.group is None) == (mode == "psk_ke")
    assert "echo:hello wolfssl!" in out


def test_our_client_psk_ccm8_with_wolfssl_server(wolfssl: Path) -> None:
    suite = CipherSuite.TLS_AES_128_CCM_8_SHA256
    config = ClientConfig(psk=PSK_KEY, psk_identity=PSK_ID, cipher_suites=(suite,))
    _, events, _ = wolfssl_server(wolfssl, config, ["-s", "-l", WOLFSSL_SUITES[suite]])
    done = completed(events)
    assert done.psk_identity == PSK_ID and done.cipher_suite == suite
    assert data_of(events) == SERVER_TEXT


def test_asyncio_connect_with_wolfssl_dtls13_server(wolfssl: Path, tmp_path: Path) -> None:
    """`dtlsgate.connect` (offering DTLS 1.3 and 1.2 by default) against wolfSSL's DTLS
    1.3 server: DTLS 1.3, after its HelloRetryRequest."""
    import asyncio

    import dtlsgate

    cert = identity(tmp_path, "ecdsa-p256")
    port = free_udp_port()
    command = ["./examples/server/server", "-u", "-v", "4", "-p", str(port)]
    command += ["-c", str(cert[0]), "-k", str(cert[1]), "-d"]

    async def talk() -> tuple[Any, bytes]:
        config = ClientConfig(server_name="localhost", cafile=str(cert[0]))
        stream = await dtlsgate.connect("127.0.0.1", port, config, timeout=15)
        try:
            stream.send(b"hello from dtlsgate")
            return stream.handshake_info, await asyncio.wait_for(stream.recv(), 10)
        finally:
            stream.close()

    with process(command, seconds=25, cwd=wolfssl, stdin=DEVNULL, stderr=DEVNULL) as server:
        # Until the server listens, our ClientHello would meet an ICMP port unreachable,
        # which fails the connect at once: wait until it is bound.
        wait_bound(server, port)
        info, reply = asyncio.run(asyncio.wait_for(talk(), 30))
    assert info.version == ProtocolVersion.DTLS13 and info.hello_retry
    assert reply == SERVER_TEXT


def test_wolfssl_client_connection_id(wolfssl: Path, tmp_path: Path) -> None:
    # RFC 9147 §9: wolfSSL's client asks for CID "ab" (`--cid`); we give ours (4 bytes).
    cert = identity(tmp_path, "ecdsa-p256")
    config = server_config(cert, connection_id_length=4)
    conn, _, out, _ = wolfssl_client(wolfssl, config, ["-A", str(cert[0]), "-x", "--cid", "ab"])
    assert conn is not None
    assert conn.records.write_connection_id == b"ab"
    assert len(conn.records.read_connection_id) == 4
    assert "echo:hello wolfssl!" in out


def test_our_client_connection_id_with_wolfssl_server(wolfssl: Path, tmp_path: Path) -> None:
    cert = identity(tmp_path, "ecdsa-p256")
    config = ClientConfig(server_name="localhost", cafile=str(cert[0]), connection_id_length=2)
    args = ["-c", str(cert[0]), "-k", str(cert[1]), "-d", "--cid", "ab"]
    conn, events, _ = wolfssl_server(wolfssl, config, args)
    assert conn.records.write_connection_id == b"ab"
    assert len(conn.records.read_connection_id) == 2
    assert data_of(events) == SERVER_TEXT


@pytest.mark.parametrize("message", ["NewConnectionId", "RequestConnectionId"])
def test_wolfssl_refuses_connection_id_updates(wolfssl: Path, tmp_path: Path, message: str) -> None:
    # RFC 9147 §9: wolfSSL 5.5.4 implements neither message (its HandShakeType has no 9 or
    # 10, wolfssl/internal.h; SanityCheckTls13MsgReceived in src/tls13.c refuses an unknown
    # type, and DoTls13HandShakeMsgType answers unexpected_message). This pins what it does
    # with ours, over CIDs negotiated both ways: when a later wolfSSL takes them, this test
    # fails and an interop test of the update itself takes its place.
    cert = identity(tmp_path, "ecdsa-p256")
    config = ClientConfig(server_name="localhost", cafile=str(cert[0]), connection_id_length=2)
    args = ["-c", str(cert[0]), "-k", str(cert[1]), "-d", "--cid", "ab"]
    port = free_udp_port()
    command = ["./examples/server/server", "-u", "-v", "4", "-p", str(port), *args]
    events: list[Any] = []
    with (
        process(command, seconds=25, cwd=wolfssl, stdin=DEVNULL, stderr=DEVNULL),
        udp_socket() as sock,
    ):
        conn = Dtls13ClientConnection(config, ("127.0.0.1", port))
        conn.connect(time.time())
        assert pump(conn, sock, lambda e: conn.handshake_complete, events, 15)
        assert conn.peer_connection_id == b"ab"
        if message == "NewConnectionId":
            conn.new_connection_ids(1)
        else:
            conn.request_connection_ids(1)
        with pytest.raises(AlertReceived) as alert:
            pump(conn, sock, lambda e: False, events, 10)
    assert alert.value.description == AlertDescription.unexpected_message


# --- certificate fingerprints (RFC 8122) in DTLS 1.3: no CA, the certificate's hash -----------


def fingerprint_of(cert: tuple[Path, Path]) -> tuple[str, bytes]:
    """A certificate file's SHA-256 fingerprint ("sha-256 AB:...") and its DER bytes."""
    leaf = load_certificate_chain(cert[0])[0]
    return certificate_fingerprint(leaf), leaf.public_bytes(Encoding.DER)


def test_our_client_takes_wolfssl_servers_certificate_by_its_fingerprint(
    wolfssl: Path, tmp_path: Path
) -> None:
    cert = identity(tmp_path, "ecdsa-p256")
    fingerprint, der = fingerprint_of(cert)
    # No cafile and no server_name: the fingerprint is the whole check.
    config = ClientConfig(certificate_fingerprints=(fingerprint,))
    _, events, _ = wolfssl_server(wolfssl, config, ["-c", str(cert[0]), "-k", str(cert[1]), "-d"])
    done = completed(events)
    assert done.version == ProtocolVersion.DTLS13
    assert done.peer_certificates[0] == der
    assert data_of(events) == SERVER_TEXT


def test_our_client_refuses_a_wolfssl_server_with_another_fingerprint(
    wolfssl: Path, tmp_path: Path
) -> None:
    cert = identity(tmp_path, "ecdsa-p256")
    other, _ = fingerprint_of(identity(tmp_path, "ecdsa-p256", "someone-else"))
    port = free_udp_port()
    command = ["./examples/server/server", "-u", "-v", "4", "-p", str(port)]
    command += ["-c", str(cert[0]), "-k", str(cert[1]), "-d"]
    events: list[Any] = []
    log = tmp_path / "wolfssl-server.log"  # its debug log, to a file: it can be long
    with (
        log.open("wb") as sink,
        process(command, seconds=25, cwd=wolfssl, stdin=DEVNULL, stderr=sink.fileno()) as proc,
        udp_socket() as sock,
    ):
        conn = Dtls13ClientConnection(
            ClientConfig(certificate_fingerprints=(other,)), ("127.0.0.1", port)
        )
        conn.connect(time.time())
        with pytest.raises(BadCertificate):
            pump(conn, sock, lambda e: conn.handshake_complete, events, 15)
        alerts = conn.datagrams_to_send()  # our bad_certificate, sent as the connection ends
        assert alerts
        for datagram, peer in alerts:
            sock.sendto(datagram, peer)
        assert proc.wait(timeout=15) != 0  # wolfSSL's server gave up on the handshake
    assert not [e for e in events if isinstance(e, HandshakeCompleted)]
    # What crossed the wire: wolfSSL read our alert.
    assert "Alert type: bad_certificate" in log.read_text(errors="replace")


def test_wolfssl_client_certificate_by_its_fingerprint(wolfssl: Path, tmp_path: Path) -> None:
    cert = identity(tmp_path, "ecdsa-p256")
    client = identity(tmp_path, "ecdsa-p256", "client")
    fingerprint, der = fingerprint_of(client)
    config = server_config(cert, verify_client="required", certificate_fingerprints=(fingerprint,))
    args = ["-A", str(cert[0]), "-c", str(client[0]), "-k", str(client[1])]
    _, events, out, _ = wolfssl_client(wolfssl, config, args)
    assert completed(events).peer_certificates[0] == der
    assert "echo:hello wolfssl!" in out
