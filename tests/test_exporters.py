"""Keying material exporters (`dtlsgate.crypto.exporters`) on our own two ends, for every
version: both ends of a handshake export the same bytes, another label, context, length or
handshake gives other bytes, and the API refuses what it cannot answer. The values are
checked against OpenSSL in test_interop_exporters.py."""

from __future__ import annotations

from typing import Any

import pytest
from helpers import client_config, make_pair, make_pair13, pair, server_config
from test_dtls12_resumption import first_session, resume

from dtlsgate.config import ClientConfig, ServerConfig
from dtlsgate.connection.datagram import DtlsClientConnection
from dtlsgate.connection.stream import ClientConnection
from dtlsgate.errors import StateError, UsageError
from dtlsgate.gate.datagram import Gate

LABEL = b"EXPERIMENTAL-dtlsgate"
PSK = bytes(range(16))


def dtls12(server: ServerConfig | None = None, client: ClientConfig | None = None) -> Any:
    p = make_pair(server or server_config(), client or client_config())
    assert p.run() and p.server is not None
    return p.client, p.server


def dtls13(server: ServerConfig | None = None, client: ClientConfig | None = None) -> Any:
    p = make_pair13(server or server_config(), client or client_config(), gated=True)
    assert p.run() and p.server is not None
    return p.client, p.server


def tls13(server: ServerConfig | None = None, client: ClientConfig | None = None) -> Any:
    client_conn, server_conn = pair(server, client)
    assert client_conn.handshake_complete and server_conn.handshake_complete
    return client_conn, server_conn


@pytest.mark.parametrize("handshake", [dtls12, dtls13, tls13])
def test_both_ends_export_the_same_bytes_and_each_input_changes_them(handshake: Any) -> None:
    client, server = handshake()
    exported = client.export_keying_material(LABEL, 60)
    assert len(exported) == 60
    assert server.export_keying_material(LABEL, 60) == exported
    assert client.export_keying_material(LABEL, 60) == exported  # the same each time
    # A shorter output: a prefix in DTLS 1.2 (the PRF is a stream); in (D)TLS 1.3 the length
    # is in the HkdfLabel (RFC 8446 §7.1), so other bytes.
    shorter = client.export_keying_material(LABEL, 20)
    assert server.export_keying_material(LABEL, 20) == shorter
    assert (shorter == exported[:20]) == (handshake is dtls12)
    assert client.export_keying_material(b"EXPERIMENTAL-other", 60) != exported
    with_context = client.export_keying_material(LABEL, 60, b"context")
    assert with_context != exported
    assert server.export_keying_material(LABEL, 60, b"context") == with_context


def test_each_connection_of_one_server_exports_its_own_material() -> None:
    """A server's connections share what they report when nothing tells the clients apart
    (`ServerContext.completed`), never their exporters: through one gate, each connection
    exports what its own client does, and two connections differ."""
    config = server_config()
    gate = Gate(config)
    exported = []
    for _ in range(2):
        p = make_pair(config, client_config(), gate=gate)
        assert p.run() and p.server is not None
        assert p.server.export_keying_material(LABEL, 32) == p.client.export_keying_material(
            LABEL, 32
        )
        exported.append(p.server.export_keying_material(LABEL, 32))
    assert exported[0] != exported[1]


def test_no_context_and_an_empty_context_differ_in_dtls12_only() -> None:
    """RFC 5705 §4: the context length is in the seed only when a context is given; RFC 8446
    §7.5: in TLS 1.3 no context and an empty one are the same."""
    client, _ = dtls12()
    assert client.export_keying_material(LABEL, 32) != client.export_keying_material(LABEL, 32, b"")
    for handshake in (dtls13, tls13):
        client, _ = handshake()
        assert client.export_keying_material(LABEL, 32) == client.export_keying_material(
            LABEL, 32, b""
        )


@pytest.mark.parametrize("handshake", [dtls12, dtls13])
def test_psk_handshakes_export(handshake: Any) -> None:
    """The IoT case: a PSK handshake (AES-CCM-8 in DTLS 1.2) exports alike at both ends."""
    client, server = handshake(
        ServerConfig(psk={b"device": PSK}), ClientConfig(psk=PSK, psk_identity=b"device")
    )
    assert client.export_keying_material(LABEL, 16) == server.export_keying_material(LABEL, 16)


def test_a_resumed_dtls12_handshake_exports_alike_at_both_ends() -> None:
    """The abbreviated handshake (RFC 5077 ticket) exports from the resumed master secret
    and its own randoms (RFC 5705 §4)."""
    session, cfg = first_session()
    resumed, _ = resume(cfg, session)
    assert resumed.client.info is not None and resumed.client.info.resumed
    assert resumed.server is not None
    assert resumed.client.export_keying_material(
        LABEL, 32
    ) == resumed.server.export_keying_material(LABEL, 32)


def test_before_the_handshake_completed_nothing_is_exported() -> None:
    with pytest.raises(StateError):
        DtlsClientConnection(client_config()).export_keying_material(LABEL, 16)
    with pytest.raises(StateError):
        ClientConnection(client_config()).export_keying_material(LABEL, 16)


@pytest.mark.parametrize("handshake", [dtls12, tls13])
def test_misuse_is_a_usage_error(handshake: Any) -> None:
    client, _ = handshake()
    for label, length, context in [
        (b"", 16, None),  # no label
        ("EXPERIMENTAL", 16, None),  # a str, not bytes
        (LABEL, 0, None),  # nothing to export
        (LABEL, 16, "context"),  # a str context
    ]:
        with pytest.raises(UsageError):
            client.export_keying_material(label, length, context)
