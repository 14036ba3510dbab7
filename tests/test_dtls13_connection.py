"""DTLS 1.3 client and server (RFC 9147) in memory: every suite, certificates both ways,
resumption, HelloRetryRequest, fragmentation at a small MTU, a lossy link, ACKs cutting
retransmissions, KeyUpdate and NewSessionTicket acknowledged before they count."""

from __future__ import annotations

import dataclasses
from typing import Any

import pytest
from helpers import (
    CLIENT,
    NOW,
    SERVER,
    DatagramPair,
    Link,
    client_config,
    credentials,
    data_events,
    make_pair13,
    server_config,
)

from dtlsgate.config import ClientConfig
from dtlsgate.connection.datagram13 import ACK_DELAY, Dtls13ClientConnection, Dtls13Connection
from dtlsgate.crypto import DeterministicProvider
from dtlsgate.crypto.certs import load_certificate_chain, load_private_key
from dtlsgate.errors import ProtocolError, StateError
from dtlsgate.events import ConnectionClosed, HandshakeCompleted, SessionTicketReceived
from dtlsgate.handshake.tls13 import client as _client
from dtlsgate.handshake.tls13.common import DEFAULT_SUITES, DTLS_VERSIONS, tls13_suites
from dtlsgate.handshake.tls13.server import ServerContext
from dtlsgate.record.dtls13 import RecordDrop
from dtlsgate.wire.enums import (
    AlertDescription,
    CipherSuite,
    ContentType,
    ExtensionType,
    NamedGroup,
    ProtocolVersion,
)
from dtlsgate.wire.extensions import Extension
from dtlsgate.wire.messages import ClientHello
from dtlsgate.wire.messages13 import EncryptedExtensions

SUITES = [
    CipherSuite.TLS_AES_128_GCM_SHA256,
    CipherSuite.TLS_AES_256_GCM_SHA384,
    CipherSuite.TLS_CHACHA20_POLY1305_SHA256,
    CipherSuite.TLS_AES_128_CCM_SHA256,
    CipherSuite.TLS_AES_128_CCM_8_SHA256,
]


def exchange(pair: DatagramPair, link: Link | None = None) -> None:
    """Application data both ways after the handshake; each side's record arrives once."""
    assert pair.server is not None
    pair.client.send(b"ping")
    pair.server.send(b"pong")
    assert pair.run(link)
    assert data_events(pair.server_events) == [b"ping"]
    assert data_events(pair.client_events) == [b"pong"]


def info(events: list[object]) -> HandshakeCompleted:
    (done,) = [e for e in events if isinstance(e, HandshakeCompleted)]
    return done


@pytest.mark.parametrize("suite", SUITES, ids=lambda s: s.name)
def test_every_suite(suite: CipherSuite) -> None:
    # CCM and CCM-8 are offered and accepted only where the configuration names them.
    server = server_config(cipher_suites=tuple(SUITES))
    pair = make_pair13(server, client_config(cipher_suites=(suite,)))
    assert pair.run()
    assert pair.completed()
    done = info(pair.client_events)
    assert done.version == ProtocolVersion.DTLS13
    assert done.cipher_suite == suite
    assert info(pair.server_events).cipher_suite == suite
    exchange(pair)


def test_ccm_suites_only_where_the_configuration_asks() -> None:
    # Issue 12: AES-128-CCM and CCM-8 are offered and accepted only when configured.
    client = Dtls13ClientConnection(client_config(), SERVER)
    client.connect(NOW)
    ((hello, _),) = client.datagrams_to_send()
    decoded = ClientHello.decode(hello[13 + 12 :], dtls=True)
    ccm = {CipherSuite.TLS_AES_128_CCM_SHA256, CipherSuite.TLS_AES_128_CCM_8_SHA256}
    assert CipherSuite.TLS_AES_128_GCM_SHA256 in decoded.cipher_suites
    assert ccm.isdisjoint(decoded.cipher_suites)
    only_ccm8 = client_config(cipher_suites=(CipherSuite.TLS_AES_128_CCM_8_SHA256,))
    pair = make_pair13(server_config(), only_ccm8)
    with pytest.raises(ProtocolError) as refused:
        pair.run()
    assert refused.value.alert == AlertDescription.handshake_failure
    assert not pair.completed()


def test_rsa_certificate_and_hello_retry_request() -> None:
    # The server prefers P-256; the client's first share is X25519: a stateful HRR.
    server = server_config("rsa-2048", groups=(NamedGroup.secp256r1,))
    pair = make_pair13(server, client_config("rsa-2048"))
    assert pair.run()
    done = info(pair.client_events)
    assert done.hello_retry and done.group == NamedGroup.secp256r1
    exchange(pair)


def client_certificate_pair(mtu: int | None = None) -> DatagramPair:
    """A server that requires a client certificate and a client that has one (ECDSA P-256);
    both at ``mtu`` when given."""
    cert, key = credentials("ecdsa-p256")
    sizes = {} if mtu is None else {"mtu": mtu}
    server = server_config(verify_client="required", cafile=cert.decode(), **sizes)
    client = client_config(
        certificate_chain=load_certificate_chain(cert), private_key=load_private_key(key), **sizes
    )
    return make_pair13(server, client)


def test_client_certificate() -> None:
    pair = client_certificate_pair()
    assert pair.run()
    assert info(pair.server_events).peer_certificates
    exchange(pair)


def test_the_timer_is_the_earlier_of_the_resend_and_the_delayed_ack() -> None:
    """A server with its flight out (resent after 1 s unless answered) that got the first
    datagram of the client's three (certificate, CertificateVerify, Finished at a small MTU)
    acknowledges it after ACK_DELAY (RFC 9147 §7.1): that comes first."""
    pair = client_certificate_pair(mtu=300)
    ((hello, _),) = pair.client.datagrams_to_send()
    pair.to_server([hello])
    server = pair.server
    assert server is not None
    assert server.get_timer() == NOW + 1.0  # the resend alone
    for d, _ in server.datagrams_to_send():
        pair.client.receive(d, SERVER, NOW + 0.1)
    first, *rest = [d for d, _ in pair.client.datagrams_to_send()]
    assert rest
    server.receive(first, CLIENT, NOW + 0.2)
    assert server.get_timer() == NOW + 0.2 + ACK_DELAY


def test_client_certificate_required_but_absent() -> None:
    cert, _ = credentials("ecdsa-p256")
    pair = make_pair13(
        server_config(verify_client="required", cafile=cert.decode()), client_config()
    )
    with pytest.raises(Exception, match="no certificate"):
        pair.run()
    assert pair.server is not None and pair.server.closed


def test_resumption_with_a_ticket_acknowledged() -> None:
    server = server_config()
    pair = make_pair13(server, client_config())
    assert pair.run()
    (ticket,) = [e.ticket for e in pair.client_events if isinstance(e, SessionTicketReceived)]
    assert ticket.dtls
    # The client acknowledged the NewSessionTicket (RFC 9147 §5.8.4): it counts.
    assert pair.server is not None and pair.server.tickets_acknowledged == 1
    again = make_pair13(server, client_config(session_ticket=ticket))
    assert again.run()
    assert info(again.client_events).resumed and info(again.server_events).resumed
    exchange(again)


def test_early_data_is_refused(monkeypatch: pytest.MonkeyPatch) -> None:
    """0-RTT stays out (RFC 8446 §4.2.10, RFC 9147 §5): a resuming ClientHello offering
    early_data (our client never does: added here, the binder computed after) gets
    EncryptedExtensions without it, and the 0-RTT records that follow it (epoch 1,
    RFC 9147 §6.1) are dropped for want of keys; the resumed handshake completes."""
    server = server_config()
    first = make_pair13(server, client_config())
    assert first.run()
    (ticket,) = [e.ticket for e in first.client_events if isinstance(e, SessionTicketReceived)]
    build = _client.client_hello

    def with_early_data(*args: Any, **kw: Any) -> ClientHello:
        hello = build(*args, **kw)
        assert hello.extensions is not None
        extensions = (Extension(ExtensionType.early_data, b""), *hello.extensions)
        return dataclasses.replace(hello, extensions=extensions)

    decode = EncryptedExtensions.decode.__func__  # type: ignore[attr-defined]
    seen: list[EncryptedExtensions] = []

    def spy(cls: type[EncryptedExtensions], body: bytes) -> EncryptedExtensions:
        seen.append(decode(cls, body))
        return seen[-1]

    monkeypatch.setattr(_client, "client_hello", with_early_data)
    monkeypatch.setattr(EncryptedExtensions, "decode", classmethod(spy))
    # Unified header, epoch 1 (low bits 01), 16-bit sequence number, length (RFC 9147 §4).
    early = [
        bytes((0x2D,)) + seq.to_bytes(2, "big") + (40).to_bytes(2, "big") + bytes(40)
        for seq in range(3)
    ]

    hellos: list[bytes] = []

    def after_the_hello(datagram: bytes) -> bytes:
        if datagram[0] != ContentType.HANDSHAKE or hellos:
            return datagram
        hellos.append(datagram)
        return datagram + b"".join(early)

    again = make_pair13(server, client_config(session_ticket=ticket))
    again.tamper = after_the_hello
    assert again.run()
    assert again.server is not None
    assert info(again.client_events).resumed and info(again.server_events).resumed
    # It went out offering early_data (type 42, empty), alongside its ticket's PSK.
    assert b"\x00\x2a\x00\x00" in hellos[0]
    (ee,) = seen
    assert ExtensionType.early_data not in [e.type for e in ee.extensions]
    assert again.server.records.drops[RecordDrop.UNKNOWN_EPOCH] >= len(early)
    assert not data_events(again.server_events)
    exchange(again)


@pytest.mark.parametrize("mtu", [256, 400])
def test_fragmentation_at_a_small_mtu(mtu: int) -> None:
    pair = make_pair13(server_config("rsa-2048", mtu=mtu), client_config("rsa-2048", mtu=mtu))
    assert pair.run()
    assert pair.completed()
    # The RSA certificate flight needed several datagrams, none over the MTU.
    assert pair.server_datagrams >= 4
    assert pair.largest_datagram <= mtu
    exchange(pair)


@pytest.mark.parametrize("seed", range(6))
def test_lossy_link(seed: int) -> None:
    link = Link(seed=seed, loss=0.2, dup=0.1, reorder=0.3)
    pair = make_pair13(server_config(mtu=300), client_config(mtu=300))
    assert pair.run(link, rounds=400)
    assert pair.completed()
    # Application data is unreliable: send until each side has one copy.
    for _ in range(20):
        if not data_events(pair.server_events):
            pair.client.send(b"ping")
        if not data_events(pair.client_events):
            assert pair.server is not None
            pair.server.send(b"pong")
        assert pair.run(link, rounds=400)
        if data_events(pair.server_events) and data_events(pair.client_events):
            break
    assert set(data_events(pair.server_events)) == {b"ping"}
    assert set(data_events(pair.client_events)) == {b"pong"}
    # Both ends went quiet: no timer left running.
    assert pair.client.get_timer() is None and pair.server is not None
    assert pair.server.get_timer() is None


def lossy_total(send_acks: bool) -> int:
    total = 0
    for seed in range(8):
        link = Link(seed=seed, loss=0.25)
        pair = make_pair13(
            server_config("rsa-2048", mtu=300),
            client_config("rsa-2048", mtu=300),
            send_acks=send_acks,
        )
        assert pair.run(link, rounds=400)
        assert pair.completed()
        total += pair.client_datagrams + pair.server_datagrams
    return total


def test_acks_cut_retransmissions() -> None:
    # RFC 9147 §7: with ACKs a sender resends only what was not acknowledged, and stops
    # resending its last flight once acknowledged; without them it resends whole flights
    # until its timer gives up.
    with_acks, without = lossy_total(True), lossy_total(False)
    assert with_acks < without * 0.8, (with_acks, without)


def server_flight_in_small_datagrams() -> tuple[DatagramPair, Dtls13Connection, list[bytes]]:
    """A pair at MTU 300 after the client's ClientHello: the pair, the server connection
    and its first flight (the ServerHello to the Finished), three datagrams or more."""
    pair = make_pair13(server_config(mtu=300), client_config(mtu=300))
    ((hello, _),) = pair.client.datagrams_to_send()
    pair.to_server([hello])
    server = pair.server
    assert server is not None
    flight = [d for d, _ in server.datagrams_to_send()]
    assert len(flight) >= 3
    return pair, server, flight


def test_a_partly_received_flight_is_acknowledged_and_the_rest_resent_at_once() -> None:
    """RFC 9147 §7: the client acknowledges the records of the server's flight that came
    (epoch 2 ones too: it sends in the handshake epoch from the ServerHello on, not only
    from its Finished), and §7.3: on that partial ACK the server resends only what is
    missing (the messages not wholly acknowledged), without waiting for its timer."""
    pair, server, flight = server_flight_in_small_datagrams()
    lost = flight.pop(1)  # part of the certificate
    for d in flight:
        pair.client.receive(d, SERVER, NOW + 0.1)
    assert not pair.client.datagrams_to_send()  # the rest may still be on its way
    ack_at = pair.client.get_timer()
    assert ack_at is not None and ack_at < NOW + 1.1  # the delayed ACK, before any resend
    pair.client.handle_timer(ack_at)
    ((ack, _),) = pair.client.datagrams_to_send()
    assert ack[0] & 0xE0 == 0x20  # a protected record: handshake epoch, not plaintext
    server.receive(ack, SERVER, ack_at)
    resent = [d for d, _ in server.datagrams_to_send()]
    assert resent and sum(map(len, resent)) < sum(map(len, flight)) + len(lost)
    for d in resent:
        pair.client.receive(d, SERVER, ack_at)
    pair.drain()
    assert any(isinstance(e, HandshakeCompleted) for e in pair.client_events)


def key_update(pair: DatagramPair, sender: str) -> None:
    conn = pair.client if sender == "client" else pair.server
    assert conn is not None
    epoch = conn.records.write_epoch
    conn.key_update(request_peer=True)
    # RFC 9147 §8: the new key is used only once the KeyUpdate is acknowledged.
    assert conn.records.write_epoch == epoch
    assert pair.run()
    assert conn.records.write_epoch == epoch + 1


@pytest.mark.parametrize("sender", ["client", "server"])
def test_key_update_both_ways(sender: str) -> None:
    pair = make_pair13(server_config(), client_config())
    assert pair.run()
    assert pair.server is not None
    key_update(pair, sender)
    # The peer answered (update_requested): both directions moved to epoch 4.
    assert pair.client.records.write_epoch == 4 and pair.server.records.write_epoch == 4
    exchange(pair)
    key_update(pair, sender)
    assert pair.client.records.write_epoch == 5 and pair.server.records.write_epoch == 5
    pair.client.send(b"after")
    assert pair.run()
    assert data_events(pair.server_events)[-1] == b"after"


def test_key_updates_crossing_over_a_lossy_link() -> None:
    pair = make_pair13(server_config(), client_config())
    assert pair.run()
    assert pair.server is not None
    link = Link(seed=3, loss=0.3, dup=0.1, reorder=0.3)
    pair.client.key_update(request_peer=False)
    pair.server.key_update(request_peer=False)
    assert pair.run(link, rounds=400)
    assert pair.client.records.write_epoch == pair.server.records.write_epoch == 4
    assert pair.client.get_timer() is None and pair.server.get_timer() is None
    exchange(pair)


def test_close_notify() -> None:
    pair = make_pair13(server_config(), client_config())
    assert pair.run()
    pair.client.close()
    assert pair.run()
    assert any(isinstance(e, ConnectionClosed) for e in pair.server_events)
    with pytest.raises(StateError):
        pair.client.send(b"x")


def test_garbage_is_dropped() -> None:
    pair = make_pair13(server_config(), client_config())
    assert pair.run()
    assert pair.server is not None
    # RFC 9147 §4.5.2: invalid records are silently dropped, never answered.
    assert not pair.client.datagrams_to_send() and not pair.server.datagrams_to_send()
    timers = pair.client.get_timer(), pair.server.get_timer()
    for junk in (b"", b"\x2f", b"\x16\xfe\xfd" + bytes(20), bytes(range(64)), b"\x3f" * 40):
        pair.client.receive(junk, SERVER, pair.now)
        pair.server.receive(junk, SERVER, pair.now)
        assert not pair.client.datagrams_to_send() and not pair.server.datagrams_to_send()
    assert (pair.client.get_timer(), pair.server.get_timer()) == timers
    assert pair.client.next_event() is None and pair.server.next_event() is None
    exchange(pair)


def test_application_data_records_each_once_and_forged_ones_counted_once() -> None:
    """A datagram of one application data record, the usual one after the handshake: its
    content delivered once, a copy dropped as a replay, a forged one dropped and counted as
    one authentication failure (RFC 9147 §4.5.1, §4.5.3), nothing answered."""
    pair = make_pair13(server_config(), client_config())
    assert pair.run()
    server = pair.server
    assert server is not None
    server.next_event()
    pair.client.send(b"first")
    pair.client.send(b"second")
    first, second = [d for d, _ in pair.client.datagrams_to_send()]
    forged = first[:-1] + bytes((first[-1] ^ 1,))
    for datagram in (second, forged, first, first, second):
        server.receive(datagram, CLIENT, pair.now)
    assert data_events([server.next_event(), server.next_event()]) == [b"second", b"first"]
    assert server.next_event() is None
    assert not server.datagrams_to_send()
    assert server.records.drops == {RecordDrop.AUTHENTICATION: 1, RecordDrop.REPLAY: 2}
    assert server.records.auth_failures(3) == 1
    # send() and receive() take any bytes-like object, as a datagram socket does.
    pair.client.send(bytearray(b"array"))
    pair.client.send(memoryview(b"view"))
    array, view = [d for d, _ in pair.client.datagrams_to_send()]
    server.receive(bytearray(array), CLIENT, pair.now)
    server.receive(memoryview(view), CLIENT, pair.now)
    assert data_events([server.next_event(), server.next_event()]) == [b"array", b"view"]


def test_records_after_close_notify_in_its_datagram_are_not_read() -> None:
    """RFC 8446 §6.1: nothing after close_notify is read. A datagram of a close_notify
    and an application data record closes the connection; the data is not delivered."""
    pair = make_pair13(server_config(), client_config())
    assert pair.run()
    server = pair.server
    assert server is not None
    pair.drain()
    seen = len(pair.server_events)
    records = pair.client.records
    close_notify = records.protect(ContentType.ALERT, bytes((1, AlertDescription.close_notify)))
    server.receive(
        close_notify + records.protect(ContentType.APPLICATION_DATA, b"after"), CLIENT, pair.now
    )
    pair.drain()
    assert server.closed
    assert [type(e) for e in pair.server_events[seen:]] == [ConnectionClosed]


def test_application_data_in_the_handshake_epoch_is_not_delivered() -> None:
    """RFC 9147 §6.1: application data goes in epoch 3 and later; a record of it protected
    with the handshake keys (epoch 2, which the server still reads for a retransmitted
    Finished) is dropped, the connection left as it was."""
    pair = make_pair13(server_config(), client_config())
    assert pair.run()
    server = pair.server
    assert server is not None
    pair.drain()
    early = pair.client.records.protect(ContentType.APPLICATION_DATA, b"epoch 2", 2)
    server.receive(early, CLIENT, pair.now)
    assert server.next_event() is None and not server.datagrams_to_send()
    assert not server.closed
    exchange(pair)


def test_a_plaintext_ack_cannot_acknowledge_protected_records() -> None:
    """RFC 9147 §7: an ACK in plaintext (epoch 0) is forgeable by anyone on the path; it
    may speak for plaintext records only. One naming the server's epoch-2 records
    acknowledges nothing: no partial resend at once, and the whole flight at the timer."""
    from dtlsgate.record.dtls13 import Dtls13RecordLayer
    from dtlsgate.wire.messages13 import encode_ack

    _, server, flight = server_flight_in_small_datagrams()
    forged = encode_ack([(2, n) for n in range(len(flight) * 4)])
    server.receive(Dtls13RecordLayer().protect(ContentType.ACK, forged), CLIENT, NOW)
    assert not server.datagrams_to_send()
    deadline = server.get_timer()
    assert deadline is not None
    server.handle_timer(deadline)
    resent = [d for d, _ in server.datagrams_to_send()]
    assert [len(d) for d in resent] == [len(d) for d in flight]


def test_records_after_the_admitted_client_hello_in_its_datagram_are_read() -> None:
    """RFC 9147 §4.1: a datagram may hold several records. Those after the ClientHello2
    the gate admitted are read by the server connection's ``start``: here a fatal alert,
    which ends the connection there."""
    from dtlsgate.connection.datagram13 import accept
    from dtlsgate.errors import AlertReceived
    from dtlsgate.gate.datagram import Dtls13Admit, Gate, Reply
    from dtlsgate.record.dtls13 import Dtls13RecordLayer

    config = server_config()
    gate = Gate(config)
    client = Dtls13ClientConnection(client_config(), SERVER)
    client.connect(NOW)
    ((hello1, _),) = client.datagrams_to_send()
    reply = gate.receive(hello1, CLIENT, NOW)
    assert isinstance(reply, Reply)
    client.receive(reply.data, SERVER, NOW)
    ((hello2, _),) = client.datagrams_to_send()
    alert = bytes((2, AlertDescription.handshake_failure))
    admit = gate.receive(
        hello2 + Dtls13RecordLayer().protect(ContentType.ALERT, alert), CLIENT, NOW
    )
    assert isinstance(admit, Dtls13Admit)
    server = accept(admit, config, gate=gate)
    with pytest.raises(AlertReceived) as info:
        server.start(NOW)
    assert info.value.description == AlertDescription.handshake_failure
    assert server.closed


def test_server_context_must_be_for_dtls() -> None:
    from dtlsgate.connection.datagram13 import Dtls13ServerConnection
    from dtlsgate.errors import UsageError

    cfg = server_config()
    with pytest.raises(UsageError):
        Dtls13ServerConnection(cfg, context=ServerContext(cfg))
    Dtls13ServerConnection(cfg, context=ServerContext(cfg, versions=DTLS_VERSIONS))


def test_client_hello_is_dtls13() -> None:
    client = Dtls13ClientConnection(client_config(provider=DeterministicProvider(b"c")), SERVER)
    client.connect(NOW)
    ((datagram, _),) = client.datagrams_to_send()
    assert datagram[0] == ContentType.HANDSHAKE
    body = datagram[13 + 12 :]
    assert body[:2] == b"\xfe\xfd"  # legacy_version {254, 253} (RFC 9147 §5.3)
    assert b"\xfe\xfc" in body  # supported_versions offers DTLS 1.3
    # legacy_session_id and legacy_cookie are empty (RFC 9147 §5, §5.3)
    assert body[34:36] == b"\x00\x00"


PSK_ID = b"Client_identity"
PSK_KEY = bytes(range(32))


@pytest.mark.parametrize(
    "suite", [CipherSuite.TLS_AES_128_CCM_8_SHA256, CipherSuite.TLS_AES_128_GCM_SHA256]
)
def test_external_psk(suite: CipherSuite) -> None:
    # RFC 8446 §2.2, §4.2.11: an external PSK (psk_dhe_ke), no certificates on either side:
    # the IoT case of CoAP with AES-128-CCM-8.
    server = server_config(None, psk={PSK_ID: PSK_KEY}, cipher_suites=tuple(SUITES))
    client = client_config(psk=PSK_KEY, psk_identity=PSK_ID, cipher_suites=(suite,))
    pair = make_pair13(server, client)
    assert pair.run()
    for events in (pair.client_events, pair.server_events):
        done = info(events)
        assert done.psk_identity == PSK_ID and done.cipher_suite == suite
        assert done.peer_certificates == () and not done.resumed
    exchange(pair)


def test_external_psk_wrong_key_is_decrypt_error() -> None:
    server = server_config(None, psk={PSK_ID: PSK_KEY})
    client = client_config(psk=bytes(32), psk_identity=PSK_ID)
    pair = make_pair13(server, client)
    with pytest.raises(Exception, match="binder"):
        pair.run()
    assert pair.server is not None and pair.server.closed


def test_connection_ids_and_nat_rebinding() -> None:
    # RFC 9147 §9: each side's CID in the records it receives; a CID in every protected
    # record. RFC 9146 §6: the association follows a peer whose address changed.
    pair = make_pair13(server_config(connection_id_length=4), client_config(connection_id_length=2))
    assert pair.run()
    server = pair.server
    assert server is not None
    assert len(server.records.read_connection_id) == 4
    assert len(pair.client.records.read_connection_id) == 2
    assert server.records.write_connection_id == pair.client.records.read_connection_id
    pair.client.send(b"from a new address")
    ((datagram, _),) = pair.client.datagrams_to_send()
    assert datagram[0] & 0x10  # the C bit of the unified header
    moved = ("198.51.100.7", 5555)
    server.receive(datagram, moved, pair.now)
    assert server.peer == moved
    server.send(b"answer")
    ((_, to),) = server.datagrams_to_send()
    assert to == moved
    # A replayed older record from yet another address does not move it.
    server.receive(datagram, ("203.0.113.9", 1), pair.now)
    assert server.peer == moved


def test_no_connection_id_unless_both_ask() -> None:
    pair = make_pair13(server_config(), client_config(connection_id_length=2))
    assert pair.run()
    assert pair.server is not None and pair.server.records.read_connection_id == b""
    assert pair.client.records.read_connection_id == b""
    exchange(pair)


@pytest.mark.parametrize("resuming", [False, True])
def test_the_client_keeps_the_client_hello_it_sent(resuming: bool) -> None:
    """The ClientHello the client keeps (``first_client_hello``: what its checks of the
    ServerHello and the DTLS 1.2 fallback read) is the one it sent, binders included when
    it offers a ticket: kept as made when sent as made, decoded back from the message only
    when its binders were filled in (RFC 8446 §4.2.11.2)."""
    config = client_config()
    if resuming:
        first = make_pair13(server_config(), client_config())
        assert first.run()
        (ticket,) = [e.ticket for e in first.client_events if isinstance(e, SessionTicketReceived)]
        config = client_config(session_ticket=ticket)
    client = Dtls13ClientConnection(config, SERVER)
    client.connect(NOW)
    ((datagram, _),) = client.datagrams_to_send()
    # One DTLSPlaintext record (13-byte header) of one whole handshake message (12-byte
    # header, RFC 9147 §5.2).
    assert datagram[0] == ContentType.HANDSHAKE and len(datagram) == 13 + int.from_bytes(
        datagram[11:13], "big"
    )
    sent = ClientHello.decode(datagram[13 + 12 :], dtls=True)
    assert (sent.get(ExtensionType.pre_shared_key) is not None) == resuming
    assert client.first_client_hello == sent


def test_the_acknowledgement_of_a_last_flight_names_all_its_records() -> None:
    """The client's last flight with a certificate is three records (Certificate,
    CertificateVerify, Finished); the server's ACK after it completes names all three, so
    the client resends none of them (§7.3): its ClientHello and that flight are all it
    sends (no ticket comes with client certificates, nothing else to acknowledge)."""
    pair = client_certificate_pair()
    assert pair.run()
    assert pair.completed() and pair.client_datagrams == 2


def test_a_dtls_config_s_tls13_suites_in_its_order() -> None:
    """A datagram config may list both versions' suites: DTLS 1.3 uses its TLS 1.3 ones in
    the config's order, and the defaults when it lists none."""
    dtls12 = CipherSuite.TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256
    mixed = (
        dtls12,
        CipherSuite.TLS_CHACHA20_POLY1305_SHA256,
        CipherSuite.TLS_AES_128_CCM_8_SHA256,
        CipherSuite.TLS_AES_256_GCM_SHA384,
    )
    assert tls13_suites(mixed) == mixed[1:]
    assert tls13_suites((dtls12,)) == DEFAULT_SUITES


def test_a_client_config_edited_after_use_takes_effect() -> None:
    """A DTLS 1.3 client's context is prepared once per config and shared by its
    connections: a field assigned (here the suites, the ALPN list and a certificate loaded)
    after a connection was made takes effect in the next one, and the session ticket is
    read per connection."""
    server = server_config(cipher_suites=tuple(SUITES), alpn_protocols=(b"coap",))
    config = client_config()
    first = make_pair13(server, config)
    assert first.run()
    assert info(first.client_events).cipher_suite == CipherSuite.TLS_AES_128_GCM_SHA256
    assert info(first.client_events).alpn_protocol is None
    (ticket,) = [e.ticket for e in first.client_events if isinstance(e, SessionTicketReceived)]
    config.cipher_suites = (CipherSuite.TLS_CHACHA20_POLY1305_SHA256,)
    config.alpn_protocols = (b"coap",)
    second = make_pair13(server, config)
    assert second.run()
    done = info(second.client_events)
    assert done.cipher_suite == CipherSuite.TLS_CHACHA20_POLY1305_SHA256
    assert done.alpn_protocol == b"coap" and not done.resumed
    config.cipher_suites = None
    config.session_ticket = ticket
    third = make_pair13(server, config)
    assert third.run()
    assert info(third.client_events).resumed
    config.session_ticket = None
    config.load_cert_chain(*credentials("ed25519"))  # asked for: sent, as loaded after use
    asking = server_config(verify_client="required", cafile=credentials("ed25519")[0])
    fourth = make_pair13(asking, config)
    assert fourth.run()
    assert info(fourth.server_events).peer_certificates


def test_a_client_config_s_prepared_data_follows_its_fields() -> None:
    """`ClientConfig.prepared`: made once per function, made again after any field is assigned
    (but the session ticket) or the certificate chain changed in place; a copy of the
    config prepares its own (its fields may then change apart from the original's)."""
    import copy

    config = client_config()
    made: list[object] = []

    def make(c: object) -> object:
        made.append(c)
        return object()

    one = config.prepared(make)
    assert config.prepared(make) is one and made == [config]
    config.session_ticket = None
    assert config.prepared(make) is one
    config.mtu = 1200
    two = config.prepared(make)
    assert two is not one
    cert = load_certificate_chain(credentials("ecdsa-p256")[0])[0]
    config.certificate_chain.append(cert)
    three = config.prepared(make)
    assert three is not two
    other = copy.copy(config)
    assert other.prepared(make) is not three and made[-1] is other
    assert config.prepared(make) is three


@pytest.mark.parametrize("moment", ["before", "between", "after"])
def test_a_client_config_keeps_nothing_prepared_from_fields_assigned_meanwhile(
    moment: str,
) -> None:
    """`ClientConfig.prepared` takes no lock: another thread may assign a field while
    ``make`` reads the fields. What ``make`` made then serves the connection that asked for
    it, and no other; the next connection's is made from the fields as they are. Here
    ``make`` assigns a field itself at its first call, standing for the other thread: before
    it reads the fields, between two of them, after it read them."""
    config = client_config()
    seen: list[tuple[str | None, int]] = []

    def make(c: ClientConfig) -> object:
        first_call = not seen
        if first_call and moment == "before":
            c.server_name = "other.example"
        name = c.server_name
        if first_call and moment == "between":
            c.mtu = 1300
        seen.append((name, c.mtu))
        if first_call and moment == "after":
            c.server_name = "other.example"
        return object()

    first = config.prepared(make)
    second = config.prepared(make)
    assert second is not first
    assert seen[-1] == (config.server_name, config.mtu)
    assert config.prepared(make) is second  # made from the fields as they are
