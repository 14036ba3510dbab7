"""Certificate fingerprints (RFC 8122, WebRTC's way to authenticate self-signed certificates)
against real peers, with certificates OpenSSL makes and fingerprints OpenSSL computes
(``openssl x509 -fingerprint -sha256``): our DTLS 1.2 and TLS 1.3 clients with a fingerprint
and no CA against ``openssl s_server``; ``openssl s_client`` and ``gnutls-cli`` presenting a
self-signed client certificate to our server, which takes it by its fingerprint; a wrong
fingerprint refused with bad_certificate, which the peer reports; and the command line
(``--fingerprint``, the fingerprint ``serve`` and ``connect`` print at start)."""

from __future__ import annotations

import subprocess
import time
from pathlib import Path

import pytest
from cryptography.hazmat.primitives.serialization import Encoding
from peers import (
    converse,
    free_tcp_port,
    free_udp_port,
    openssl_dtls_client,
    process,
    read_line,
    require,
    wait_for_line,
)
from test_interop_cli_options import connect as run_connect
from test_interop_cli_options import serve, server_log
from test_interop_dtls12 import EchoServer, openssl_s_server, run_gnutls_cli, talk_to_server
from test_interop_raw_public_keys import Tls13Server

from dtlsgate.config import ClientConfig, ServerConfig
from dtlsgate.crypto.certs import (
    certificate_fingerprint,
    load_certificate_chain,
    load_private_key,
)
from dtlsgate.errors import BadCertificate
from dtlsgate.io import blocking_tls
from dtlsgate.io.blocking import connect

pytestmark = pytest.mark.interop

DTLS12 = (0xFEFD,)


def openssl_identity(directory: Path, name: str) -> tuple[Path, Path, str]:
    """A fresh self-signed P-256 certificate made by ``openssl req -x509`` (CA:TRUE, as it
    makes them), its key, and its SHA-256 fingerprint as OpenSSL computes it, written as RFC
    8122 does ("sha-256 AB:..."; OpenSSL prints "sha256 Fingerprint=AB:...")."""
    require("openssl")
    cert, key = directory / f"{name}-cert.pem", directory / f"{name}-key.pem"
    ec = ["-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes"]
    req = ["openssl", "req", "-x509", *ec, "-keyout", str(key), "-out", str(cert)]
    subprocess.run(
        ["timeout", "30", *req, "-days", "30", "-subj", f"/CN={name}"],
        capture_output=True,
        check=True,
    )
    return cert, key, openssl_fingerprint(cert)


def openssl_fingerprint(cert: Path) -> str:
    args = ["openssl", "x509", "-in", str(cert), "-noout", "-fingerprint", "-sha256"]
    done = subprocess.run(["timeout", "30", *args], capture_output=True, check=True, text=True)
    name, _, digits = done.stdout.strip().partition(" Fingerprint=")
    assert name.lower() == "sha256", done.stdout
    return f"sha-256 {digits}"


def der_of(cert: Path) -> bytes:
    return load_certificate_chain(cert)[0].public_bytes(Encoding.DER)


def test_our_fingerprint_is_openssls(tmp_path: Path) -> None:
    cert, _, theirs = openssl_identity(tmp_path, "peer")
    assert certificate_fingerprint(load_certificate_chain(cert)[0]) == theirs


def server_config(cert: Path, key: Path, **kwargs: object) -> ServerConfig:
    return ServerConfig(
        certificate_chain=load_certificate_chain(cert),
        private_key=load_private_key(key),
        **kwargs,  # type: ignore[arg-type]
    )


# ---- (a) our DTLS 1.2 client, fingerprint only, against openssl s_server -dtls1_2 -----------


def test_our_dtls12_client_with_a_fingerprint_and_no_ca(tmp_path: Path) -> None:
    cert, key, fingerprint = openssl_identity(tmp_path, "server")
    port = free_udp_port()
    with openssl_s_server(port, ["-cert", str(cert), "-key", str(key)]) as proc:
        config = ClientConfig(certificate_fingerprints=(fingerprint,), dtls_versions=DTLS12)
        assert talk_to_server(proc, port, config) == b"hello from the server\n"


def test_our_dtls12_client_refuses_another_fingerprint(tmp_path: Path) -> None:
    cert, key, _ = openssl_identity(tmp_path, "server")
    _, _, other = openssl_identity(tmp_path, "other")
    port = free_udp_port()
    with openssl_s_server(port, ["-cert", str(cert), "-key", str(key)]) as proc:
        config = ClientConfig(certificate_fingerprints=(other,), dtls_versions=DTLS12)
        with pytest.raises(BadCertificate):
            connect("127.0.0.1", port, config, timeout=15)
        # OpenSSL got our alert: "SSL routines:...:sslv3 alert bad certificate".
        wait_for_line(proc.stderr, "alert bad certificate", 10)


# ---- (b) openssl s_client / gnutls-cli with a client certificate, our server ----------------


def s_client_dtls(port: int, *extra: str) -> str:
    """`openssl s_client -dtls1_2`: "hello" sent, its echo awaited; all it printed (stderr
    too). A refused handshake ends its output early."""
    args = openssl_dtls_client(port, "-no_ign_eof", *extra)
    with process(args, seconds=30, stderr=subprocess.STDOUT) as proc:
        return converse(proc, ((b"hello\n", "echo:hello"),))


@pytest.mark.parametrize("accepted", [True, False], ids=["match", "mismatch"])
def test_openssl_s_client_certificate_by_fingerprint(tmp_path: Path, accepted: bool) -> None:
    server_cert, server_key, _ = openssl_identity(tmp_path, "server")
    client_cert, client_key, client_fp = openssl_identity(tmp_path, "client")
    _, _, other_fp = openssl_identity(tmp_path, "other")
    fingerprint = client_fp if accepted else other_fp
    config = server_config(
        server_cert,
        server_key,
        verify_client="required",
        certificate_fingerprints=(fingerprint,),
        dtls_versions=DTLS12,
    )
    with EchoServer(config) as server:
        out = s_client_dtls(server.port, "-cert", str(client_cert), "-key", str(client_key))
    if accepted:
        assert not server.errors, server.errors
        assert "echo:hello" in out.splitlines(), out
        assert server.infos[0].peer_certificates[0] == der_of(client_cert)
    else:
        assert [type(e) for e in server.errors] == [BadCertificate]
        assert "alert bad certificate" in out and "echo:hello" not in out, out


def test_gnutls_cli_certificate_by_fingerprint(tmp_path: Path) -> None:
    require("gnutls-cli")
    server_cert, server_key, _ = openssl_identity(tmp_path, "server")
    client_cert, client_key, client_fp = openssl_identity(tmp_path, "client")
    config = server_config(
        server_cert, server_key, verify_client="required", certificate_fingerprints=(client_fp,)
    )
    extra = ["--x509cafile", str(server_cert), "--verify-hostname", "server"]
    extra += ["--x509certfile", str(client_cert), "--x509keyfile", str(client_key)]
    with EchoServer(config) as server:
        got = run_gnutls_cli(server.port, extra)
    assert not server.errors, server.errors
    assert got == "echo:hello from gnutls"
    assert server.infos[0].peer_certificates[0] == der_of(client_cert)


# ---- (c) TLS 1.3 over TCP ---------------------------------------------------------------------


def openssl_tls13_server(port: int, cert: Path, key: Path) -> list[str]:
    args = ["openssl", "s_server", "-tls1_3", "-accept", f"127.0.0.1:{port}", "-naccept", "1"]
    return [*args, "-cert", str(cert), "-key", str(key)]


@pytest.mark.parametrize("accepted", [True, False], ids=["match", "mismatch"])
def test_our_tls13_client_with_a_fingerprint_and_no_ca(tmp_path: Path, accepted: bool) -> None:
    cert, key, fingerprint = openssl_identity(tmp_path, "server")
    _, _, other = openssl_identity(tmp_path, "other")
    port = free_tcp_port()
    config = ClientConfig(certificate_fingerprints=(fingerprint if accepted else other,))
    with process(openssl_tls13_server(port, cert, key), seconds=30) as proc:
        assert proc.stdin is not None and proc.stdout is not None
        wait_for_line(proc.stdout, "ACCEPT", 10)
        if not accepted:
            with pytest.raises(BadCertificate):
                blocking_tls.connect("127.0.0.1", port, config, timeout=15)
            wait_for_line(proc.stderr, "alert bad certificate", 10)
            return
        with blocking_tls.connect("127.0.0.1", port, config, timeout=15) as tls:
            assert tls.info is not None
            assert tls.info.peer_certificates[0] == der_of(cert)
            tls.sendall(b"hello from dtlsgate\n")
            wait_for_line(proc.stdout, "hello from dtlsgate", 10)
            proc.stdin.write(b"hello from openssl\n")
            proc.stdin.flush()
            assert tls.recv() == b"hello from openssl\n"


def test_openssl_tls13_client_certificate_by_fingerprint(tmp_path: Path) -> None:
    server_cert, server_key, _ = openssl_identity(tmp_path, "server")
    client_cert, client_key, client_fp = openssl_identity(tmp_path, "client")
    config = server_config(
        server_cert, server_key, verify_client="required", certificate_fingerprints=(client_fp,)
    )
    with Tls13Server(config) as server:
        args = ["openssl", "s_client", "-tls1_3", "-connect", f"127.0.0.1:{server.port}"]
        args += ["-no_ign_eof", "-cert", str(client_cert), "-key", str(client_key)]
        with process(args, seconds=30, stderr=subprocess.STDOUT) as proc:
            out = converse(proc, ((b"hello\n", "echo:hello"),))
    assert not server.errors, server.errors
    assert "echo:hello" in out.splitlines(), out
    assert server.infos[0].peer_certificates[0] == der_of(client_cert)


# ---- (d) the command line ---------------------------------------------------------------------


def test_connect_with_a_fingerprint_against_openssl_s_server(tmp_path: Path) -> None:
    """``dtlsgate connect --fingerprint FP`` needs no --cafile nor --insecure; a wrong one
    is one line and rc 1, and OpenSSL gets bad_certificate."""
    cert, key, fingerprint = openssl_identity(tmp_path, "server")
    _, _, other = openssl_identity(tmp_path, "other")
    for fp, ok in ((fingerprint, True), (other, False)):
        port = free_udp_port()
        with openssl_s_server(port, ["-cert", str(cert), "-key", str(key)]) as proc:
            done = run_connect(port, "--dtls1_2", "--fingerprint", fp, "--timeout", "15")
            if ok:
                assert done.returncode == 0, done.stderr
                wait_for_line(proc.stdout, "hello", 10)
            else:
                assert done.returncode == 1, done.stderr
                assert "fingerprint" in done.stderr and done.stderr.count("\n") == 1, done.stderr
                wait_for_line(proc.stderr, "alert bad certificate", 10)


@pytest.mark.parametrize("mode", [["--dtls1_2"], ["--dtls1_3"], ["--tls"]], ids=lambda m: m[0])
def test_serve_and_connect_print_their_fingerprints_and_take_each_other(
    tmp_path: Path, mode: list[str]
) -> None:
    """``serve`` prints its (cached self-signed) certificate's fingerprint after its start
    line, the one OpenSSL computes for the file; ``connect --cert`` prints its own; each
    takes the other's by ``--fingerprint``, and a client of another certificate is
    refused with bad_certificate."""
    client_cert, client_key, client_fp = openssl_identity(tmp_path, "client")
    other_cert, other_key, _ = openssl_identity(tmp_path, "other")
    with serve(tmp_path, *mode, "--Verify", "--fingerprint", client_fp) as (proc, port):
        printed = read_line(proc.stderr, time.monotonic() + 30)
        server_fp = openssl_fingerprint(tmp_path / "dtlsgate" / "self-signed-cert.pem")
        assert printed == f"fingerprint {server_fp}", printed
        ours = [*mode, "--fingerprint", server_fp, "--timeout", "15"]
        good = run_connect(port, *ours, "--cert", str(client_cert), "--key", str(client_key))
        bad = run_connect(port, *ours, "--cert", str(other_cert), "--key", str(other_key))
    assert (good.returncode, good.stdout) == (0, "hello\n"), good.stderr
    assert good.stderr.splitlines()[0] == f"fingerprint {client_fp}", good.stderr
    assert bad.stdout == "", bad.stderr
    assert "none of the configured fingerprints" in server_log(proc)
