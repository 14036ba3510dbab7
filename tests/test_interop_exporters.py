"""Keying material exporters against OpenSSL: ``openssl s_server``/``s_client
-keymatexport LABEL -keymatexportlen N`` print the material they derived from the
handshake (RFC 5705 in DTLS 1.2, RFC 8446 §7.5 in TLS 1.3), and ours must be the same
bytes, with each of our ends: our DTLS 1.2 client (certificate) and server (PSK, AES-CCM-8),
our TLS 1.3 client. DTLS-SRTP's label, ``EXTRACTOR-dtls_srtp``, is one of them."""

from __future__ import annotations

import contextlib
import re
import socket
import subprocess
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import NamedTuple

import pytest
from peers import (
    end_input,
    free_tcp_port,
    free_udp_port,
    openssl_dtls_client,
    process,
    read_until,
    require,
    wait_for_line,
)
from test_interop_dtls12 import PSK_HEX, PSK_ID, make_cert, openssl_s_server

from dtlsgate.config import ClientConfig, ServerConfig
from dtlsgate.io import blocking_tls
from dtlsgate.io.blocking import connect
from dtlsgate.io.listener import Listener

pytestmark = pytest.mark.interop

SRTP_LABEL = "EXTRACTOR-dtls_srtp"
SRTP_LENGTH = 60  # SRTP_AES128_CM_HMAC_SHA1_80: 2 * (16-byte key + 14-byte salt), RFC 5764 §4.2


def keymatexport(label: str, length: int) -> list[str]:
    return ["-keymatexport", label, "-keymatexportlen", str(length)]


def openssl_material(output: str) -> bytes:
    """The material OpenSSL printed ("Keying material: HEX")."""
    match = re.search(r"Keying material: ([0-9A-F]+)", output)
    assert match, output
    return bytes.fromhex(match.group(1))


def read_material(proc: subprocess.Popen[bytes]) -> bytes:
    lines: list[str] = []
    read_until(proc.stdout, lambda line: "Keying material:" in line, time.monotonic() + 15, lines)
    return openssl_material("\n".join(lines))


@pytest.mark.parametrize("label", [SRTP_LABEL, "EXPERIMENTAL-dtlsgate"])
def test_our_dtls12_client_exports_what_openssl_s_server_does(tmp_path: Path, label: str) -> None:
    cert, key = make_cert(tmp_path)
    port = free_udp_port()
    extra = ["-cert", str(cert), "-key", str(key), *keymatexport(label, SRTP_LENGTH)]
    with openssl_s_server(port, extra) as proc:
        config = ClientConfig(server_name="localhost", cafile=str(cert))
        with connect("127.0.0.1", port, config, timeout=15) as conn:
            ours = conn.connection.export_keying_material(label.encode(), SRTP_LENGTH)
            theirs = read_material(proc)
    assert len(ours) == SRTP_LENGTH and ours == theirs


class SeenBy(NamedTuple):
    """`one_connection_server`'s port, and what its connection negotiated and exported."""

    port: int
    connections: list[tuple[int | None, bytes]]


@contextlib.contextmanager
def one_connection_server(config: ServerConfig, label: str, length: int) -> Iterator[SeenBy]:
    """Our blocking server on a thread for one connection: once its handshake completed,
    the SRTP profile it agreed on and the ``length`` bytes it exports for ``label`` are
    recorded; then it reads until the client leaves."""
    sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    sock.bind(("127.0.0.1", 0))
    sock.settimeout(0.5)
    listener = Listener(sock, config)
    seen = SeenBy(sock.getsockname()[1], [])

    def serve() -> None:
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            admitted = listener.listen()
            if admitted is not None:
                with listener.accept(*admitted, timeout=15) as conn:
                    assert conn.handshake_info is not None
                    material = conn.connection.export_keying_material(label.encode(), length)
                    seen.connections.append((conn.handshake_info.srtp_profile, material))
                    conn.recv(timeout=10)
                return

    thread = threading.Thread(target=serve, daemon=True)
    thread.start()
    try:
        yield seen
        thread.join(20)
    finally:
        sock.close()


def test_our_dtls12_psk_server_exports_what_openssl_s_client_does() -> None:
    """The IoT case: PSK with AES-CCM-8, our blocking server, OpenSSL's client."""
    require("openssl")
    config = ServerConfig(psk={PSK_ID.encode(): bytes.fromhex(PSK_HEX)})
    with one_connection_server(config, "EXPERIMENTAL-x", 32) as seen:
        args = openssl_dtls_client(seen.port, "-no_ign_eof", "-psk", PSK_HEX)
        args += ["-psk_identity", PSK_ID, "-cipher", "PSK-AES128-CCM8"]
        args += keymatexport("EXPERIMENTAL-x", 32)
        with process(args, seconds=20) as proc:
            theirs = read_material(proc)
            end_input(proc)
    assert seen.connections == [(None, theirs)]


def test_our_tls13_client_exports_what_openssl_s_server_does(tmp_path: Path) -> None:
    require("openssl")
    cert, key = make_cert(tmp_path)
    port = free_tcp_port()
    args = ["openssl", "s_server", "-tls1_3", "-accept", f"127.0.0.1:{port}", "-naccept", "1"]
    args += ["-cert", str(cert), "-key", str(key), *keymatexport("EXPERIMENTAL-tls13", 48)]
    with process(args, seconds=25) as proc:
        wait_for_line(proc.stdout, "ACCEPT", 10)
        config = ClientConfig(server_name="localhost", cafile=str(cert))
        with blocking_tls.connect("127.0.0.1", port, config, timeout=15) as tls:
            ours = tls.conn.export_keying_material(b"EXPERIMENTAL-tls13", 48)
            theirs = read_material(proc)
    assert ours == theirs
