"""wolfSSL 5.5.4 as a peer: DTLS 1.2 both ways, and what its DTLS 1.3 ends do.

wolfSSL is built with DTLS 1.3 from Debian's source package by scripts/build-wolfssl.sh
(`make peers`); a failed build fails these tests (tests/peers.py `wolfssl_tree`). Its
example programs, run from the source tree, are the peers:

- DTLS 1.2 (what dtlsgate speaks today), both directions, checked here: wolfSSL's client
  (`-u -v 3`) against our asyncio server with an ECDSA P-256 certificate and with PSK
  AES-128-CCM-8 (`-s -l PSK-AES128-CCM-8`: identity `Client_identity`, key 1a2b3c4d, the
  4-byte key wolfssl/test.h's callbacks return below TLS 1.3); our blocking and asyncio
  clients against wolfSSL's server (`-u -v 3`), which sends a HelloVerifyRequest by default.
  wolfSSL's client sends `hello wolfssl!`; its server answers `I hear you fa shizzle!`.
- DTLS 1.3 (facts for issue 12, checked here so that they stay true): the client (`-v 4`)
  sends a plaintext ClientHello in a DTLSPlaintext record of version {254, 253}, with
  legacy_version {254, 253} (RFC 9147 §5.3), an empty legacy_cookie, supported_versions
  exactly (0xFEFC,) and a key_share; `-v d` offers (0xFEFC, 0xFEFD, 0xFEFF). wolfSSL's DTLS 1.3
  server answers that ClientHello with a HelloRetryRequest carrying a cookie extension.
  wolfSSL's DTLS 1.3 client and server complete a handshake with each other. Its server
  does not always print the client's message in DTLS 1.3 (an ACK after the data ends its
  read loop with 0): judge data by what the client receives back.
- wolfSSL's DTLS 1.3 client against our server speaking both versions (the default): our
  stateless HelloRetryRequest, its cookie returned, DTLS 1.3 (tests/test_interop_wolfssl_dtls13.py
  has the rest of DTLS 1.3).
- wolfSSL's DTLS 1.3-only client against our DTLS 1.2-only server (``dtls_versions``): a DTLS 1.2 server does not
  know supported_versions and goes by legacy_version (RFC 8446 §4.2.1), so our gate answers
  with a HelloVerifyRequest, statelessly. The client is not prepared to negotiate DTLS 1.2:
  it aborts with a fatal protocol_version alert in plaintext (RFC 8446 Appendix D: "If the
  version chosen by the server is not supported by the client ..., the client MUST abort
  the handshake with a protocol_version alert"); the gate drops that alert and nothing is
  admitted. With `-v d` (DTLS 1.3 and 1.2 offered) the client follows the
  HelloVerifyRequest and negotiates DTLS 1.2; our 1.2-only server sets no RFC 8446 §4.1.3
  downgrade sentinel, so the client accepts the ServerHello.
"""

from __future__ import annotations

import asyncio
import socket
import time
from collections import Counter
from dataclasses import dataclass
from pathlib import Path
from subprocess import DEVNULL
from typing import Any

import pytest
from helpers import eventually
from peers import capture, free_udp_port, process, wait_bound, wait_for_line, wolfssl_tree

import dtlsgate
from dtlsgate.config import ClientConfig, ServerConfig
from dtlsgate.crypto.certs import load_certificate_chain, load_private_key, make_self_signed
from dtlsgate.gate.datagram import DropReason, Gate
from dtlsgate.io import aio
from dtlsgate.io.blocking import connect
from dtlsgate.wire.enums import ExtensionType, HandshakeType
from dtlsgate.wire.extensions import decode_supported_versions_ch, decode_supported_versions_sh
from dtlsgate.wire.messages import ClientHello, ServerHello

pytestmark = pytest.mark.interop

PSK_ID = b"Client_identity"
PSK_DTLS12 = bytes.fromhex("1a2b3c4d")  # wolfssl/test.h's key below TLS 1.3
CLIENT_HELLO_TEXT = b"hello wolfssl!"
SERVER_REPLY_TEXT = b"I hear you fa shizzle!"
DTLS10, DTLS12, DTLS13 = 0xFEFF, 0xFEFD, 0xFEFC
HELLO_VERIFY_REQUEST = 3
ALERT, HANDSHAKE = 21, 22
FATAL, PROTOCOL_VERSION = 2, 70


@pytest.fixture(scope="module")
def wolfssl() -> Path:
    return wolfssl_tree()


@pytest.fixture
def cert(tmp_path: Path) -> tuple[Path, Path]:
    """A fresh self-signed ECDSA P-256 certificate (wolfSSL's bundled ones have expired),
    its own trust anchor."""
    cert_pem, key_pem = make_self_signed("localhost", "ecdsa-p256", days=30)
    cert, key = tmp_path / "cert.pem", tmp_path / "key.pem"
    cert.write_bytes(cert_pem)
    key.write_bytes(key_pem)
    return cert, key


def cert_config(cert: tuple[Path, Path], **kwargs: Any) -> ServerConfig:
    return ServerConfig(
        certificate_chain=load_certificate_chain(cert[0]),
        private_key=load_private_key(cert[1]),
        **kwargs,
    )


DTLS12_ONLY = {"dtls_versions": (DTLS12,)}  # a DTLS 1.2 server (openssl's -dtls1_2)


@dataclass
class ClientRun:
    returncode: int | None
    stdout: str
    received: list[bytes]  # what our server's handler received
    stats: Counter[str]  # our gate's counters


async def _run_wolfssl_client(tree: Path, config: ServerConfig, args: list[str]) -> ClientRun:
    received: list[bytes] = []

    async def echo(stream: aio.DtlsStream) -> None:
        while data := await stream.recv():
            received.append(data)
            stream.send(b"echo:" + data)

    async with await dtlsgate.serve(echo, "127.0.0.1", 0, config) as server:
        command = ["./examples/client/client", "-u", "-p", str(server.address[1]), *args]
        proc = await asyncio.create_subprocess_exec(
            *["timeout", "-s", "KILL", "20", *command],
            cwd=tree,
            stdin=asyncio.subprocess.DEVNULL,
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.DEVNULL,
        )
        stdout, _ = await asyncio.wait_for(proc.communicate(), 30)
        # The client's close_notify or alert, sent before it exited, is in the server's
        # socket: judged once a datagram of ours sent now is (its drop reason no test here
        # counts). Not a fixed wait, which a loaded machine could outlast.
        malformed = str(DropReason.RECORD_MALFORMED)
        before = server.gate.stats[malformed]
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as marker:
            marker.sendto(b"marker", ("127.0.0.1", server.address[1]))
            await eventually(lambda: server.gate.stats[malformed] != before)  # 30 s bound
        stats = server.gate.stats
    return ClientRun(proc.returncode, stdout.decode(errors="replace"), received, stats)


def run_wolfssl_client(tree: Path, config: ServerConfig, args: list[str]) -> ClientRun:
    """wolfSSL's example client against our asyncio server (`dtlsgate.serve`), which echoes
    each record with a prefix."""
    return asyncio.run(asyncio.wait_for(_run_wolfssl_client(tree, config, args), 60))


@pytest.mark.parametrize(
    ("suite", "name"),
    [
        ("ECDHE-ECDSA-AES128-GCM-SHA256", "TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256"),
        ("ECDHE-ECDSA-CHACHA20-POLY1305", "TLS_ECDHE_ECDSA_WITH_CHACHA20_POLY1305_SHA256"),
        ("ECDHE-ECDSA-AES128-CCM-8", "TLS_ECDHE_ECDSA_WITH_AES_128_CCM_8"),
    ],
)
def test_wolfssl_client_with_our_server_ecdsa(
    wolfssl: Path, cert: tuple[Path, Path], suite: str, name: str
) -> None:
    args = ["-v", "3", "-A", str(cert[0]), "-x", "-l", suite]
    run = run_wolfssl_client(wolfssl, cert_config(cert), args)
    assert run.returncode == 0, run.stdout
    assert "SSL version is DTLSv1.2" in run.stdout
    assert f"SSL cipher suite is {name}" in run.stdout
    assert run.received == [CLIENT_HELLO_TEXT]
    assert "echo:hello wolfssl!" in run.stdout
    # The cookie exchange happened: a HelloVerifyRequest, then one admitted ClientHello.
    assert run.stats["reply"] >= 1
    assert run.stats["admit"] == 1


def test_wolfssl_client_with_our_server_psk_ccm8(wolfssl: Path) -> None:
    config = ServerConfig(psk={PSK_ID: PSK_DTLS12})
    run = run_wolfssl_client(wolfssl, config, ["-v", "3", "-s", "-l", "PSK-AES128-CCM-8"])
    assert run.returncode == 0, run.stdout
    assert "SSL version is DTLSv1.2" in run.stdout
    assert "SSL cipher suite is TLS_PSK_WITH_AES_128_CCM_8" in run.stdout
    assert run.received == [CLIENT_HELLO_TEXT]
    assert "echo:hello wolfssl!" in run.stdout
    assert run.stats["reply"] >= 1
    assert run.stats["admit"] == 1


def wolfssl_server_args(port: int, extra: list[str]) -> list[str]:
    return ["./examples/server/server", "-u", "-v", "3", "-p", str(port), *extra]


def talk_blocking(port: int, config: ClientConfig) -> bytes:
    with connect("127.0.0.1", port, config, timeout=15) as conn:
        conn.send(b"hello from dtlsgate")
        return conn.recv(timeout=10)


async def _talk_asyncio(port: int, config: ClientConfig) -> bytes:
    stream = await dtlsgate.connect("127.0.0.1", port, config, timeout=15)
    try:
        stream.send(b"hello from dtlsgate")
        return await asyncio.wait_for(stream.recv(), 10)
    finally:
        stream.close()


def talk_asyncio(port: int, config: ClientConfig) -> bytes:
    return asyncio.run(asyncio.wait_for(_talk_asyncio(port, config), 30))


def client_with_wolfssl_server(
    tree: Path, extra: list[str], config: ClientConfig, face: str
) -> tuple[bytes, str]:
    """Our client (``face``) against wolfSSL's DTLS 1.2 server, captured: returns the reply
    and the line the server printed; asserts the cookie exchange in the capture."""
    port = free_udp_port()
    talk = talk_blocking if face == "blocking" else talk_asyncio
    with (
        capture(port) as packets,
        process(wolfssl_server_args(port, extra), seconds=25, cwd=tree, stderr=DEVNULL) as proc,
    ):
        # No readiness line: until the server listens, our client's ClientHello would meet
        # an ICMP port unreachable, which fails the connect at once. Wait until it is bound.
        wait_bound(proc, port)
        reply = talk(port, config)
        assert proc.stdout is not None
        line = wait_for_line(proc.stdout, "Client message", 10).splitlines()[-1]
    hvrs = [p for p in packets if p.src_port == port and HELLO_VERIFY_REQUEST in p.handshake_types]
    assert hvrs, "wolfSSL's server sent no HelloVerifyRequest"
    cookie = hvrs[0].cookies[0]
    hellos = [
        p for p in packets if p.dst_port == port and HandshakeType.CLIENT_HELLO in p.handshake_types
    ]
    assert len(cookie) > 0
    assert any(cookie in p.cookies for p in hellos), "our ClientHello2 did not carry the cookie"
    return reply, line


@pytest.mark.parametrize("face", ["blocking", "asyncio"])
def test_our_client_with_wolfssl_server_ecdsa(
    wolfssl: Path, cert: tuple[Path, Path], face: str
) -> None:
    extra = ["-c", str(cert[0]), "-k", str(cert[1]), "-d"]
    config = ClientConfig(server_name="localhost", cafile=str(cert[0]))
    reply, line = client_with_wolfssl_server(wolfssl, extra, config, face)
    assert reply == SERVER_REPLY_TEXT
    assert line == "Client message: hello from dtlsgate"


def test_our_client_with_wolfssl_server_psk_ccm8(wolfssl: Path) -> None:
    extra = ["-s", "-l", "PSK-AES128-CCM-8"]
    config = ClientConfig(psk=PSK_DTLS12, psk_identity=PSK_ID)
    reply, line = client_with_wolfssl_server(wolfssl, extra, config, "blocking")
    assert reply == SERVER_REPLY_TEXT
    assert line == "Client message: hello from dtlsgate"


# --- DTLS 1.3: what wolfSSL sends, and its DTLS 1.3 client against our DTLS 1.2 server ---


def receive_first(sock: socket.socket, seconds: float = 15) -> tuple[bytes, tuple[str, int]]:
    sock.settimeout(seconds)
    data, peer = sock.recvfrom(65535)
    return data, peer


def plaintext_handshake(datagram: bytes) -> tuple[int, int, bytes]:
    """(record version, handshake type, body) of a datagram holding one DTLSPlaintext
    record with one whole handshake message (RFC 9147 §4, §5.2)."""
    assert datagram[0] == HANDSHAKE
    record_version = int.from_bytes(datagram[1:3], "big")
    assert int.from_bytes(datagram[3:5], "big") == 0  # epoch 0
    assert int.from_bytes(datagram[11:13], "big") == len(datagram) - 13
    msg_type = datagram[13]
    length = int.from_bytes(datagram[14:17], "big")
    assert int.from_bytes(datagram[19:22], "big") == 0  # fragment_offset
    assert int.from_bytes(datagram[22:25], "big") == length  # whole message
    return record_version, msg_type, datagram[25 : 25 + length]


def wolfssl_client_hello(tree: Path, cert: Path, version: str) -> bytes:
    """The first datagram wolfSSL's client sends with ``-v version``."""
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
        sock.bind(("127.0.0.1", 0))
        port = int(sock.getsockname()[1])
        args = ["./examples/client/client", "-u", "-v", version, "-p", str(port)]
        with process(
            [*args, "-A", str(cert), "-x"], seconds=20, cwd=tree, stdin=DEVNULL, stderr=DEVNULL
        ):
            datagram, _ = receive_first(sock)
    return datagram


@pytest.mark.parametrize(
    ("version", "offered"), [("4", (DTLS13,)), ("d", (DTLS13, DTLS12, DTLS10))]
)
def test_wolfssl_dtls13_client_hello(
    wolfssl: Path, cert: tuple[Path, Path], version: str, offered: tuple[int, ...]
) -> None:
    record_version, msg_type, body = plaintext_handshake(
        wolfssl_client_hello(wolfssl, cert[0], version)
    )
    assert record_version == DTLS12
    assert msg_type == HandshakeType.CLIENT_HELLO
    hello = ClientHello.decode(body, dtls=True)
    assert hello.legacy_version == DTLS12  # RFC 9147 §5.3
    assert hello.cookie == b""  # legacy_cookie
    versions = hello.get(ExtensionType.supported_versions)
    assert versions is not None
    assert decode_supported_versions_ch(versions) == offered
    assert hello.get(ExtensionType.key_share) is not None


def test_wolfssl_dtls13_server_answers_client_hello_with_hello_retry_request(
    wolfssl: Path, cert: tuple[Path, Path]
) -> None:
    client_hello = wolfssl_client_hello(wolfssl, cert[0], "4")
    port = free_udp_port()
    args = ["./examples/server/server", "-u", "-v", "4", "-p", str(port)]
    args += ["-c", str(cert[0]), "-k", str(cert[1]), "-d"]
    with (
        process(args, seconds=90, cwd=wolfssl, stdin=DEVNULL, stderr=DEVNULL) as proc,
        socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock,
    ):
        wait_bound(proc, port, 60)  # a start-up: a bound only
        sock.settimeout(0.5)
        reply = b""
        deadline = time.monotonic() + 30
        while not reply and time.monotonic() < deadline:  # resent: UDP on loopback
            sock.sendto(client_hello, ("127.0.0.1", port))
            try:
                reply = sock.recv(65535)
            except TimeoutError:
                continue
    record_version, msg_type, body = plaintext_handshake(reply)
    assert record_version == DTLS12
    assert msg_type == HandshakeType.SERVER_HELLO
    hello = ServerHello.decode(body)
    assert hello.is_hello_retry_request
    versions = hello.get(ExtensionType.supported_versions)
    assert versions is not None
    assert decode_supported_versions_sh(versions) == DTLS13
    cookie = hello.get(ExtensionType.cookie)
    assert cookie is not None and len(cookie) > 2


def test_wolfssl_dtls13_client_with_wolfssl_dtls13_server(
    wolfssl: Path, cert: tuple[Path, Path]
) -> None:
    port = free_udp_port()
    server = ["./examples/server/server", "-u", "-v", "4", "-p", str(port)]
    server += ["-c", str(cert[0]), "-k", str(cert[1]), "-d"]
    client = ["./examples/client/client", "-u", "-v", "4", "-p", str(port)]
    client += ["-A", str(cert[0]), "-x"]
    with process(server, seconds=25, cwd=wolfssl, stdin=DEVNULL, stderr=DEVNULL) as srv:
        wait_bound(srv, port)  # the client retransmits too, but its first timeout is 1 s
        with process(client, seconds=20, cwd=wolfssl, stdin=DEVNULL, stderr=DEVNULL) as cli:
            assert cli.stdout is not None and srv.stdout is not None
            out = cli.stdout.read().decode(errors="replace")
            assert cli.wait(20) == 0, out
        server_out = srv.stdout.read().decode(errors="replace")
    assert "SSL version is DTLSv1.3" in out
    assert "I hear you fa shizzle!" in out  # the server read the client's message first
    # The server's "Client message: ..." line is unreliable in DTLS 1.3 (5.5.4's example
    # server): when an ACK record follows the application data, its read loop goes round
    # once more, the second read returns 0 and the message is not printed (seen in 3 of 6
    # runs here, with "got ACK" in its debug log).
    assert "SSL version is DTLSv1.3" in server_out


def test_wolfssl_dtls13_only_client_gets_hello_verify_request_and_aborts(
    wolfssl: Path, cert: tuple[Path, Path]
) -> None:
    """Our gate, fed the DTLS 1.3-only ClientHello, answers with a HelloVerifyRequest (a
    DTLS 1.2 server goes by legacy_version); wolfSSL answers that with a fatal
    protocol_version alert in plaintext (RFC 8446 Appendix D)."""
    gate = Gate(cert_config(cert, **DTLS12_ONLY))
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
        sock.bind(("127.0.0.1", 0))
        port = int(sock.getsockname()[1])
        args = ["./examples/client/client", "-u", "-v", "4", "-p", str(port)]
        with process(
            [*args, "-A", str(cert[0]), "-x"],
            seconds=20,
            cwd=wolfssl,
            stdin=DEVNULL,
            stderr=DEVNULL,
        ):
            client_hello, peer = receive_first(sock)
            reply = gate.judge(client_hello, peer, time.time())
            assert isinstance(reply, bytes)
            assert plaintext_handshake(reply)[1] == HELLO_VERIFY_REQUEST
            sock.sendto(reply, peer)
            answer, _ = receive_first(sock)
    assert answer[0] == ALERT
    assert int.from_bytes(answer[3:5], "big") == 0  # epoch 0: plaintext
    assert answer[13:] == bytes([FATAL, PROTOCOL_VERSION])
    assert gate.admits == 0


def test_wolfssl_dtls13_only_client_against_our_server(
    wolfssl: Path, cert: tuple[Path, Path]
) -> None:
    config = cert_config(cert, **DTLS12_ONLY)
    run = run_wolfssl_client(wolfssl, config, ["-v", "4", "-A", str(cert[0]), "-x"])
    assert run.returncode != 0
    assert "SSL version is" not in run.stdout
    assert run.received == []
    assert run.stats["reply"] >= 1  # a HelloVerifyRequest
    assert run.stats["admit"] == 0  # nothing allocated
    assert run.stats[str(DropReason.NOT_HANDSHAKE)] >= 1  # the alert, dropped


def test_wolfssl_dtls13_and_12_client_falls_back_to_dtls12_with_our_server(
    wolfssl: Path, cert: tuple[Path, Path]
) -> None:
    config = cert_config(cert, **DTLS12_ONLY)
    run = run_wolfssl_client(wolfssl, config, ["-v", "d", "-A", str(cert[0]), "-x"])
    assert run.returncode == 0, run.stdout
    assert "SSL version is DTLSv1.2" in run.stdout
    assert run.received == [CLIENT_HELLO_TEXT]
    assert "echo:hello wolfssl!" in run.stdout
    assert run.stats["reply"] >= 1
    assert run.stats["admit"] == 1


@pytest.mark.parametrize("version", ["4", "d"])
def test_wolfssl_dtls13_client_with_our_server_speaking_both(
    wolfssl: Path, cert: tuple[Path, Path], version: str
) -> None:
    """Our asyncio server on one port, both versions (the default): wolfSSL's DTLS 1.3
    client (alone, or offering 1.2 too) gets our stateless HelloRetryRequest, returns our
    cookie, is admitted once and completes DTLS 1.3 (RFC 9147 §5.1)."""
    run = run_wolfssl_client(wolfssl, cert_config(cert), ["-v", version, "-A", str(cert[0]), "-x"])
    assert run.returncode == 0, run.stdout
    assert "SSL version is DTLSv1.3" in run.stdout
    assert run.received == [CLIENT_HELLO_TEXT]
    assert "echo:hello wolfssl!" in run.stdout
    assert run.stats["reply"] >= 1  # the HelloRetryRequest
    assert run.stats["admit"] == 1
