"""A client whose cookie is refused (RFC 6347 §4.2.1): the server's secret rotated, or its
ClientHello reached another server of a fleet that does not share the key. The stateless
gate answers with a new HelloVerifyRequest numbered message_seq 0 like the first; the client
must answer it with the new cookie, not take it for a retransmission and resend the refused
cookie until it gives up (which is what `openssl s_client` does,
tests/test_interop_dtls12_fleet.py). A mere copy of the first HelloVerifyRequest is still a
retransmission."""

from __future__ import annotations

import pytest
from helpers import CLIENT, NOW, client_config, server_config

from dtlsgate.connection.datagram import DtlsClientConnection, DtlsServerConnection
from dtlsgate.errors import UnexpectedMessage
from dtlsgate.events import HandshakeCompleted
from dtlsgate.gate.cookie import CookieJar
from dtlsgate.gate.datagram import Admit, Gate, Reply
from dtlsgate.wire.handshake import decode_dtls_handshake_fragments
from dtlsgate.wire.messages import ClientHello

HELLO_AT = 13  # the ClientHello's handshake header, after the record header


def sent(client: DtlsClientConnection) -> list[bytes]:
    return [d for d, _ in client.datagrams_to_send()]


def cookie_of(datagram: bytes) -> bytes:
    ((_header, fragment),) = decode_dtls_handshake_fragments(datagram[HELLO_AT:])
    cookie = ClientHello.decode(fragment[12:], dtls=True).cookie
    assert cookie is not None
    return cookie


def finish(client: DtlsClientConnection, server: DtlsServerConnection, now: float) -> None:
    """Start the admitted server connection and exchange datagrams until both sides have
    completed the handshake (at most ten rounds)."""
    server.start(now)
    for _ in range(10):
        for d, _ in server.datagrams_to_send():
            client.receive(d, None, now)
        for d in sent(client):
            server.receive(d, CLIENT, now)
        if client.handshake_complete and server.handshake_complete:
            break
    assert client.handshake_complete and server.handshake_complete


def gate(master_key: bytes) -> Gate:
    return Gate(server_config(cookie_jar=CookieJar(master_key)))


def answered(gate_a: Gate) -> tuple[DtlsClientConnection, Reply, bytes]:
    """A client whose first ClientHello ``gate_a`` answered: the HelloVerifyRequest, and
    the second ClientHello (with its cookie) that the client sent back."""
    client = DtlsClientConnection(client_config())
    client.connect(NOW)
    (hello1,) = sent(client)
    reply = gate_a.receive(hello1, CLIENT, NOW)
    assert type(reply) is Reply
    client.receive(reply.data, None, NOW)
    (hello2,) = sent(client)
    return client, reply, hello2


def test_a_refused_cookie_is_answered_with_the_new_one_and_the_handshake_completes() -> None:
    gate_b = gate(b"\x01" * 32)
    client, _, hello2 = answered(gate(bytes(32)))
    # Server B does not share A's key: A's cookie fails and B answers with its own.
    reply_b = gate_b.receive(hello2, CLIENT, NOW)
    assert type(reply_b) is Reply
    client.receive(reply_b.data, None, NOW)
    (hello3,) = sent(client)
    assert cookie_of(hello3) != cookie_of(hello2)
    admit = gate_b.receive(hello3, CLIENT, NOW)
    assert type(admit) is Admit and admit.message_seq == 2
    server = DtlsServerConnection(admit, server_config(cookie_jar=CookieJar(b"\x01" * 32)))
    finish(client, server, NOW)
    assert isinstance(client.next_event(), HandshakeCompleted)


def test_a_copy_of_the_first_hello_verify_request_is_a_retransmission() -> None:
    gate_a = gate(bytes(32))
    client, reply, hello2 = answered(gate_a)
    for _ in range(5):  # the network duplicated it: same cookie, nothing new to send
        client.receive(reply.data, None, NOW)
        assert sent(client) == []
    # The second ClientHello is still the one the server admits.
    assert type(gate_a.receive(hello2, CLIENT, NOW)) is Admit


def test_a_server_that_keeps_refusing_is_given_up_on() -> None:
    client = DtlsClientConnection(client_config())
    client.connect(NOW)
    (hello,) = sent(client)
    with pytest.raises(UnexpectedMessage):
        for n in range(5):  # a new secret every time: each cookie is refused
            reply = gate(bytes([n]) * 32).receive(hello, CLIENT, NOW)
            assert type(reply) is Reply
            client.receive(reply.data, None, NOW)
            (hello,) = sent(client)
    assert client.closed


def test_a_late_answer_to_a_retransmitted_first_hello_is_not_a_refusal() -> None:
    """The first ClientHello is retransmitted (its answer was slow) and each copy gets a
    HelloVerifyRequest, the second a second later with another cookie (its timestamp
    differs). The first answer is taken; the second arrives after the client sent its
    ClientHello with the first cookie, and carries the record sequence number of the
    retransmission (RFC 6347 §4.2.1), from before that ClientHello: a late copy, not a
    refusal, so the client goes on with the handshake the server has begun."""
    gate_a = gate(bytes(32))
    client = DtlsClientConnection(client_config())
    client.connect(NOW)
    (hello1,) = sent(client)
    deadline = client.get_timer()
    assert deadline is not None
    client.handle_timer(deadline)
    (hello1_again,) = sent(client)
    first = gate_a.receive(hello1, CLIENT, NOW)
    late = gate_a.receive(hello1_again, CLIENT, deadline)
    assert type(first) is Reply and type(late) is Reply and first.data != late.data
    client.receive(first.data, None, deadline)
    (hello2,) = sent(client)
    admit = gate_a.receive(hello2, CLIENT, deadline)
    assert type(admit) is Admit
    client.receive(late.data, None, deadline)
    assert sent(client) == []  # no third ClientHello
    server = DtlsServerConnection(admit, server_config(cookie_jar=CookieJar(bytes(32))))
    finish(client, server, deadline)
