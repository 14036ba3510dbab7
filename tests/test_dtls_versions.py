"""One client for both versions (``ClientConfig.dtls_versions``): DTLS 1.3 when the server
speaks it, DTLS 1.2 only when the server picks it, and the RFC 8446 §4.1.3 downgrade
sentinel refused (RFC 9147 §5.3)."""

from __future__ import annotations

from typing import Any

import pytest
from helpers import CLIENT, NOW, SERVER, client_config, server_config

from dtlsgate.connection.datagram import DtlsServerConnection
from dtlsgate.connection.datagram13 import DatagramClientConnection, accept
from dtlsgate.errors import ProtocolError
from dtlsgate.events import DataReceived, HandshakeCompleted
from dtlsgate.gate.datagram import Admit, Dtls13Admit, Gate, Reply
from dtlsgate.wire.enums import ExtensionType, ProtocolVersion
from dtlsgate.wire.extensions import Extension
from dtlsgate.wire.handshake import encode_dtls_handshake
from dtlsgate.wire.messages import ServerHello
from dtlsgate.wire.record import encode_dtls_record


def run(client: DatagramClientConnection, gate: Gate, server_cfg: Any) -> Any:
    """Carry datagrams until quiet (no loss); the server is made from the gate's admit."""
    server: Any = None
    now = NOW
    client.connect(now)
    for _ in range(50):
        c_out = [d for d, _ in client.datagrams_to_send()]
        for d in c_out:
            if server is None:
                result = gate.receive(d, CLIENT, now)
                if isinstance(result, Reply):
                    client.receive(result.data, SERVER, now)
                elif isinstance(result, Admit | Dtls13Admit):
                    server = accept(result, server_cfg)
                    server.start(now)
            else:
                server.receive(d, CLIENT, now)
        s_out = [d for d, _ in server.datagrams_to_send()] if server else []
        for d in s_out:
            client.receive(d, SERVER, now)
        if not c_out and not s_out:
            break
    return server


def events(conn: Any) -> list[Any]:
    out = []
    while (e := conn.next_event()) is not None:
        out.append(e)
    return out


@pytest.mark.parametrize(
    ("server_versions", "expected"),
    [((0xFEFC, 0xFEFD), ProtocolVersion.DTLS13), ((0xFEFD,), ProtocolVersion.DTLS12)],
)
def test_client_offers_both_and_follows_the_server(
    server_versions: tuple[int, ...], expected: ProtocolVersion
) -> None:
    cfg = server_config(dtls_versions=server_versions)
    client = DatagramClientConnection(client_config(), SERVER)
    server = run(client, Gate(cfg), cfg)
    assert client.handshake_complete and server.handshake_complete
    assert client.version == expected
    (done,) = [e for e in events(client) if isinstance(e, HandshakeCompleted)]
    assert done.version == expected
    client.send(b"ping")
    for d, _ in client.datagrams_to_send():
        server.receive(d, CLIENT, NOW)
    assert [e.data for e in events(server) if isinstance(e, DataReceived)] == [b"ping"]


def test_client_pinned_to_one_version() -> None:
    cfg = server_config()
    client = DatagramClientConnection(client_config(dtls_versions=(0xFEFD,)), SERVER)
    run(client, Gate(cfg), cfg)
    assert client.handshake_complete and client.version == ProtocolVersion.DTLS12
    only13 = DatagramClientConnection(client_config(dtls_versions=(0xFEFC,)), SERVER)
    cfg12 = server_config(dtls_versions=(0xFEFD,))
    with pytest.raises(ProtocolError):  # a DTLS 1.3-only client does not fall back
        run(only13, Gate(cfg12), cfg12)
    assert not only13.handshake_complete and only13.closed


def test_downgrade_sentinel_is_refused() -> None:
    # A gate that answers DTLS 1.2 in front of a server that also speaks DTLS 1.3 (which
    # therefore marks its DTLS 1.2 ServerHello): the client that offered 1.3 refuses it.
    gate = Gate(server_config(dtls_versions=(0xFEFD,)))
    both = server_config()
    client = DatagramClientConnection(client_config(), SERVER)
    with pytest.raises(ProtocolError, match="downgrade"):
        run(client, gate, both)


def test_dtls12_only_hello_gets_no_sentinel() -> None:
    # DTLS 1.2 bytes stay as they were for a client that did not offer DTLS 1.3.
    cfg = server_config()
    client = DatagramClientConnection(client_config(dtls_versions=(0xFEFD,)), SERVER)
    server = run(client, Gate(cfg), cfg)
    assert isinstance(server, DtlsServerConnection) and client.handshake_complete


def _first_answer(fragment: bytes, content_type: int = 22) -> ProtocolVersion:
    """The version a client offering both ends up in after ``fragment`` (one epoch-0
    record) as the server's first answer; what the connection then does with it (drop it,
    or refuse it with an alert) is its own business."""
    client = DatagramClientConnection(client_config(), SERVER)
    client.connect(NOW)
    try:
        client.receive(encode_dtls_record(content_type, 0xFEFD, 0, 0, fragment), SERVER, NOW)
    except ProtocolError:
        assert client.closed
    return client.version


def test_only_a_dtls12_hello_as_first_answer_falls_back_to_dtls12() -> None:
    """RFC 9147 §5.3 / RFC 8446 §4.2.1: the client leaves its DTLS 1.3 offer only for a
    HelloVerifyRequest or a ServerHello without supported_versions: not for another
    record type, a fragment shorter than its header, another handshake message, nor a
    ServerHello that selects DTLS 1.3."""
    ems = (Extension(ExtensionType.extended_master_secret, b""),)
    hello12 = ServerHello(0xFEFD, bytes(32), b"", 0xC02B, 0, ems).encode()
    assert _first_answer(encode_dtls_handshake(2, hello12, 0)) == ProtocolVersion.DTLS12
    selects13 = (Extension(ExtensionType.supported_versions, b"\xfe\xfc"),)
    hello13 = ServerHello(0xFEFD, bytes(32), b"", 0x1301, 0, selects13).encode()
    for fragment, content_type in [
        (b"\x02\x00\x00\x00\x00", 22),  # shorter than a handshake header
        (encode_dtls_handshake(11, b"\x00\x00\x00", 0), 22),  # a Certificate
        (encode_dtls_handshake(2, hello12, 0), 23),  # not a handshake record
        (encode_dtls_handshake(2, hello13, 0), 22),
    ]:
        assert _first_answer(fragment, content_type) == ProtocolVersion.DTLS13, fragment
