"""DTLS 1.2 against real peers: our server with `openssl s_client -dtls1_2` and
`gnutls-cli --udp`, our client against `openssl s_server -dtls1_2` and `gnutls-serv --udp`.
Every test checks that application data crossed both ways."""

from __future__ import annotations

import contextlib
import socket
import subprocess
import threading
import time
from pathlib import Path
from typing import Any

import pytest
from peers import process, read_line, require

from dtlsgate.config import ServerConfig
from dtlsgate.crypto.certs import load_certificate_chain, load_private_key
from dtlsgate.listener import Listener

pytestmark = pytest.mark.interop

PSK_HEX = "000102030405060708090a0b0c0d0e0f"
PSK_ID = "Client_identity"


def make_cert(directory: Path, kind: str = "ec") -> tuple[Path, Path]:
    require("openssl")
    cert, key = directory / f"{kind}-cert.pem", directory / f"{kind}-key.pem"
    if kind == "ec":
        new_key = ["-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256"]
    elif kind == "rsa":
        new_key = ["-newkey", "rsa:2048"]
    else:
        new_key = ["-newkey", "ed25519"]
    subprocess.run(
        [
            "timeout",
            "30",
            "openssl",
            "req",
            "-x509",
            *new_key,
            "-nodes",
            "-keyout",
            str(key),
            "-out",
            str(cert),
            "-days",
            "30",
            "-subj",
            "/CN=localhost",
            "-addext",
            "subjectAltName=DNS:localhost,IP:127.0.0.1",
        ],
        check=True,
        capture_output=True,
    )
    return cert, key


def free_udp_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


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
    args = [
        "openssl",
        "s_client",
        "-dtls1_2",
        "-connect",
        f"127.0.0.1:{port}",
        "-quiet",
        "-no_ign_eof",
        *extra,
    ]
    with process(args, seconds=20) as proc:
        assert proc.stdin is not None and proc.stdout is not None
        proc.stdin.write(line + b"\n")
        proc.stdin.flush()
        got = read_line(proc.stdout, time.monotonic() + 15)
        proc.stdin.close()
        with contextlib.suppress(subprocess.TimeoutExpired):
            proc.wait(10)
    return got


@pytest.mark.parametrize(
    ("kind", "cipher"),
    [
        ("ec", "ECDHE-ECDSA-AES128-GCM-SHA256"),
        ("ec", "ECDHE-ECDSA-CHACHA20-POLY1305"),
        ("ec", "ECDHE-ECDSA-AES128-CCM8"),
        ("rsa", "ECDHE-RSA-AES256-GCM-SHA384"),
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
