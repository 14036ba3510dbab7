"""DTLS-SRTP (RFC 5764) against OpenSSL, the WebRTC key exchange: use_srtp negotiated in
DTLS 1.2 both ways (``openssl s_server``/``s_client -use_srtp``, which print the profile
they agreed on; ``gnutls-cli --srtp-profiles``) and the SRTP keying material,
``EXTRACTOR-dtls_srtp``, the same bytes on both ends (``-keymatexport``)."""

from __future__ import annotations

import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest
from peers import end_input, free_udp_port, openssl_dtls_client, process, read_until, require
from test_interop_dtls12 import make_cert, openssl_s_server
from test_interop_exporters import (
    SRTP_LABEL,
    SRTP_LENGTH,
    keymatexport,
    one_connection_server,
    openssl_material,
)

from dtlsgate.config import ClientConfig, ServerConfig
from dtlsgate.crypto.certs import load_certificate_chain, load_private_key
from dtlsgate.io.blocking import connect
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


def cert_config(cert: Path, key: Path, profiles: tuple[int, ...]) -> ServerConfig:
    return ServerConfig(
        certificate_chain=load_certificate_chain(cert),
        private_key=load_private_key(key),
        srtp_profiles=profiles,
    )


def test_openssl_s_client_with_our_server(tmp_path: Path) -> None:
    """Our server picks its first profile among OpenSSL's."""
    require("openssl")
    cert, key = make_cert(tmp_path)
    profiles = (P.SRTP_AES128_CM_HMAC_SHA1_32, P.SRTP_AES128_CM_HMAC_SHA1_80)
    with one_connection_server(cert_config(cert, key, profiles), SRTP_LABEL, SRTP_LENGTH) as seen:
        args = openssl_dtls_client(seen.port, "-no_ign_eof", "-CAfile", str(cert))
        args += ["-use_srtp", "SRTP_AES128_CM_SHA1_80:SRTP_AES128_CM_SHA1_32"]
        args += keymatexport(SRTP_LABEL, SRTP_LENGTH)
        with process(args, seconds=20) as proc:
            name, theirs = read_srtp(proc)
            end_input(proc)
    assert name == "SRTP_AES128_CM_SHA1_32"
    assert seen.connections == [(P.SRTP_AES128_CM_HMAC_SHA1_32, theirs)]


def test_gnutls_cli_with_our_server(tmp_path: Path) -> None:
    """GnuTLS's client ("- SRTP profile: NAME", "- Key material: hex"), our server's
    preference: the 80-bit tag first."""
    require("gnutls-cli")
    cert, key = make_cert(tmp_path)
    profiles = (P.SRTP_AES128_CM_HMAC_SHA1_80, P.SRTP_AES128_CM_HMAC_SHA1_32)
    with one_connection_server(cert_config(cert, key, profiles), SRTP_LABEL, SRTP_LENGTH) as seen:
        args = ["gnutls-cli", "--udp", "-p", str(seen.port), "127.0.0.1"]
        args += ["--x509cafile", str(cert)]
        args += ["--srtp-profiles=SRTP_AES128_CM_HMAC_SHA1_32:SRTP_AES128_CM_HMAC_SHA1_80"]
        args += [f"--keymatexport={SRTP_LABEL}", f"--keymatexportsize={SRTP_LENGTH}"]
        with process(args, seconds=20) as proc:
            lines: list[str] = []
            read_until(
                proc.stdout, lambda line: "Key material:" in line, time.monotonic() + 15, lines
            )
            end_input(proc)
    text = "\n".join(lines)
    assert "- SRTP profile: SRTP_AES128_CM_HMAC_SHA1_80" in text, text
    theirs = bytes.fromhex(text.split("Key material:")[1].split()[0])
    assert seen.connections == [(P.SRTP_AES128_CM_HMAC_SHA1_80, theirs)]


def test_the_command_line_client_prints_what_openssl_s_server_exports(tmp_path: Path) -> None:
    """``dtlsgate connect --use-srtp LIST --keymatexport LABEL --keymatexportlen N`` (openssl's
    profile names) prints the profile and the material as s_client does."""
    cert, key = make_cert(tmp_path)
    port = free_udp_port()
    extra = ["-cert", str(cert), "-key", str(key), "-use_srtp", "SRTP_AES128_CM_SHA1_80"]
    extra += keymatexport(SRTP_LABEL, SRTP_LENGTH)
    command = [sys.executable, "-m", "dtlsgate", "connect", f"127.0.0.1:{port}"]
    command += ["--cafile", str(cert), "--servername", "localhost", "--timeout", "15"]
    command += ["--use-srtp", "SRTP_AEAD_AES_128_GCM:SRTP_AES128_CM_SHA1_80"]
    command += ["--keymatexport", SRTP_LABEL, "--keymatexportlen", str(SRTP_LENGTH)]
    with openssl_s_server(port, extra) as proc:
        done = subprocess.run(
            ["timeout", "30", *command], input=b"hello\n", capture_output=True, check=False
        )
        _name, theirs = read_srtp(proc)
    err = done.stderr.decode()
    assert done.returncode == 0, err
    assert "SRTP profile: SRTP_AES128_CM_HMAC_SHA1_80" in err, err
    assert openssl_material(err) == theirs
