"""The stateless HelloRetryRequest (SSL_stateless): HRR with cookie, nothing kept, ClientHello2
admitted and continued by a fresh server connection; the refusals."""

from __future__ import annotations

import dataclasses
import gc
import tracemalloc

import pytest
from helpers import NOW, client_config, events, pump, server_config

from dtlsgate.connection.stream import ClientConnection, ServerConnection
from dtlsgate.errors import ProtocolError
from dtlsgate.events import DataReceived
from dtlsgate.gate.cookie import CookieJar
from dtlsgate.gate.datagram import Reply
from dtlsgate.gate.results import Drop, DropReason, Refuse, StreamAdmit
from dtlsgate.gate.stream import StatelessGate, record
from dtlsgate.wire.enums import AlertDescription, NamedGroup
from dtlsgate.wire.messages import ClientHello, ServerHello

PEER = ("192.0.2.1", 40000)
MASTER = bytes(range(32))


def gate_config(**kw: object) -> object:
    return server_config(stateless=True, cookie_jar=CookieJar(MASTER), **kw)


def hello_round(
    client_cfg: object = None, **gate_kw: object
) -> tuple[ClientConnection, StatelessGate, Reply]:
    cfg = gate_config(**gate_kw)
    gate = StatelessGate(cfg)  # type: ignore[arg-type]
    client = ClientConnection(client_cfg or client_config())  # type: ignore[arg-type]
    client.start()
    result = gate.receive(client.data_to_send(), PEER, NOW)
    assert isinstance(result, Reply)
    return client, gate, result


def test_hrr_then_admit_then_a_fresh_connection_completes() -> None:
    client, gate, reply = hello_round()
    hrr = ServerHello.decode(reply.data[9 : 5 + int.from_bytes(reply.data[3:5], "big")])
    assert hrr.is_hello_retry_request and hrr.get(44) is not None
    # Our client had an x25519 share: the HRR carries only the cookie (RFC 8446 §4.2.8).
    assert hrr.get(51) is None
    # Compat mode: the CCS follows the HRR.
    assert reply.data.endswith(bytes((20, 3, 3, 0, 1, 1)))
    client.receive_data(reply.data, NOW)
    admit = gate.receive(client.data_to_send(), PEER, NOW + 1)
    assert isinstance(admit, StreamAdmit)
    server = ServerConnection.from_admit(gate.config, admit, NOW + 1)
    pump(client, server)
    assert client.info is not None and client.info.hello_retry
    client.send(b"ping")
    server.send(b"pong")
    pump(client, server)
    assert DataReceived(b"ping") in events(server)
    assert DataReceived(b"pong") in events(client)


def test_admitted_connection_keeps_its_key_log() -> None:
    # The connection continued from the admit makes the key log lines only when it has a
    # key log (RFC 8446 §7.1 secrets, NSS format), the same lines as the client's.
    client_lines: list[str] = []
    server_lines: list[str] = []
    gate = StatelessGate(gate_config())  # type: ignore[arg-type]
    client = ClientConnection(client_config(), keylog=client_lines.append)  # type: ignore[arg-type]
    client.start()
    reply = gate.receive(client.data_to_send(), PEER, NOW)
    assert isinstance(reply, Reply)
    client.receive_data(reply.data, NOW)
    admit = gate.receive(client.data_to_send(), PEER, NOW)
    assert isinstance(admit, StreamAdmit)
    server = ServerConnection.from_admit(gate.config, admit, NOW, keylog=server_lines.append)
    pump(client, server)
    assert server.handshake_complete
    assert len(server_lines) == 5 and sorted(server_lines) == sorted(client_lines)


def test_hrr_asks_for_a_key_share_when_needed() -> None:
    cfg = client_config(groups=(NamedGroup.secp256r1, NamedGroup.x25519), middlebox_compat=False)
    client, gate, reply = hello_round(cfg)
    assert not reply.data.endswith(bytes((20, 3, 3, 0, 1, 1)))  # empty session id: no CCS
    hrr = ServerHello.decode(reply.data[9:])
    assert hrr.get(51) == NamedGroup.x25519.to_bytes(2, "big")
    client.receive_data(reply.data, NOW)
    admit = gate.receive(client.data_to_send(), PEER, NOW)
    assert isinstance(admit, StreamAdmit) and admit.key_share_requested
    server = ServerConnection.from_admit(gate.config, admit, NOW)
    pump(client, server)
    assert client.info is not None and client.info.group == NamedGroup.x25519


def test_change_cipher_spec_before_client_hello2_is_ignored() -> None:
    client, gate, reply = hello_round()
    client.receive_data(reply.data, NOW)
    ccs = bytes((20, 3, 3, 0, 1, 1))
    admit = gate.receive(ccs + client.data_to_send(), PEER, NOW)
    assert isinstance(admit, StreamAdmit)


def test_another_process_with_the_master_key_continues() -> None:
    client, _, reply = hello_round()
    client.receive_data(reply.data, NOW)
    other = StatelessGate(gate_config())  # type: ignore[arg-type]
    admit = other.receive(client.data_to_send(), PEER, NOW)
    assert isinstance(admit, StreamAdmit)


def test_incomplete_client_hello_sends_nothing() -> None:
    client = ClientConnection(client_config())
    client.start()
    data = client.data_to_send()
    gate = StatelessGate(gate_config())  # type: ignore[arg-type]
    for cut in (0, 3, 5, 40, len(data) - 1):
        assert gate.receive(data[:cut], PEER, NOW) == Drop(DropReason.CLIENT_HELLO_INCOMPLETE)


def test_tls12_client_hello_is_refused_with_protocol_version() -> None:
    hello = ClientHello(0x0303, bytes(32), b"", (0xC02B,), b"\x00", ())
    body = hello.encode()
    data = bytes((22, 3, 1)) + (len(body) + 4).to_bytes(2, "big") + b"\x01"
    data += len(body).to_bytes(3, "big") + body
    result = StatelessGate(gate_config()).receive(data, PEER, NOW)  # type: ignore[arg-type]
    assert isinstance(result, Refuse) and result.alert == AlertDescription.protocol_version
    assert result.data == bytes((21, 3, 3, 0, 2, 2, 70))


def test_an_offer_the_server_refuses_gets_its_alert() -> None:
    """A ClientHello1 with nothing in common with the server (its groups here) is refused
    by the engine's choice: handshake_failure (RFC 8446 §4.1.1), sent by the gate, nothing
    kept; the same with a PSK offer, which is chosen for after a full decode."""
    gate = StatelessGate(gate_config(groups=(NamedGroup.x448,)))  # type: ignore[arg-type]
    for extra in ({}, {"psk": bytes(16), "psk_identity": b"id"}):
        client = ClientConnection(client_config(groups=(NamedGroup.x25519,), **extra))
        client.start(NOW)
        result = gate.receive(client.data_to_send(), PEER, NOW)
        assert isinstance(result, Refuse), extra
        assert result.alert == AlertDescription.handshake_failure
        assert result.data == bytes((21, 3, 3, 0, 2, 2, AlertDescription.handshake_failure))
    assert gate.replies == gate.admits == 0


def test_the_stream_gate_counts_like_the_datagram_gate() -> None:
    """One result family, one set of counters: replies, admits, drops per DropReason (an
    incomplete ClientHello), refusals per alert; ``stats`` names them as the DTLS gate does."""
    _client, gate, _reply = hello_round()
    assert gate.receive(b"\x16\x03", PEER, NOW) == Drop(DropReason.CLIENT_HELLO_INCOMPLETE)
    refused = gate.receive(b"\x17\x03\x03\x00\x01\x00", PEER, NOW)
    assert isinstance(refused, Refuse) and refused.alert == AlertDescription.unexpected_message
    assert (gate.replies, gate.admits) == (1, 0)
    assert gate.drops == {DropReason.CLIENT_HELLO_INCOMPLETE: 1}
    assert gate.refusals == {AlertDescription.unexpected_message: 1}
    assert gate.stats == {
        "reply": 1,
        "admit": 0,
        str(DropReason.CLIENT_HELLO_INCOMPLETE): 1,
        "refuse unexpected_message": 1,
    }


def client_hello2() -> tuple[bytes, StatelessGate]:
    client, gate, reply = hello_round()
    client.receive_data(reply.data, NOW)
    return client.data_to_send(), gate


def test_forged_expired_and_other_address_cookies_are_refused() -> None:
    ch2, gate = client_hello2()
    forged = bytearray(ch2)
    forged[-40] ^= 1  # inside the cookie's tag or payload (the cookie is the last extension)
    for data, peer, now in [
        (bytes(forged), PEER, NOW),
        (ch2, ("192.0.2.2", 40000), NOW),
        (ch2, PEER, NOW + 3600),
    ]:
        result = gate.receive(data, peer, now)
        assert isinstance(result, Refuse), result
        assert result.alert == AlertDescription.illegal_parameter


def test_client_hello2_changing_what_client_hello1_fixed_is_refused() -> None:
    ch2, gate = client_hello2()
    hello = ClientHello.decode(ch2[9:], dtls=False)
    changed = dataclasses.replace(hello, random=bytes(32))
    body = changed.encode()
    data = bytes((22, 3, 3)) + (len(body) + 4).to_bytes(2, "big") + b"\x01"
    data += len(body).to_bytes(3, "big") + body
    result = gate.receive(data, PEER, NOW)
    assert isinstance(result, Refuse) and result.alert == AlertDescription.illegal_parameter


def test_client_hello2_with_a_share_for_another_group_fails_in_the_connection() -> None:
    # The cookie verifies (the share is not bound), but the share is not for our group.
    cfg = client_config(groups=(NamedGroup.secp256r1, NamedGroup.x25519))
    client, gate, reply = hello_round(cfg)
    hello1 = client.state.hello  # type: ignore[attr-defined]
    client.receive_data(reply.data, NOW)
    ch2 = client.data_to_send()
    hello2 = ClientHello.decode(ch2[9:], dtls=False)
    swapped = tuple(
        e if e.type != 51 else next(x for x in hello1.extensions if x.type == 51)
        for e in hello2.extensions or ()
    )
    body = dataclasses.replace(hello2, extensions=swapped).encode()
    data = bytes((22, 3, 3)) + (len(body) + 4).to_bytes(2, "big") + b"\x01"
    data += len(body).to_bytes(3, "big") + body
    admit = gate.receive(data, PEER, NOW)
    assert isinstance(admit, StreamAdmit)
    with pytest.raises(ProtocolError) as info:
        ServerConnection.from_admit(gate.config, admit, NOW)
    assert info.value.alert == AlertDescription.illegal_parameter


def test_application_cookie_callbacks() -> None:
    seen: list[bytes] = []

    def generate(peer: object) -> bytes:
        return b"app:" + str(peer).encode()

    def verify(peer: object, cookie: bytes) -> bool:
        seen.append(cookie)
        return cookie == generate(peer)

    client, gate, reply = hello_round(
        stateless_cookie_generate=generate, stateless_cookie_verify=verify
    )
    client.receive_data(reply.data, NOW)
    admit = gate.receive(client.data_to_send(), PEER, NOW)
    assert isinstance(admit, StreamAdmit) and admit.application_cookie == generate(PEER)
    assert seen == [generate(PEER)]

    client, gate, reply = hello_round(
        stateless_cookie_generate=generate, stateless_cookie_verify=lambda p, c: False
    )
    client.receive_data(reply.data, NOW)
    assert isinstance(gate.receive(client.data_to_send(), PEER, NOW), Refuse)


@pytest.mark.parametrize(
    ("data", "alert"),
    [
        (bytes((23, 3, 3, 0, 1, 0)), AlertDescription.unexpected_message),
        (bytes((22, 3, 3, 0, 4, 2, 0, 0, 0)), AlertDescription.unexpected_message),
        (bytes((22, 3, 3, 0, 4, 1, 0, 0, 0)), AlertDescription.decode_error),
        (b"GET / HTTP/1.1\r\n\r\n", AlertDescription.decode_error),
        # RFC 8446 §5.1: no zero-length handshake record, none over 2^14 bytes.
        (bytes((22, 3, 3, 0, 0)), AlertDescription.record_overflow),
        (bytes((22, 3, 3, 0x40, 0x01)) + bytes(0x4001), AlertDescription.record_overflow),
    ],
)
def test_garbage_is_refused_with_an_alert(data: bytes, alert: AlertDescription) -> None:
    result = StatelessGate(gate_config()).receive(data, PEER, NOW)  # type: ignore[arg-type]
    assert isinstance(result, Refuse) and result.alert == alert


def test_nothing_is_kept_between_calls() -> None:
    client = ClientConnection(client_config())
    client.start()
    ch1 = client.data_to_send()
    gate = StatelessGate(gate_config())  # type: ignore[arg-type]
    tracemalloc.start()
    for i in range(500):
        gate.receive(ch1, ("192.0.2.8", i), NOW)
    # A full collection also empties the interpreter's free lists (up to 2,000 spare
    # tuples per size), which tracemalloc would otherwise count as growth.
    gc.collect()
    before = tracemalloc.take_snapshot()
    for i in range(3000):
        gate.receive(ch1, ("192.0.2.9", i), NOW)
    gc.collect()
    after = tracemalloc.take_snapshot()
    tracemalloc.stop()
    # A per-peer entry of even 100 bytes would grow 300 kB here.
    grown = sum(s.size_diff for s in after.compare_to(before, "filename"))
    assert grown < 100 * 1024
    assert gate.stats["reply"] == 3500


def test_client_hello_is_read_across_records_and_nothing_may_follow_it() -> None:
    """RFC 8446 §5.1: a ClientHello may span records, even its 4-byte header (the same
    reply as for it in one record); handshake bytes after it in its record are
    unexpected_message (nothing may follow it before the server's answer)."""
    client = ClientConnection(client_config())
    client.start()
    data = client.data_to_send()
    message = data[5:]  # the one record's body: the whole ClientHello
    gate = StatelessGate(gate_config())  # type: ignore[arg-type]
    split = record(22, message[:2]) + record(22, message[2:])
    reply = gate.receive(split, PEER, NOW)
    assert isinstance(reply, Reply) and reply == gate.receive(data, PEER, NOW)
    result = gate.receive(record(22, message + b"\x16"), PEER, NOW)
    assert isinstance(result, Refuse) and result.alert == AlertDescription.unexpected_message
