"""record_size_limit (RFC 8449) in TLS 1.3: the client always sends it, each side
advertises its configured limit, seals no larger records than the peer's limit, and
refuses larger ones than its own with record_overflow."""

from __future__ import annotations

import pytest
from helpers import NOW, client_config, events, pair, pump, server_config

from dtlsgate.connection.stream import ClientConnection
from dtlsgate.errors import ProtocolError, UsageError
from dtlsgate.events import DataReceived
from dtlsgate.wire.enums import AlertDescription, ExtensionType
from dtlsgate.wire.messages import ClientHello

TAG = 16


def record_lengths(data: bytes) -> list[int]:
    out = []
    while data:
        length = int.from_bytes(data[3:5], "big")
        out.append(length)
        data = data[5 + length :]
    return out


def test_client_hello_carries_our_limit() -> None:
    client = ClientConnection(client_config(record_size_limit=512))
    client.start()
    hello = ClientHello.decode(client.data_to_send()[9:], dtls=False)
    assert hello.get(ExtensionType.record_size_limit) == (512).to_bytes(2, "big")


@pytest.mark.parametrize(("client_limit", "server_limit"), [(300, 16385), (16385, 256), (64, 64)])
def test_each_side_seals_within_the_peers_limit(client_limit: int, server_limit: int) -> None:
    client, server = pair(
        server_config(record_size_limit=server_limit),
        client_config(record_size_limit=client_limit),
    )
    payload = bytes(range(256)) * 8
    client.send(payload)
    to_server = client.data_to_send()
    # TLSInnerPlaintext = content + type byte; the record adds the AEAD tag.
    assert max(record_lengths(to_server)) <= server_limit + TAG
    server.receive_data(to_server, NOW)
    assert b"".join(e.data for e in events(server) if isinstance(e, DataReceived)) == payload
    server.send(payload)
    to_client = server.data_to_send()
    assert max(record_lengths(to_client)) <= client_limit + TAG
    client.receive_data(to_client, NOW)
    assert b"".join(e.data for e in events(client) if isinstance(e, DataReceived)) == payload


def test_a_record_over_our_limit_is_record_overflow() -> None:
    client, server = pair(server_config(record_size_limit=256), client_config())
    client.record_layer.send_limit = 16385  # a client ignoring our limit
    client.send(bytes(1000))
    with pytest.raises(ProtocolError) as info:
        server.receive_data(client.data_to_send(), NOW)
    assert info.value.alert == AlertDescription.record_overflow
    # At the limit exactly it is accepted (255 bytes of content and the type byte).
    client, server = pair(server_config(record_size_limit=256), client_config())
    client.send(bytes(255))
    pump(client, server)
    assert events(server)[-1] == DataReceived(bytes(255))


@pytest.mark.parametrize("limit", [0, 63, 16386])
def test_limit_out_of_range_is_refused(limit: int) -> None:
    with pytest.raises(UsageError):
        server_config(record_size_limit=limit)
    with pytest.raises(UsageError):
        client_config(record_size_limit=limit)
