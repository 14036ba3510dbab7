"""Issue 12's evidence with OpenSSL 3.0, which speaks DTLS 1.2 only: our client, offering
DTLS 1.3 and 1.2 by default, against `openssl s_server -dtls1_2` falls back to DTLS 1.2
(the server picked it: RFC 8446 §4.2.1, RFC 9147 §5.3), with and without its cookie
exchange, and the data goes both ways; tshark shows our ClientHellos offering DTLS 1.3 in
supported_versions and the server's ServerHello without it."""

from __future__ import annotations

from pathlib import Path

import pytest
from peers import between, capture, distinct_messages, free_udp_port, require
from test_interop_dtls12 import exchange_lines, make_cert, openssl_s_server

from dtlsgate.config import ClientConfig
from dtlsgate.io.blocking import connect
from dtlsgate.wire.enums import HandshakeType, ProtocolVersion

pytestmark = pytest.mark.interop


@pytest.mark.parametrize("listen", [True, False], ids=["cookie", "no-cookie"])
def test_our_client_falls_back_to_openssl_dtls12_server(tmp_path: Path, listen: bool) -> None:
    require("openssl", "tshark")
    cert, key = make_cert(tmp_path)
    port = free_udp_port()
    extra = ["-cert", str(cert), "-key", str(key)] + (["-listen"] if listen else [])
    config = ClientConfig(server_name="localhost", cafile=str(cert))
    assert ProtocolVersion.DTLS13 in config.dtls_versions  # offered by default
    with (
        capture(port, seconds=40) as packets,
        openssl_s_server(port, extra) as proc,
        connect("127.0.0.1", port, config, timeout=15) as conn,
    ):
        client_port = int(conn.sock.getsockname()[1])
        assert conn.handshake_info is not None
        assert conn.handshake_info.version == ProtocolVersion.DTLS12
        assert exchange_lines(proc, conn) == b"hello from the server\n"
    ours = between(packets, client_port, port)
    # Our flight may have been sent again when its timer fired first (a loaded machine):
    # each copy the same bytes. s_server exchanges cookies without -listen too, so there are
    # two ClientHellos: the first without a cookie, then, answering the HelloVerifyRequest,
    # the same offer (RFC 6347 §4.2.1: same random) with its cookie. Both offer DTLS 1.3.
    hellos = distinct_messages(ours, HandshakeType.CLIENT_HELLO)
    hvrs = [
        p
        for p in ours
        if p.src_port == port and HandshakeType.HELLO_VERIFY_REQUEST in p.handshake_types
    ]
    assert [h.message_seqs for h in hellos] == [(0,), (1,)], ours
    assert all(ProtocolVersion.DTLS13 in h.supported_versions for h in hellos), hellos
    assert hellos[0].randoms == hellos[1].randoms
    assert hvrs and hellos[0].cookies in ((), (b"",))
    assert hellos[1].cookies == hvrs[0].cookies != (b"",), (hvrs, hellos)
    # The server picked DTLS 1.2: its ServerHello has no supported_versions.
    server_hellos = [
        p for p in ours if p.src_port == port and HandshakeType.SERVER_HELLO in p.handshake_types
    ]
    assert server_hellos and all(not p.supported_versions for p in server_hellos), ours
