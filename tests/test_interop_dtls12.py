"""DTLS 1.2 against real peers: our server with `openssl s_client -dtls1_2` and
`gnutls-cli --udp`, our client against `openssl s_server -dtls1_2` and `gnutls-serv --udp`.
Every test checks that application data crossed both ways."""

from __future__ import annotations

import contextlib
import socket
import subprocess
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from peers import (
    end_input,
    free_udp_port,
    openssl_dtls_client,
    process,
    read_line,
    require,
    wait_bound,
    wait_for_line,
)

from dtlsgate.config import ClientConfig, ServerConfig
from dtlsgate.crypto.certs import load_certificate_chain, load_private_key, make_self_signed
from dtlsgate.io.blocking import DtlsSocket, connect
from dtlsgate.io.listener import Listener

pytestmark = pytest.mark.interop

PSK_HEX = "000102030405060708090a0b0c0d0e0f"
PSK_ID = "Client_identity"


def make_cert(directory: Path, kind: str = "ec") -> tuple[Path, Path]:
    """A self-signed end-entity certificate (CA:FALSE, SAN localhost and 127.0.0.1) that
    also serves as its own trust anchor."""
    key_type = {"ec": "ecdsa-p256", "rsa": "rsa-2048", "ed25519": "ed25519"}[kind]
    cert_pem, key_pem = make_self_signed("localhost", key_type, days=30)
    cert, key = directory / f"{kind}-cert.pem", directory / f"{kind}-key.pem"
    cert.write_bytes(cert_pem)
    key.write_bytes(key_pem)
    return cert, key


class EchoServer:
    """Our blocking server on a thread: listen, accept, echo each record back with a
    prefix, for ``count`` connections; records what it received and any error."""

    def __init__(self, config: ServerConfig, count: int = 1) -> None:
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self.sock.bind(("127.0.0.1", 0))
        self.sock.settimeout(0.5)
        self.port = int(self.sock.getsockname()[1])
        self.listener = Listener(self.sock, config)
        self.received: list[bytes] = []
        self.errors: list[BaseException] = []
        self.infos: list[Any] = []
        self._count = count
        self._stop = threading.Event()
        self.thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        served = 0
        deadline = time.monotonic() + 40
        while served < self._count and not self._stop.is_set() and time.monotonic() < deadline:
            admitted = self.listener.listen()
            if admitted is None:
                continue
            served += 1
            try:
                conn = self.listener.accept(*admitted, timeout=15)
                self.infos.append(conn.handshake_info)
                for _ in range(20):
                    data = conn.recv(timeout=10)
                    if not data:
                        break
                    self.received.append(data)
                    conn.send(b"echo:" + data)
                conn.close()
            except Exception as exc:  # recorded for the test to assert on
                self.errors.append(exc)

    def __enter__(self) -> EchoServer:
        self.thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self.thread.join(30)
        self.sock.close()


def server_config(cert: Path | None, key: Path | None, **kwargs: Any) -> ServerConfig:
    if cert is not None and key is not None:
        kwargs["certificate_chain"] = load_certificate_chain(cert)
        kwargs["private_key"] = load_private_key(key)
    return ServerConfig(**kwargs)


def run_s_client(port: int, extra: list[str], line: bytes = b"hello from openssl") -> str:
    """Run `openssl s_client`, send one line, return everything it printed."""
    args = openssl_dtls_client(port, "-quiet", "-no_ign_eof", *extra)
    with process(args, seconds=20) as proc:
        assert proc.stdin is not None and proc.stdout is not None
        proc.stdin.write(line + b"\n")
        proc.stdin.flush()
        got = read_line(proc.stdout, time.monotonic() + 15)
        end_input(proc)
    return got


@pytest.mark.parametrize(
    ("kind", "cipher"),
    [
        ("ec", "ECDHE-ECDSA-AES128-GCM-SHA256"),
        ("ec", "ECDHE-ECDSA-CHACHA20-POLY1305"),
        ("ec", "ECDHE-ECDSA-AES128-CCM8"),
        ("rsa", "ECDHE-RSA-AES256-GCM-SHA384"),
        ("ed25519", "ECDHE-ECDSA-AES128-GCM-SHA256"),
    ],
)
def test_openssl_s_client_with_our_server(tmp_path: Path, kind: str, cipher: str) -> None:
    cert, key = make_cert(tmp_path, kind)
    with EchoServer(server_config(cert, key)) as server:
        got = run_s_client(server.port, ["-cipher", cipher, "-CAfile", str(cert)])
    assert not server.errors, server.errors
    assert server.received == [b"hello from openssl\n"]
    assert got == "echo:hello from openssl"
    assert server.infos[0].extended_master_secret


def test_openssl_s_client_psk_ccm8_with_our_server() -> None:
    config = ServerConfig(psk={PSK_ID.encode(): bytes.fromhex(PSK_HEX)})
    with EchoServer(config) as server:
        extra = ["-psk", PSK_HEX, "-psk_identity", PSK_ID, "-cipher", "PSK-AES128-CCM8"]
        got = run_s_client(server.port, extra)
    assert not server.errors, server.errors
    assert got == "echo:hello from openssl"
    assert server.infos[0].psk_identity == PSK_ID.encode()


def test_gnutls_cli_with_our_server(tmp_path: Path) -> None:
    require("gnutls-cli")
    cert, key = make_cert(tmp_path)
    with EchoServer(server_config(cert, key)) as server:
        got = run_gnutls_cli(server.port, ["--x509cafile", str(cert)])
    assert not server.errors, server.errors
    assert server.received == [b"hello from gnutls\n"]
    assert got == "echo:hello from gnutls"


GNUTLS_PSK_PRIORITY = (
    "NORMAL:-VERS-ALL:+VERS-DTLS1.2:-KX-ALL:+PSK:-CIPHER-ALL:+AES-128-CCM-8:-MAC-ALL:+AEAD"
)


def test_gnutls_cli_psk_with_our_server() -> None:
    require("gnutls-cli")
    config = ServerConfig(psk={PSK_ID.encode(): bytes.fromhex(PSK_HEX)})
    with EchoServer(config) as server:
        extra = ["--pskusername", PSK_ID, "--pskkey", PSK_HEX, "--priority", GNUTLS_PSK_PRIORITY]
        got = run_gnutls_cli(server.port, extra)
    assert not server.errors, server.errors
    assert got == "echo:hello from gnutls"


def run_gnutls_cli(port: int, extra: list[str], line: bytes = b"hello from gnutls") -> str:
    """Run `gnutls-cli`, send one line once its handshake is done; the line it printed
    with our echo (AssertionError, with its output, when none comes)."""
    args = ["gnutls-cli", "--udp", "-p", str(port), "127.0.0.1", *extra]
    with process(args, seconds=20) as proc:
        assert proc.stdin is not None and proc.stdout is not None
        wait_for_line(proc.stdout, "- Simple Client Mode")
        proc.stdin.write(line + b"\n")
        proc.stdin.flush()
        got = wait_for_line(proc.stdout, "echo:", 10).splitlines()[-1]
        # The server records a missing close_notify as an error.
        end_input(proc)
    return got


@contextlib.contextmanager
def openssl_s_server(port: int, extra: list[str]) -> Iterator[subprocess.Popen[bytes]]:
    args = [
        "openssl",
        "s_server",
        "-dtls1_2",
        "-accept",
        f"127.0.0.1:{port}",
        "-naccept",
        "1",
        *extra,
    ]
    with process(args, seconds=25) as proc:
        assert proc.stdout is not None
        wait_for_line(proc.stdout, "ACCEPT", 10)
        yield proc


def talk_to_server(proc: subprocess.Popen[bytes], port: int, config: ClientConfig) -> bytes:
    """Connect our client, send a line (the peer prints it), have the peer send one back."""
    with connect("127.0.0.1", port, config, timeout=15) as conn:
        return exchange_lines(proc, conn)


def exchange_lines(proc: subprocess.Popen[bytes], conn: DtlsSocket) -> bytes:
    """Over our connected client, send a line (the peer prints it) and have the peer send
    one back; what our client received."""
    assert proc.stdin is not None and proc.stdout is not None
    conn.send(b"hello from dtlsgate\n")
    wait_for_line(proc.stdout, "hello from dtlsgate", 10)
    proc.stdin.write(b"hello from the server\n")
    proc.stdin.flush()
    return conn.recv(timeout=10)


@pytest.mark.parametrize("listen", [True, False], ids=["cookie", "no-cookie"])
def test_our_client_with_openssl_s_server(tmp_path: Path, listen: bool) -> None:
    cert, key = make_cert(tmp_path)
    port = free_udp_port()
    extra = ["-cert", str(cert), "-key", str(key)] + (["-listen"] if listen else [])
    with openssl_s_server(port, extra) as proc:
        config = ClientConfig(server_name="localhost", cafile=str(cert))
        assert talk_to_server(proc, port, config) == b"hello from the server\n"


def test_our_client_with_openssl_s_server_psk() -> None:
    require("openssl")
    port = free_udp_port()
    extra = ["-nocert", "-psk", PSK_HEX, "-psk_identity", PSK_ID, "-cipher", "PSK-AES128-CCM8"]
    with openssl_s_server(port, extra) as proc:
        config = ClientConfig(psk=bytes.fromhex(PSK_HEX), psk_identity=PSK_ID.encode())
        assert talk_to_server(proc, port, config) == b"hello from the server\n"


def test_our_client_with_gnutls_serv(tmp_path: Path) -> None:
    require("gnutls-serv")
    cert, key = make_cert(tmp_path)
    port = free_udp_port()
    args = [
        "gnutls-serv",
        "--udp",
        "--echo",
        "-p",
        str(port),
        "--x509certfile",
        str(cert),
        "--x509keyfile",
        str(key),
    ]
    with process(args, seconds=25, stdin=subprocess.DEVNULL) as server:
        wait_bound(server, port)
        config = ClientConfig(server_name="localhost", cafile=str(cert))
        with connect("127.0.0.1", port, config, timeout=15) as conn:
            conn.send(b"ping from dtlsgate")
            assert conn.recv(timeout=10) == b"ping from dtlsgate"


def test_our_client_with_gnutls_serv_psk(tmp_path: Path) -> None:
    require("gnutls-serv")
    passwd = tmp_path / "psk.passwd"
    passwd.write_text(f"{PSK_ID}:{PSK_HEX}\n")
    port = free_udp_port()
    args = [
        "gnutls-serv",
        "--udp",
        "--echo",
        "-p",
        str(port),
        "--pskpasswd",
        str(passwd),
        "--priority",
        GNUTLS_PSK_PRIORITY,
    ]
    with process(args, seconds=25, stdin=subprocess.DEVNULL) as server:
        wait_bound(server, port)
        config = ClientConfig(psk=bytes.fromhex(PSK_HEX), psk_identity=PSK_ID.encode())
        with connect("127.0.0.1", port, config, timeout=15) as conn:
            conn.send(b"ping psk")
            assert conn.recv(timeout=10) == b"ping psk"


def test_fragmented_flights_with_openssl_mtu_300(tmp_path: Path) -> None:
    """Our server's RSA flight split into fragments of at most 300-byte datagrams; and
    OpenSSL's flight fragmented the same way towards our client."""
    cert, key = make_cert(tmp_path, "rsa")
    with EchoServer(server_config(cert, key, mtu=300)) as server:
        got = run_s_client(server.port, ["-mtu", "300"])
    assert not server.errors, server.errors
    assert got == "echo:hello from openssl"
    port = free_udp_port()
    extra = ["-cert", str(cert), "-key", str(key), "-mtu", "300", "-listen"]
    with openssl_s_server(port, extra) as proc:
        config = ClientConfig(server_name="localhost", cafile=str(cert), mtu=300)
        assert talk_to_server(proc, port, config) == b"hello from the server\n"


def test_fragmented_flights_with_gnutls_mtu_300(tmp_path: Path) -> None:
    require("gnutls-cli", "gnutls-serv")
    cert, key = make_cert(tmp_path, "rsa")
    with EchoServer(server_config(cert, key, mtu=300)) as server:
        got = run_gnutls_cli(server.port, ["--x509cafile", str(cert), "--mtu", "300"])
    assert not server.errors, server.errors
    assert got == "echo:hello from gnutls"
    port = free_udp_port()
    args = [
        "gnutls-serv",
        "--udp",
        "--echo",
        "-p",
        str(port),
        "--x509certfile",
        str(cert),
        "--x509keyfile",
        str(key),
        "--mtu",
        "300",
    ]
    with process(args, seconds=25, stdin=subprocess.DEVNULL) as server:
        wait_bound(server, port)
        config = ClientConfig(server_name="localhost", cafile=str(cert), mtu=300)
        with connect("127.0.0.1", port, config, timeout=15) as conn:
            conn.send(b"small mtu")
            assert conn.recv(timeout=10) == b"small mtu"
