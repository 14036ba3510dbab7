"""Issue 12's evidence with OpenSSL 3.0, which speaks DTLS 1.2 only: our client, offering
DTLS 1.3 and 1.2 by default, against `openssl s_server -dtls1_2` falls back to DTLS 1.2
(the server picked it: RFC 8446 §4.2.1, RFC 9147 §5.3), with and without its cookie
exchange, and the data goes both ways; tshark shows our ClientHellos offering DTLS 1.3 in
supported_versions and the server's ServerHello without it."""

from __future__ import annotations

import subprocess
import time
from pathlib import Path

import pytest
from peers import process, read_line, require
from test_interop_dtls12 import free_udp_port, make_cert, openssl_s_server

from dtlsgate.config import ClientConfig
from dtlsgate.io.blocking import connect
from dtlsgate.wire.enums import ProtocolVersion

pytestmark = pytest.mark.interop


def _handshakes(pcap: Path, port: int) -> list[list[str]]:
    """(handshake types, supported_versions offered or chosen) of each DTLS packet."""
    fields = ["dtls.handshake.type", "dtls.handshake.extensions.supported_version"]
    args = ["timeout", "60", "tshark", "-r", str(pcap), "-d", f"udp.port=={port},dtls"]
    args += ["-T", "fields", *(x for f in fields for x in ("-e", f))]
    out = subprocess.run(args, capture_output=True, check=True, text=True).stdout
    return [[*row.split("\t"), ""][:2] for row in out.splitlines()]


@pytest.mark.parametrize("listen", [True, False], ids=["cookie", "no-cookie"])
def test_our_client_falls_back_to_openssl_dtls12_server(tmp_path: Path, listen: bool) -> None:
    require("openssl", "tshark")
    cert, key = make_cert(tmp_path)
    port = free_udp_port()
    extra = ["-cert", str(cert), "-key", str(key)] + (["-listen"] if listen else [])
    config = ClientConfig(server_name="localhost", cafile=str(cert))
    assert ProtocolVersion.DTLS13 in config.dtls_versions  # offered by default
    pcap = tmp_path / "fallback.pcapng"
    tshark = ["tshark", "-q", "-i", "lo", "-f", f"udp port {port}", "-w", str(pcap)]
    with process(tshark, seconds=40, stdin=subprocess.DEVNULL) as capture:
        time.sleep(2)  # PEERS.md: the capture starts about 2 s before the peers
        with openssl_s_server(port, extra) as proc:
            assert proc.stdin is not None and proc.stdout is not None
            with connect("127.0.0.1", port, config, timeout=15) as conn:
                assert conn.handshake_info is not None
                assert conn.handshake_info.version == ProtocolVersion.DTLS12
                conn.send(b"hello from dtlsgate\n")
                deadline = time.monotonic() + 10
                seen = ""
                while time.monotonic() < deadline and "hello from dtlsgate" not in seen:
                    seen = read_line(proc.stdout, deadline)
                assert "hello from dtlsgate" in seen
                proc.stdin.write(b"hello from the server\n")
                proc.stdin.flush()
                assert conn.recv(timeout=10) == b"hello from the server\n"
        time.sleep(1)
        capture.terminate()
        capture.wait(10)
    rows = _handshakes(pcap, port)
    client_hellos = [v for types, v in rows if types.split(",")[0] == "1"]
    server_hellos = [v for types, v in rows if "2" in types.split(",")]
    assert client_hellos and all("0xfefc" in v for v in client_hellos), rows
    assert server_hellos and all("0xfefc" not in v for v in server_hellos), rows
    # A HelloVerifyRequest (3) first, then the ClientHello with its cookie (s_server
    # exchanges cookies without -listen too).
    assert any("3" in types.split(",") for types, _ in rows)
