"""DTLS 1.2 features against real peers, each seen on the wire or at the peer:
`dtlsgate serve --workers 2`, SSLKEYLOGFILE (a tshark capture decrypted with our key log),
optional client certificates, ECDHE_PSK with `openssl s_client`, and a DTLS 1.0-only client
refused with a protocol_version alert (RFC 8996)."""

from __future__ import annotations

import shutil
import subprocess
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest
from peers import capture_to, free_udp_port, openssl_dtls_client, process
from test_dtls12_cli import dtlsgate_serve, run_connect
from test_interop_dtls12 import PSK_HEX, PSK_ID, EchoServer, make_cert, run_s_client, server_config

from dtlsgate.config import ServerConfig
from dtlsgate.errors import ProtocolVersionError
from dtlsgate.wire.enums import AlertDescription, CipherSuite

pytestmark = pytest.mark.interop


def tshark_fields(pcap: Path, fields: list[str], *options: str) -> list[list[str]]:
    args = ["tshark", "-r", str(pcap), "-d", "udp.port==1-65535,dtls", *options, "-T", "fields"]
    for f in fields:
        args += ["-e", f]
    out = subprocess.run(
        ["timeout", "60", *args], capture_output=True, check=True, text=True
    ).stdout
    return [(row.split("\t") + [""] * len(fields))[: len(fields)] for row in out.splitlines()]


def test_serve_with_two_workers_on_one_port(tmp_path: Path) -> None:
    port = free_udp_port()
    with dtlsgate_serve(
        tmp_path, "--port", str(port), "--workers", "2", "--psk", f"{PSK_ID}:{PSK_HEX}"
    ):
        if shutil.which("ss"):
            # Two processes, each with its own socket on the port (SO_REUSEPORT). The worker
            # binds after the fork, and the parent announces itself without waiting for it:
            # poll (bounded) until two sockets are there rather than sleeping a fixed time.
            deadline = time.monotonic() + 60  # a bound only
            while True:
                ss = subprocess.run(
                    ["timeout", "10", "ss", "-Hunap", f"sport = :{port}"],
                    capture_output=True,
                    text=True,
                    check=False,
                ).stdout
                if len(ss.splitlines()) >= 2 or time.monotonic() > deadline:
                    break
                time.sleep(0.05)
            pids = {part.split("pid=")[1].split(",")[0] for part in ss.split() if "pid=" in part}
            assert len(ss.splitlines()) == 2 and len(pids) == 2, ss
        psk = ("--psk", f"{PSK_ID}:{PSK_HEX}")
        with ThreadPoolExecutor(6) as pool:
            runs = list(
                pool.map(lambda i: run_connect(port, f"client {i}\n".encode(), *psk), range(6))
            )
    for i, done in enumerate(runs):
        assert done.returncode == 0, done.stderr
        assert done.stdout == f"client {i}\n".encode()


def test_sslkeylogfile_decrypts_a_capture_of_our_server(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    cert, key = make_cert(tmp_path)
    keylog = tmp_path / "keys.log"
    pcap = tmp_path / "dtls.pcapng"
    monkeypatch.setenv("SSLKEYLOGFILE", str(keylog))  # read when the connection is made
    with EchoServer(server_config(cert, key)) as server, capture_to(pcap, server.port):
        got = run_s_client(server.port, ["-CAfile", str(cert)], b"the secret line 4711")
    assert not server.errors, server.errors
    assert got == "echo:the secret line 4711"
    assert keylog.read_text().startswith("CLIENT_RANDOM ")
    rows = tshark_fields(pcap, ["dtls.app_data", "data.data"], "-o", f"tls.keylog_file:{keylog}")
    encrypted = [r[0] for r in rows if r[0]]
    decrypted = [bytes.fromhex(r[1].replace(":", "")) for r in rows if r[1]]
    assert len(encrypted) >= 2  # the line and its echo went encrypted
    assert b"the secret line 4711\n" in decrypted
    assert b"echo:the secret line 4711\n" in decrypted
    # Without the key log, tshark sees no plaintext.
    assert not [r for r in tshark_fields(pcap, ["data.data"]) if r[0]]


def test_optional_client_certificate_with_openssl(tmp_path: Path) -> None:
    cert, key = make_cert(tmp_path)
    client_dir = tmp_path / "client"
    client_dir.mkdir()
    client_cert, client_key = make_cert(client_dir)
    config = server_config(cert, key, verify_client="optional", cafile=str(client_cert))
    with EchoServer(config, count=2) as server:
        without = run_s_client(server.port, ["-CAfile", str(cert)], b"anonymous")
        extra = ["-CAfile", str(cert), "-cert", str(client_cert), "-key", str(client_key)]
        with_cert = run_s_client(server.port, extra, b"with a certificate")
    assert not server.errors, server.errors
    assert (without, with_cert) == ("echo:anonymous", "echo:with a certificate")
    assert server.infos[0].peer_certificates == ()
    assert len(server.infos[1].peer_certificates) == 1


def test_ecdhe_psk_chacha20_with_openssl_s_client() -> None:
    config = ServerConfig(psk={PSK_ID.encode(): bytes.fromhex(PSK_HEX)})
    extra = ["-psk", PSK_HEX, "-psk_identity", PSK_ID, "-cipher", "ECDHE-PSK-CHACHA20-POLY1305"]
    with EchoServer(config) as server:
        got = run_s_client(server.port, extra, b"ecdhe psk")
    assert not server.errors, server.errors
    assert got == "echo:ecdhe psk"
    suite = CipherSuite.TLS_ECDHE_PSK_WITH_CHACHA20_POLY1305_SHA256
    assert server.infos[0].cipher_suite == suite
    assert server.infos[0].psk_identity == PSK_ID.encode()


def test_dtls10_only_client_is_refused_with_protocol_version(tmp_path: Path) -> None:
    cert, key = make_cert(tmp_path)
    pcap = tmp_path / "dtls10.pcapng"
    # OpenSSL 3 needs security level 0 to offer DTLS 1.0 at all.
    args = ["-quiet", "-no_ign_eof", "-cipher", "DEFAULT@SECLEVEL=0"]
    with (
        EchoServer(server_config(cert, key)) as server,
        capture_to(pcap, server.port),
        process(openssl_dtls_client(server.port, *args, version="-dtls1"), seconds=15) as proc,
    ):
        assert proc.stdin is not None and proc.stderr is not None
        proc.stdin.close()
        proc.wait(10)
        stderr = proc.stderr.read().decode(errors="replace")
    assert "alert protocol version" in stderr, stderr
    assert len(server.errors) == 1 and isinstance(server.errors[0], ProtocolVersionError)
    rows = tshark_fields(pcap, ["udp.srcport", "dtls.alert_message.desc"])
    alerts = [r[1] for r in rows if r[1] and int(r[0]) == server.port]
    assert alerts == [str(int(AlertDescription.protocol_version))]
