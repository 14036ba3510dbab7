"""Closing a TLS 1.3 connection (RFC 8446 §6.1): ``close()`` closes our sending side only,
the peer's data and close_notify are still read; and the event queue the caller drains."""

from __future__ import annotations

import asyncio
import socket

import pytest
from helpers import NOW, client_config, events, pair, server_config

from dtlsgate import connect_tls, serve_tls
from dtlsgate.connection.stream import ClientConnection, ServerConnection
from dtlsgate.errors import AlertReceived, ProtocolError, StateError
from dtlsgate.events import ConnectionClosed, DataReceived
from dtlsgate.io.blocking_tls import TlsSocket
from dtlsgate.wire.enums import AlertDescription, AlertLevel, ContentType
from dtlsgate.wire.messages import Alert


def seal(sender: ClientConnection | ServerConnection, content_type: int, payload: bytes) -> bytes:
    """A record ``sender`` could have sent now (its own write key and sequence number)."""
    protection = sender.record_layer.write
    assert protection is not None
    return protection.seal(content_type, payload)


def closed_pair() -> tuple[ClientConnection, ServerConnection]:
    """A connected pair whose client called close(); the server read its close_notify."""
    client, server = pair()
    events(client)
    events(server)
    client.close()
    server.receive_data(client.data_to_send(), NOW)
    assert events(server) == [ConnectionClosed()]
    return client, server


# ---- half-close: we closed, the peer still talks (RFC 8446 §6.1) ----------------------------


def test_after_local_close_peer_data_and_close_notify_are_received() -> None:
    client, server = closed_pair()
    server.send(b"the rest")
    server.send(b"and more")
    server.close()
    client.receive_data(server.data_to_send(), NOW)
    assert events(client) == [
        DataReceived(b"the rest"),
        DataReceived(b"and more"),
        ConnectionClosed(),
    ]
    assert client.closed and client.peer_closed and not client.failed


def test_after_local_close_peer_data_fed_byte_by_byte() -> None:
    client, server = closed_pair()
    server.send(b"slowly")
    server.close()
    for byte in server.data_to_send():
        client.receive_data(bytes([byte]), NOW)
    assert events(client) == [DataReceived(b"slowly"), ConnectionClosed()]


def test_after_both_close_notifies_trailing_data_is_ignored_and_not_buffered() -> None:
    client, server = closed_pair()
    server.close()
    client.receive_data(server.data_to_send() + b"\x17\x03\x03\x00\x20" + bytes(20), NOW)
    client.receive_data(b"\x17\x03\x03\x40\x00" + bytes(1 << 14), NOW)
    assert events(client) == [ConnectionClosed()]
    assert client.record_layer.buffered == 0


def test_send_after_local_close_is_refused_and_nothing_follows_close_notify() -> None:
    client, _ = pair()
    client.close()
    close_notify = client.data_to_send()
    with pytest.raises(StateError, match="after close"):
        client.send(b"too late")
    with pytest.raises(StateError):
        client.key_update()
    client.close()  # again: nothing more
    assert client.data_to_send() == b""
    assert len(close_notify) == 5 + 2 + 1 + 16  # one record: the alert, its type, the tag


def test_key_update_request_after_local_close_gets_no_answer() -> None:
    client, server = closed_pair()
    # RFC 8446 §4.6.3: the answer is owed before our next application data; none comes, and
    # nothing may follow our close_notify (§6.1). The peer's new key is still installed.
    server.key_update(request_peer=True)
    server.send(b"under the new key")
    client.receive_data(server.data_to_send(), NOW)
    assert client.data_to_send() == b""
    assert events(client) == [DataReceived(b"under the new key")]


def test_fatal_alert_after_local_close_is_raised_then_the_connection_is_terminal() -> None:
    client, server = closed_pair()
    alert = Alert(AlertLevel.FATAL, AlertDescription.internal_error).encode()
    with pytest.raises(AlertReceived):
        client.receive_data(seal(server, ContentType.ALERT, alert), NOW)
    assert client.failed
    with pytest.raises(StateError):
        client.receive_data(b"\x17\x03\x03\x00\x20" + bytes(0x20), NOW)


def test_protocol_error_after_local_close_raises_without_an_alert_after_close_notify() -> None:
    client, _ = closed_pair()
    with pytest.raises(ProtocolError) as info:
        client.receive_data(b"\x17\x03\x03\x00\x20" + bytes(0x20), NOW)  # fails to decrypt
    assert info.value.alert == AlertDescription.bad_record_mac
    assert client.data_to_send() == b""
    assert client.failed


def test_user_canceled_is_not_fatal_and_the_connection_goes_on() -> None:
    """RFC 8446 §6.1: user_canceled (a warning, to be followed by close_notify) does not end
    the connection; every other alert but close_notify is fatal (§6.2)."""
    client, server = pair()
    events(server)
    canceled = Alert(AlertLevel.WARNING, AlertDescription.user_canceled).encode()
    server.receive_data(seal(client, ContentType.ALERT, canceled), NOW)
    assert not server.closed and not server.failed and events(server) == []
    client.send(b"still here")
    server.receive_data(client.data_to_send(), NOW)
    assert events(server) == [DataReceived(b"still here")]


def test_peer_closes_first_we_answer_then_close() -> None:
    client, server = pair()
    events(client)
    events(server)
    server.close()
    client.receive_data(server.data_to_send(), NOW)
    assert events(client)[-1] == ConnectionClosed()
    client.send(b"goodbye")  # the peer closed its side, not ours
    client.close()
    server.receive_data(client.data_to_send(), NOW)
    assert events(server) == [DataReceived(b"goodbye"), ConnectionClosed()]


def test_close_during_the_handshake_abandons_it() -> None:
    client = ClientConnection(client_config())
    server = ServerConnection(server_config())
    client.start(NOW)
    server.receive_data(client.data_to_send(), NOW)
    client.close()
    assert client.failed
    with pytest.raises(StateError):
        client.receive_data(server.data_to_send(), NOW)


# ---- adapters -----------------------------------------------------------------------------


def test_blocking_close_sends_close_notify_then_closes_tcp() -> None:
    client, server = pair()
    events(server)
    ours, theirs = socket.socketpair()
    with theirs:
        TlsSocket(ours, client).close()
        assert ours.fileno() == -1
        received = b""
        while chunk := theirs.recv(4096):
            received += chunk
        server.receive_data(received, NOW)
        assert events(server) == [ConnectionClosed()]


def test_asyncio_writer_close_sends_close_notify_and_refuses_later_writes() -> None:
    async def main() -> tuple[bytes, bool]:
        got: asyncio.Future[bytes] = asyncio.get_running_loop().create_future()

        async def read_all(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
            got.set_result(await reader.read())  # ends at the client's close_notify
            writer.close()

        server = await serve_tls(read_all, "127.0.0.1", 0, server_config())
        port = server.sockets[0].getsockname()[1]
        _, writer = await connect_tls("127.0.0.1", port, client_config())
        writer.write(b"all of it")
        writer.close()
        try:
            writer.write(b"more")
        except StateError:
            refused = True
        else:
            refused = False
        data = await got
        server.close()
        await server.wait_closed()
        return data, refused

    assert asyncio.run(asyncio.wait_for(main(), 20)) == (b"all of it", True)


# ---- the event queue: unbounded, drained by the caller (class docstring) -------------------


def test_event_queue_holds_one_event_per_non_empty_record() -> None:
    client, server = pair()
    events(client)
    for _ in range(200):
        server.send(b"x")
    records = server.data_to_send()
    empty = b"".join(seal(server, ContentType.APPLICATION_DATA, b"") for _ in range(200))
    client.receive_data(records + empty, NOW)
    queued = events(client)
    assert queued == [DataReceived(b"x")] * 200


# ---- misuse and the peer's user_canceled ---------------------------------------------------


def test_calls_out_of_order_are_refused() -> None:
    client = ClientConnection(client_config())
    with pytest.raises(StateError, match="send\\(\\) needs a completed handshake"):
        client.send(b"early")
    client.start()
    with pytest.raises(StateError, match="start\\(\\) was already called"):
        client.start()
    client.close()  # during the handshake: the connection is terminal
    with pytest.raises(StateError, match="connection failed or was closed during the handshake"):
        client.receive_data(b"\x16\x03\x03\x00\x01\x00", NOW)


def test_sending_nothing_sends_no_record() -> None:
    client, _ = pair()
    events(client)
    client.send(b"")
    assert client.data_to_send() == b""


def test_user_canceled_then_close_notify_is_a_clean_close() -> None:
    """RFC 8446 §6.1: user_canceled is followed by close_notify; neither is a failure."""
    client, server = pair()
    events(client)
    canceled = Alert(AlertLevel.WARNING, AlertDescription.user_canceled).encode()
    client.receive_data(seal(server, ContentType.ALERT, canceled), NOW)
    assert events(client) == [] and not client.failed
    server.close()
    client.receive_data(server.data_to_send(), NOW)
    assert events(client) == [ConnectionClosed()] and not client.failed


def test_a_fault_after_our_close_notify_sends_no_alert() -> None:
    """Nothing follows close_notify (RFC 8446 §6.1): a record that fails to decrypt after
    it raises, and the connection fails, without an alert on the wire."""
    client, server = pair()
    events(client)
    client.close()
    assert client.data_to_send()  # the close_notify
    record = bytearray(seal(server, ContentType.APPLICATION_DATA, b"data"))
    record[-1] ^= 1
    with pytest.raises(ProtocolError):
        client.receive_data(bytes(record), NOW)
    assert client.failed and client.data_to_send() == b""
