"""TLS 1.3 under a hostile or careless peer, beyond what the fuzz rule catches: each test
names the RFC 8446 rule or the resource limit it holds us to (STYLE.md practice 11)."""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
from typing import Any

import pytest
from helpers import NOW, client_config, events, pair, server_config

from dtlsgate import connect_tls, serve_tls
from dtlsgate.connection.stream import ClientConnection, ServerConnection
from dtlsgate.errors import AlertReceived, ProtocolError, UsageError
from dtlsgate.events import ConnectionClosed, DataReceived, SessionTicketReceived
from dtlsgate.gate.cookie import DEFAULT_MAX_AGE, CookieJar
from dtlsgate.gate.datagram import Reply
from dtlsgate.gate.results import Refuse, StreamAdmit
from dtlsgate.gate.stream import (
    MAX_CCS_BEFORE_CLIENT_HELLO,
    StatelessGate,
)
from dtlsgate.handshake.tls13.common import InstallKey, SendMessage, message
from dtlsgate.handshake.tls13.post_handshake import MAX_KEY_UPDATES_WITHOUT_DATA, update_write
from dtlsgate.io.blocking_tls import MAX_TICKETS_KEPT, TlsSocket
from dtlsgate.wire.enums import (
    AlertDescription,
    ContentType,
    ExtensionType,
    HandshakeType,
    NamedGroup,
)
from dtlsgate.wire.extensions import Extension
from dtlsgate.wire.messages import ClientHello
from dtlsgate.wire.messages13 import NewSessionTicket


def seal(sender: ClientConnection | ServerConnection, content_type: int, payload: bytes) -> bytes:
    """A record ``sender`` could have sent now (its own write key and sequence number)."""
    protection = sender.record_layer.write
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
    assert client.record_layer.buffered == 0


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


# ---- ClientHello2 must repeat ClientHello1 (RFC 8446 §4.1.2, §4.1.4, §4.2.2) ----------------

PEER = ("192.0.2.1", 40000)
MASTER = bytes(range(32))


def hello_retry_client() -> ClientConnection:
    # A share for secp384r1 only, when the server prefers x25519: the server asks again.
    client = ClientConnection(client_config(groups=(NamedGroup.secp384r1, NamedGroup.x25519)))
    client.start()
    return client


def handshake_record(body: bytes) -> bytes:
    message = bytes((HandshakeType.CLIENT_HELLO,)) + len(body).to_bytes(3, "big") + body
    return bytes((22, 3, 3)) + len(message).to_bytes(2, "big") + message


def changed_hello2(record: bytes, ext_type: int, data: bytes | None) -> bytes:
    """ClientHello2 (one record) with extension ``ext_type`` replaced by ``data`` (added
    when absent, removed when ``data`` is None)."""
    hello = ClientHello.decode(record[9:], dtls=False)
    kept = [e for e in hello.extensions or () if e.type != ext_type]
    if data is not None:
        kept.insert(0, Extension(ext_type, data))
    return handshake_record(dataclasses.replace(hello, extensions=tuple(kept)).encode())


CHANGES = {
    "signature_algorithms": (ExtensionType.signature_algorithms, b"\x00\x02\x08\x07"),
    "supported_groups": (ExtensionType.supported_groups, b"\x00\x02\x00\x1d"),
    "alpn": (ExtensionType.application_layer_protocol_negotiation, b"\x00\x03\x02h2"),
    "server_name removed": (ExtensionType.server_name, None),
    "unknown added": (0x7A7A, b""),
}


@pytest.mark.parametrize("change", CHANGES)
def test_stateful_client_hello2_changing_an_extension_is_illegal_parameter(change: str) -> None:
    client = hello_retry_client()
    server = ServerConnection(server_config())
    server.receive_data(client.data_to_send(), NOW)
    client.receive_data(server.data_to_send(), NOW)
    ch2 = client.data_to_send()
    assert refused_with(server, changed_hello2(ch2, *CHANGES[change])) == (
        AlertDescription.illegal_parameter
    )


def test_stateful_client_hello2_with_a_cookie_we_did_not_send_is_illegal_parameter() -> None:
    client = hello_retry_client()
    server = ServerConnection(server_config())
    server.receive_data(client.data_to_send(), NOW)
    client.receive_data(server.data_to_send(), NOW)
    ch2 = changed_hello2(client.data_to_send(), ExtensionType.cookie, b"\x00\x01c")
    assert refused_with(server, ch2) == AlertDescription.illegal_parameter


def test_stateful_client_hello2_may_change_padding() -> None:
    client = hello_retry_client()
    server = ServerConnection(server_config())
    server.receive_data(client.data_to_send(), NOW)
    client.receive_data(server.data_to_send(), NOW)
    server.receive_data(changed_hello2(client.data_to_send(), ExtensionType.padding, bytes(9)), NOW)
    assert not server.closed


def gate(**kw: Any) -> StatelessGate:
    return StatelessGate(server_config(stateless=True, cookie_jar=CookieJar(MASTER), **kw))


def stateless_hello2(g: StatelessGate) -> bytes:
    client = ClientConnection(client_config())
    client.start()
    reply = g.receive(client.data_to_send(), PEER, NOW)
    assert isinstance(reply, Reply)
    client.receive_data(reply.data, NOW)
    return client.data_to_send()


@pytest.mark.parametrize("change", CHANGES)
def test_stateless_client_hello2_changing_an_extension_does_not_verify(change: str) -> None:
    g = gate()
    ch2 = stateless_hello2(g)
    assert isinstance(g.receive(ch2, PEER, NOW), StreamAdmit)
    result = g.receive(changed_hello2(ch2, *CHANGES[change]), PEER, NOW)
    assert isinstance(result, Refuse) and result.alert == AlertDescription.illegal_parameter


def test_a_replayed_client_hello2_is_admitted_again_within_the_cookie_age() -> None:
    """Documented behaviour: the gate keeps nothing, so it cannot tell a replayed
    ClientHello2 from the first (neither can OpenSSL's SSL_stateless nor a DTLS
    HelloVerifyRequest). The replay is bound to the address the cookie was minted for and
    dies with the cookie's max_age; it buys the replayer one server flight it cannot
    decrypt (the key share's private key stayed with the real client)."""
    g = gate()
    ch2 = stateless_hello2(g)
    first, second = g.receive(ch2, PEER, NOW), g.receive(ch2, PEER, NOW + 30)
    assert isinstance(first, StreamAdmit) and isinstance(second, StreamAdmit)
    assert isinstance(g.receive(ch2, ("192.0.2.99", 1), NOW), Refuse)  # another address
    assert isinstance(g.receive(ch2, PEER, NOW + DEFAULT_MAX_AGE + 10), Refuse)  # too old


def test_change_cipher_spec_flood_before_a_client_hello_is_refused() -> None:
    ccs = bytes((20, 3, 3, 0, 1, 1))
    g = gate()
    ch2 = stateless_hello2(g)
    assert isinstance(g.receive(ccs * MAX_CCS_BEFORE_CLIENT_HELLO + ch2, PEER, NOW), StreamAdmit)
    # RFC 8446 Appendix D.4: one compatibility CCS; more is a stream to refuse, not to buffer.
    result = g.receive(ccs * (MAX_CCS_BEFORE_CLIENT_HELLO + 1), PEER, NOW)
    assert isinstance(result, Refuse) and result.alert == AlertDescription.unexpected_message


# ---- application cookie callbacks: local errors, not the peer's --------------------------


def _boom(*args: object) -> Any:
    raise RuntimeError("database down")


def client_hello1() -> bytes:
    client = ClientConnection(client_config())
    client.start()
    return client.data_to_send()


@pytest.mark.parametrize(
    "generate",
    [_boom, lambda peer: "text", lambda peer: bytes(2000)],
    ids=["raises", "str", "long"],
)
def test_cookie_generate_misuse_is_usage_error(generate: Any) -> None:
    g = gate(stateless_cookie_generate=generate, stateless_cookie_verify=lambda p, c: True)
    with pytest.raises(UsageError) as info:
        g.receive(client_hello1(), PEER, NOW)
    if generate is _boom:
        assert isinstance(info.value.__cause__, RuntimeError)


@pytest.mark.parametrize("verify", [_boom, lambda peer, cookie: None], ids=["raises", "None"])
def test_cookie_verify_misuse_is_usage_error(verify: Any) -> None:
    g = gate(stateless_cookie_generate=lambda peer: b"app", stateless_cookie_verify=verify)
    ch2 = stateless_hello2(g)
    with pytest.raises(UsageError) as info:
        g.receive(ch2, PEER, NOW)
    if verify is _boom:
        assert isinstance(info.value.__cause__, RuntimeError)


def test_cookie_callback_failure_over_asyncio_sends_internal_error() -> None:
    failures: list[BaseException] = []

    async def main() -> BaseException:
        async def never(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
            raise AssertionError("no handshake should complete")

        cfg = server_config(
            stateless=True, stateless_cookie_generate=_boom, stateless_cookie_verify=_boom
        )
        server = await serve_tls(never, "127.0.0.1", 0, cfg, on_handshake_failure=failures.append)
        port = server.sockets[0].getsockname()[1]
        try:
            await connect_tls("127.0.0.1", port, client_config())
        except AlertReceived as exc:
            return exc
        finally:
            server.close()
            await server.wait_closed()
        raise AssertionError("the handshake completed")

    exc = asyncio.run(asyncio.wait_for(main(), 20))
    assert isinstance(exc, AlertReceived) and exc.description == AlertDescription.internal_error
    assert len(failures) == 1 and isinstance(failures[0], UsageError)


# ---- asyncio: memory a peer can make us hold -------------------------------------------------


def test_drain_waits_when_the_peer_does_not_read() -> None:
    """An echo server whose client sends and never reads: ``await writer.drain()`` must
    block the server once TCP backs up, so its send buffer stays near the high-water mark
    instead of growing with everything the client sends."""
    writers: list[asyncio.StreamWriter] = []

    async def main() -> tuple[int, int]:
        async def echo(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
            writers.append(writer)
            while data := await reader.read(1 << 16):
                writer.write(data)
                await writer.drain()

        server = await serve_tls(echo, "127.0.0.1", 0, server_config())
        port = server.sockets[0].getsockname()[1]
        _, writer = await connect_tls("127.0.0.1", port, client_config())
        chunk = bytes(1 << 16)
        sent = 0

        async def flood() -> None:
            nonlocal sent
            while sent < 32 << 20:
                writer.write(chunk)
                sent += len(chunk)
                await writer.drain()
                await asyncio.sleep(0)  # let the server run even when drain() does not wait

        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(flood(), 3)
        buffered = writers[0].transport.get_write_buffer_size()
        writer.transport.abort()
        server.close()
        await server.wait_closed()
        return sent, buffered

    sent, buffered = asyncio.run(asyncio.wait_for(main(), 30))
    # The client's own drain() stopped it long before 32 MB; the server holds ~ one chunk.
    assert sent < 32 << 20
    assert buffered < 1 << 20


def test_client_keeps_only_the_newest_tickets() -> None:
    async def main() -> list[Any]:
        async def echo(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
            writer.write(await reader.readline())
            await writer.drain()

        cfg = server_config(session_tickets=MAX_TICKETS_KEPT + 4)
        server = await serve_tls(echo, "127.0.0.1", 0, cfg)
        port = server.sockets[0].getsockname()[1]
        reader, writer = await connect_tls("127.0.0.1", port, client_config())
        writer.write(b"hi\n")
        await reader.readline()  # the tickets came before the echo
        tickets: list[Any] = writer.get_extra_info("session_tickets")
        writer.close()
        server.close()
        await server.wait_closed()
        return tickets

    tickets = asyncio.run(asyncio.wait_for(main(), 20))
    assert len(tickets) == MAX_TICKETS_KEPT
    # The newest: the server numbers its ticket nonces 0, 1, ...
    assert [t.ticket.ticket_nonce[0] for t in tickets] == list(range(4, MAX_TICKETS_KEPT + 4))


def test_tls_socket_recv_refuses_a_negative_size() -> None:
    import socket

    a, b = socket.socketpair()
    try:
        tls = TlsSocket(a, ClientConnection(client_config()))
        with pytest.raises(UsageError):
            tls.recv(-1)
    finally:
        a.close()
        b.close()
