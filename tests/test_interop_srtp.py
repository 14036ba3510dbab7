"""DTLS-SRTP (RFC 5764) against OpenSSL, the WebRTC key exchange: use_srtp negotiated in
DTLS 1.2 both ways (``openssl s_server``/``s_client -use_srtp``, which print the profile
they agreed on) and the SRTP keying material, ``EXTRACTOR-dtls_srtp``, the same bytes on
both ends (``-keymatexport``)."""

from __future__ import annotations

import socket
import threading
import time
from pathlib import Path
from typing import Any

import pytest
from peers import end_input, openssl_dtls_client, process, read_until, require
from test_interop_dtls12 import free_udp_port, make_cert, openssl_s_server
from test_interop_exporters import SRTP_LABEL, SRTP_LENGTH, keymatexport, openssl_material

from dtlsgate.config import ClientConfig, ServerConfig
from dtlsgate.crypto.certs import load_certificate_chain, load_private_key
from dtlsgate.io.blocking import connect
from dtlsgate.io.listener import Listener
from dtlsgate.wire.enums import SrtpProtectionProfile as P

pytestmark = pytest.mark.interop


def read_srtp(proc: Any) -> tuple[str, bytes]:
    """The profile OpenSSL printed ("SRTP Extension negotiated, profile=NAME") and the
    keying material it exported."""
    lines: list[str] = []
    read_until(proc.stdout, lambda line: "Keying material:" in line, time.monotonic() + 15, lines)
    text = "\n".join(lines)
    negotiated = [line for line in lines if "SRTP Extension negotiated" in line]
    assert negotiated, text
    return negotiated[0].split("profile=")[1].strip(), openssl_material(text)


def test_our_client_with_openssl_s_server(tmp_path: Path) -> None:
    """Our client offers DTLS 1.3 and 1.2 (the default) with use_srtp; OpenSSL picks its own
    first profile among ours."""
    cert, key = make_cert(tmp_path)
    port = free_udp_port()
    extra = ["-cert", str(cert), "-key", str(key)]
    extra += ["-use_srtp", "SRTP_AEAD_AES_128_GCM:SRTP_AES128_CM_SHA1_80"]
    extra += keymatexport(SRTP_LABEL, SRTP_LENGTH)
    config = ClientConfig(
        server_name="localhost",
        cafile=str(cert),
        srtp_profiles=(P.SRTP_AES128_CM_HMAC_SHA1_80, P.SRTP_AEAD_AES_128_GCM),
    )
    with (
        openssl_s_server(port, extra) as proc,
        connect("127.0.0.1", port, config, timeout=15) as conn,
    ):
        assert conn.handshake_info is not None
        profile = conn.handshake_info.srtp_profile
        ours = conn.connection.export_keying_material(SRTP_LABEL.encode(), SRTP_LENGTH)
        name, theirs = read_srtp(proc)
    assert profile == P.SRTP_AEAD_AES_128_GCM and name == "SRTP_AEAD_AES_128_GCM"
    assert ours == theirs


def test_openssl_s_client_with_our_server(tmp_path: Path) -> None:
    """Our server picks its first profile among OpenSSL's."""
    require("openssl")
    cert, key = make_cert(tmp_path)
    sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    sock.bind(("127.0.0.1", 0))
    sock.settimeout(0.5)
    port = sock.getsockname()[1]
    config = ServerConfig(
        certificate_chain=load_certificate_chain(cert),
        private_key=load_private_key(key),
        srtp_profiles=(P.SRTP_AES128_CM_HMAC_SHA1_32, P.SRTP_AES128_CM_HMAC_SHA1_80),
    )
    listener = Listener(sock, config)
    seen: list[tuple[int | None, bytes]] = []

    def serve() -> None:
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            admitted = listener.listen()
            if admitted is not None:
                with listener.accept(*admitted, timeout=15) as conn:
                    assert conn.handshake_info is not None
                    material = conn.connection.export_keying_material(
                        SRTP_LABEL.encode(), SRTP_LENGTH
                    )
                    seen.append((conn.handshake_info.srtp_profile, material))
                    conn.recv(timeout=10)
                return

    thread = threading.Thread(target=serve, daemon=True)
    thread.start()
    try:
        args = openssl_dtls_client(port, "-no_ign_eof", "-CAfile", str(cert))
        args += ["-use_srtp", "SRTP_AES128_CM_SHA1_80:SRTP_AES128_CM_SHA1_32"]
        args += keymatexport(SRTP_LABEL, SRTP_LENGTH)
        with process(args, seconds=20) as proc:
            name, theirs = read_srtp(proc)
            end_input(proc)
        thread.join(20)
    finally:
        sock.close()
    assert name == "SRTP_AES128_CM_SHA1_32"
    assert seen == [(P.SRTP_AES128_CM_HMAC_SHA1_32, theirs)]
