"""TLS 1.3 under a hostile or careless peer, beyond what the fuzz rule catches: each test
names the RFC 8446 rule or the resource limit it holds us to (STYLE.md practice 11)."""

from __future__ import annotations

import pytest
from tls13_helpers import NOW, events, pair

from dtlsgate.errors import ProtocolError, UsageError
from dtlsgate.tls13.connection import (
    ClientConnection,
    ConnectionClosed,
    DataReceived,
    ServerConnection,
    SessionTicketReceived,
)
from dtlsgate.tls13.handshake import InstallKey, SendMessage, message
from dtlsgate.tls13.post_handshake import MAX_KEY_UPDATES_WITHOUT_DATA, update_write
from dtlsgate.wire.enums import AlertDescription, ContentType, HandshakeType
from dtlsgate.wire.messages13 import NewSessionTicket


def seal(sender: ClientConnection | ServerConnection, content_type: int, payload: bytes) -> bytes:
    """A record ``sender`` could have sent now (its own write key and sequence number)."""
    protection = sender._records.write
    assert protection is not None
    return protection.seal(content_type, payload)


def refused_with(conn: ClientConnection | ServerConnection, data: bytes) -> AlertDescription:
    with pytest.raises(ProtocolError) as info:
        conn.receive_data(data, NOW)
    assert conn.closed
    return info.value.alert


# ---- records around close_notify and fragmented messages (RFC 8446 §5.1, §6.1) --------------


def test_data_after_close_notify_is_ignored_and_not_buffered() -> None:
    client, server = pair()
    events(client)
    server.send(b"last words")
    server.close()
    # RFC 8446 §6.1: what follows close_notify is ignored, in the same call or later ones.
    client.receive_data(server.data_to_send() + b"\x17\x03\x03\x00\x20" + bytes(20), NOW)
    for _ in range(5):
        client.receive_data(b"\x17\x03\x03\x40\x00" + bytes(1 << 14), NOW)
    assert events(client) == [DataReceived(b"last words"), ConnectionClosed()]
    assert client._records.buffered == 0


@pytest.mark.parametrize(
    "content_type", [ContentType.ALERT, ContentType.APPLICATION_DATA], ids=["alert", "data"]
)
def test_record_inside_a_fragmented_handshake_message_is_unexpected(content_type: int) -> None:
    client, server = pair()
    update = message(HandshakeType.KEY_UPDATE, b"\x00")
    # RFC 8446 §5.1: no other record between the fragments of a handshake message; the
    # close_notify (or data) in the middle must not be acted on.
    inner = b"\x01\x00" if content_type == ContentType.ALERT else b"data"
    data = seal(client, 22, update[:2]) + seal(client, content_type, inner)
    assert refused_with(server, data) == AlertDescription.unexpected_message
    assert not server.peer_closed and not any(isinstance(e, DataReceived) for e in events(server))


@pytest.mark.parametrize(
    ("content_type", "alert"),
    [
        (ContentType.HANDSHAKE, AlertDescription.unexpected_message),
        (ContentType.ALERT, AlertDescription.unexpected_message),
        (ContentType.APPLICATION_DATA, None),
        (ContentType.CHANGE_CIPHER_SPEC, AlertDescription.unexpected_message),
    ],
    ids=["handshake", "alert", "application_data", "change_cipher_spec"],
)
def test_zero_length_protected_records(content_type: int, alert: AlertDescription | None) -> None:
    """RFC 8446 §5.1/§5.4: zero-length handshake and alert fragments are forbidden, empty
    application data is legal (and no event), a protected CCS is never legal (§5)."""
    client, server = pair()
    events(server)
    data = seal(client, content_type, b"")
    if alert is None:
        server.receive_data(data, NOW)
        assert events(server) == []
    else:
        assert refused_with(server, data) == alert


def test_post_handshake_messages_may_span_records() -> None:
    client, server = pair()
    events(client), events(server)
    ticket = NewSessionTicket(3600, 7, b"\x00", b"t" * 40)
    nst = message(HandshakeType.NEW_SESSION_TICKET, ticket.encode())
    # The server's own KeyUpdate, its records framed here instead of by the connection.
    server._state, (send_update, install_key) = update_write(server._state, True)
    assert isinstance(send_update, SendMessage) and isinstance(install_key, InstallKey)
    whole = nst + send_update.data
    # RFC 8446 §5.1: split anywhere, across three records; the KeyUpdate ends a record.
    data = b"".join(seal(server, 22, part) for part in (whole[:3], whole[3:50], whole[50:]))
    server._install(install_key)
    client.receive_data(data, NOW)
    got = events(client)
    assert len(got) == 1 and isinstance(got[0], SessionTicketReceived)
    server.receive_data(client.data_to_send(), NOW)  # the client's answering KeyUpdate
    server.send(b"after")
    client.send(b"back")
    client.receive_data(server.data_to_send(), NOW)
    server.receive_data(client.data_to_send(), NOW)
    assert events(client) == [DataReceived(b"after")]
    assert events(server) == [DataReceived(b"back")]


# ---- KeyUpdate flood (RFC 8446 §4.6.3) -------------------------------------------------------


def test_key_update_flood_is_refused_after_the_limit() -> None:
    client, server = pair()
    for _ in range(MAX_KEY_UPDATES_WITHOUT_DATA):
        client.key_update(request_peer=True)
        server.receive_data(client.data_to_send(), NOW)
        client.receive_data(server.data_to_send(), NOW)  # each one was answered
    client.key_update(request_peer=True)
    assert refused_with(server, client.data_to_send()) == AlertDescription.unexpected_message


def test_key_updates_with_application_data_between_them_are_not_limited() -> None:
    client, server = pair()
    for i in range(3 * MAX_KEY_UPDATES_WITHOUT_DATA):
        client.key_update(request_peer=True)
        if i % (MAX_KEY_UPDATES_WITHOUT_DATA - 1) == 0:
            client.send(b"x")
        server.receive_data(client.data_to_send(), NOW)
        client.receive_data(server.data_to_send(), NOW)
    assert not server.closed


# ---- API misuse --------------------------------------------------------------------------


def test_send_needs_bytes() -> None:
    client, _ = pair()
    with pytest.raises(UsageError):
        client.send("text")  # type: ignore[arg-type]
    client.send(memoryview(b"ok"))
    assert client.data_to_send()
