"""Issue 12's "one port, both versions" evidence: one `dtlsgate serve` answers `openssl
s_client -dtls1_2` with a HelloVerifyRequest (RFC 6347 §4.2.1) and wolfSSL's DTLS 1.3
client with a stateless HelloRetryRequest carrying a cookie (RFC 9147 §5.1), on the same
port; both complete and get their data echoed. tshark shows both on the wire: PEERS.md,
tshark 4.0 shows a DTLS 1.3 HelloRetryRequest as a ServerHello whose random is RFC 8446
§4.1.3's HelloRetryRequest value."""

from __future__ import annotations

import subprocess
import time
from pathlib import Path

import pytest
from peers import capture_to, openssl_dtls_client, process, read_line, require, wolfssl_tree
from test_dtls12_cli import dtlsgate_serve
from test_interop_dtls12 import make_cert

pytestmark = pytest.mark.interop

HRR_RANDOM = "cf21ad74e59a6111be1d8c021e65b891c2a211167abb8c5e079e09e2c8a8339c"


def _packets(pcap: Path, port: int) -> list[list[str]]:
    """(source port, handshake types, randoms, cookie lengths) of each DTLS packet."""
    fields = [
        "udp.srcport",
        "udp.dstport",
        "dtls.handshake.type",
        "dtls.handshake.random",
        "dtls.handshake.extensions.cookie_len",
    ]
    args = ["timeout", "60", "tshark", "-r", str(pcap), "-d", f"udp.port=={port},dtls"]
    args += ["-T", "fields", *(x for f in fields for x in ("-e", f))]
    out = subprocess.run(args, capture_output=True, check=True, text=True).stdout
    return [[*row.split("\t"), "", "", "", ""][:5] for row in out.splitlines()]


def test_one_serve_answers_openssl_dtls12_and_wolfssl_dtls13(tmp_path: Path) -> None:
    require("openssl", "tshark")
    tree = wolfssl_tree()
    cert, key = make_cert(tmp_path)
    pcap = tmp_path / "one-port.pcapng"
    with (
        dtlsgate_serve(tmp_path, "--cert", str(cert), "--key", str(key)) as port,
        capture_to(pcap, port, seconds=60),
    ):
        with process(openssl_dtls_client(port, "-quiet", "-no_ign_eof"), seconds=20) as proc:
            assert proc.stdin is not None
            proc.stdin.write(b"from openssl\n")
            proc.stdin.flush()
            assert read_line(proc.stdout, time.monotonic() + 15) == "from openssl"
        wolf = ["./examples/client/client", "-u", "-v", "4", "-p", str(port), "-A", str(cert)]
        done = subprocess.run(["timeout", "25", *wolf], cwd=tree, capture_output=True, check=False)
        out = done.stdout.decode(errors="replace")
        assert "SSL version is DTLSv1.3" in out, out
        assert "hello wolfssl!" in out.split("SSL version", 1)[1], out  # echoed
    rows = _packets(pcap, port)
    from_server = [r for r in rows if r[0] == str(port)]
    hvrs = [r for r in from_server if "3" in r[2].split(",")]
    hrrs = [r for r in from_server if HRR_RANDOM in r[3].replace(":", "") and r[4]]
    assert hvrs and hrrs, rows
    # Two clients: the HelloVerifyRequest went to s_client, the HRR to wolfSSL.
    assert {r[1] for r in hvrs}.isdisjoint({r[1] for r in hrrs})
    assert all(int(r[4].split(",")[0]) > 0 for r in hrrs)
