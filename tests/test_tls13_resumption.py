"""TLS 1.3 session tickets and PSK resumption (RFC 8446 §4.6.1, §4.2.11, psk_dhe_ke):
RFC 8448 §4 (resumed) and §5 (HelloRetryRequest) byte for byte where they apply, resumption in memory (also after a
HelloRetryRequest, statelessly, and across servers sharing a ticket key), the ticket age
and lifetime checks, bad binders, and rejected 0-RTT data skipped (§4.2.10)."""

from __future__ import annotations

import dataclasses
from typing import Any

import pytest
import rfc8448 as v
from helpers import NOW, client_config, events, pair, pump, server_config

from dtlsgate.connection.stream import ClientConnection, ServerConnection
from dtlsgate.crypto.aead import Aead, AeadAlgorithm
from dtlsgate.crypto.hashes import Hash, TranscriptHash
from dtlsgate.crypto.kex import KeyShare
from dtlsgate.crypto.keyschedule import KeySchedule
from dtlsgate.crypto.provider import DefaultProvider
from dtlsgate.crypto.suites import suite_info
from dtlsgate.errors import ProtocolError, UsageError
from dtlsgate.events import DataReceived, HandshakeCompleted, SessionTicketReceived
from dtlsgate.gate.results import StreamAdmit
from dtlsgate.gate.stream import StatelessGate
from dtlsgate.handshake.tls13 import client as _client
from dtlsgate.handshake.tls13.client import SessionTicket, WaitServerHello
from dtlsgate.handshake.tls13.common import Keys
from dtlsgate.handshake.tls13.tickets import (
    MAX_TICKET_AGE_SKEW_MS,
    TicketSealer,
    TicketState,
    fill_binders,
    ticket_key_from_master,
)
from dtlsgate.record.tls13 import RecordProtection
from dtlsgate.wire.enums import AlertDescription, CipherSuite, ExtensionType, NamedGroup
from dtlsgate.wire.extensions import decode_cookie, decode_pre_shared_key_ch
from dtlsgate.wire.messages import ClientHello, ServerHello
from dtlsgate.wire.messages13 import EncryptedExtensions, NewSessionTicket

RFC8448_TIME = 1538000000.0
SUITE = CipherSuite.TLS_AES_128_GCM_SHA256


def trace_client_after_section3() -> ClientConnection:
    """Our client through the RFC 8448 §3 handshake (as test_tls13_handshake does)."""
    cfg = client_config(insecure=True, server_name=None, middlebox_compat=False)
    client = ClientConnection(cfg)
    hello = ClientHello.decode(v.CLIENT_HELLO[4:], dtls=False)
    share = KeyShare.from_private_bytes(NamedGroup.x25519, v.CLIENT_PRIVATE)
    client._state = WaitServerHello(hello, v.CLIENT_HELLO, {NamedGroup.x25519: share})
    client.receive_data(v.SERVER_HELLO_RECORD + v.SERVER_FLIGHT_RECORD, RFC8448_TIME)
    client.data_to_send()
    events(client)
    return client


def trace_ticket() -> SessionTicket:
    """The §3 NewSessionTicket, fed to our client under the trace's server application key."""
    client = trace_client_after_section3()
    sealer = RecordProtection(Aead(AeadAlgorithm.AES_128_GCM, v.SERVER_APP_KEY), v.SERVER_APP_IV)
    client.receive_data(sealer.seal(22, v.NEW_SESSION_TICKET), RFC8448_TIME)
    (event,) = events(client)
    assert isinstance(event, SessionTicketReceived)
    return event.ticket


def test_rfc8448_resumption_master_secret_and_ticket_psk() -> None:
    client = trace_client_after_section3()
    assert client.state.app.resumption == v.RESUMPTION_MASTER_SECRET  # type: ignore[union-attr]
    ticket = trace_ticket()
    assert ticket.psk == v.RESUMPTION_PSK
    assert ticket.ticket.ticket_age_add == 0xFAD6AAC5
    assert ticket.suite == SUITE


def test_rfc8448_client_binder_and_obfuscated_age() -> None:
    ticket = trace_ticket()
    # RFC 8446 §4.2.11.1: 6 ms after the ticket arrived, the obfuscated age is the trace's.
    ctx = _client.ClientContext(client_config(insecure=True, server_name=None))
    offer = _client.psk_offer(ctx, ticket, ticket.received_at + 0.006)
    assert offer is not None and offer.obfuscated_age == v.RESUMED_OBFUSCATED_AGE
    # Our binder code fills the trace's ClientHello (binder zeroed) byte for byte.
    blank = v.RESUMED_CLIENT_HELLO[:-32] + bytes(32)
    hello = ClientHello.decode(blank[4:], dtls=False)
    psk_data = hello.extensions[-1].data  # type: ignore[index]
    filled = fill_binders(blank, decode_pre_shared_key_ch(psk_data), offer.schedule(), None)
    assert filled == v.RESUMED_CLIENT_HELLO


class TraceSealer:
    """Opens the trace's ticket (issued by NSS, opaque to us) as the §3 session."""

    def open(self, ticket: bytes) -> TicketState | None:
        if ticket != trace_ticket_bytes():
            return None
        issued = int(RFC8448_TIME * 1000) - 6
        return TicketState(SUITE, issued, 7200, 0xFAD6AAC5, v.RESUMPTION_PSK, b"")


def trace_ticket_bytes() -> bytes:
    return NewSessionTicket.decode(v.NEW_SESSION_TICKET[4:]).ticket


class ResumedTraceProvider(DefaultProvider):
    def random(self, n: int) -> bytes:
        return v.RESUMED_SERVER_RANDOM[:n]

    def generate_key_share(self, group: NamedGroup) -> KeyShare:
        return KeyShare.from_private_bytes(group, v.RESUMED_SERVER_PRIVATE)


def test_rfc8448_resumed_server_hello_and_early_data_skipped() -> None:
    server = ServerConnection(server_config(provider=ResumedTraceProvider()))
    server._ctx.sealer = TraceSealer()  # type: ignore[assignment]
    # The trace's client sends 0-RTT data right after its ClientHello: we reject early data,
    # so the record (which we cannot decrypt) is skipped, not fatal (RFC 8446 §4.2.10).
    server.receive_data(v.RESUMED_CLIENT_HELLO_RECORD + v.EARLY_DATA_RECORD, RFC8448_TIME)
    out = server.data_to_send()
    # Byte for byte: the ServerHello of RFC 8448 §4 (pre_shared_key, key_share, version).
    assert out[: len(v.RESUMED_SERVER_HELLO_RECORD)] == v.RESUMED_SERVER_HELLO_RECORD
    rest = out[len(v.RESUMED_SERVER_HELLO_RECORD) :]
    reader = RecordProtection(
        Aead(AeadAlgorithm.AES_128_GCM, v.RESUMED_SERVER_HS_KEY), v.RESUMED_SERVER_HS_IV
    )
    messages = []
    while rest:
        length = int.from_bytes(rest[3:5], "big")
        content_type, content = reader.open(rest[:5], rest[5 : 5 + length])
        assert content_type == 22
        messages.append(content)
        rest = rest[5 + length :]
    # EncryptedExtensions (without early_data: rejected) then Finished; no certificate.
    assert [m[0] for m in messages] == [8, 20]
    assert EncryptedExtensions.decode(messages[0][4:]).get(42) is None
    # The EndOfEarlyData record a 0-RTT client would now send is skipped as well.
    server.receive_data(v.END_OF_EARLY_DATA_RECORD, RFC8448_TIME)
    assert not server.handshake_complete


def test_rfc8448_resumed_client_finished() -> None:
    """The trace's client Finished, from our key schedule, transcript and record layer
    (our client never sends 0-RTT, so it cannot send the trace's EndOfEarlyData itself)."""
    hello = v.RESUMED_CLIENT_HELLO
    sh = v.RESUMED_SERVER_HELLO_RECORD[5:]
    schedule = KeySchedule.for_suite(suite_info(SUITE), psk=v.RESUMPTION_PSK)
    early = schedule.client_early_traffic_secret(Hash.SHA256.digest(hello))
    assert early == v.RESUMED_CLIENT_EARLY_SECRET
    ours = KeyShare.from_private_bytes(NamedGroup.x25519, v.RESUMED_CLIENT_PRIVATE)
    server_public = ServerHello.decode(sh[4:]).get(51)[-32:]  # type: ignore[index]
    schedule.enter_handshake(ours.exchange(server_public))
    keys = Keys.after_server_hello(schedule, TranscriptHash(Hash.SHA256, hello + sh), b"")
    assert keys.client_handshake == v.RESUMED_CLIENT_HS_SECRET
    assert keys.server_handshake == v.RESUMED_SERVER_HS_SECRET

    def protection(secret: bytes) -> RecordProtection:
        key, iv = schedule.traffic_keys(secret)
        return RecordProtection(Aead(AeadAlgorithm.AES_128_GCM, key), iv)

    record = v.RESUMED_SERVER_FLIGHT_RECORD
    _, flight = protection(keys.server_handshake).open(record[:5], record[5:])
    ee_end = 4 + int.from_bytes(flight[1:4], "big")
    keys.transcript.update(flight[:ee_end])
    assert flight[ee_end + 4 :] == keys.finished(server=True)
    keys.transcript.update(flight[ee_end:])
    # The 0-RTT application data went first under the client early traffic key (sequence 0).
    early_reader = protection(early)
    data = v.EARLY_DATA_RECORD
    assert early_reader.open(data[:5], data[5:])[0] == 23
    eoed = v.END_OF_EARLY_DATA_RECORD
    _, end_of_early_data = early_reader.open(eoed[:5], eoed[5:])
    assert end_of_early_data == b"\x05\x00\x00\x00"
    keys.transcript.update(end_of_early_data)
    finished = b"\x14\x00\x00\x20" + keys.finished(server=False)
    assert protection(keys.client_handshake).seal(22, finished) == v.RESUMED_CLIENT_FINISHED_RECORD


# ---- resumption in memory -------------------------------------------------------------------


def first_ticket(server_cfg: Any, client_cfg: Any | None = None) -> SessionTicket:
    client, _ = pair(server_cfg, client_cfg or client_config())
    tickets = [e.ticket for e in events(client) if isinstance(e, SessionTicketReceived)]
    assert len(tickets) == server_cfg.session_tickets
    return tickets[-1]


def resume(
    server_cfg: Any, ticket: SessionTicket, now: float = NOW, **client_kw: Any
) -> tuple[ClientConnection, ServerConnection]:
    client = ClientConnection(client_config(session_ticket=ticket, **client_kw))
    server = ServerConnection(server_cfg)
    client.start(now)
    pump(client, server)
    return client, server


@pytest.mark.parametrize("suite", list(CipherSuite)[:3])
def test_resumption_with_each_suite(suite: CipherSuite) -> None:
    scfg = server_config(session_tickets=2)
    ticket = first_ticket(scfg, client_config(cipher_suites=(suite,)))
    client, server = resume(scfg, ticket, cipher_suites=(suite,))
    assert client.info is not None and server.info is not None
    assert client.info.resumed and server.info.resumed
    assert client.info.cipher_suite == suite and client.info.peer_certificates == ()
    client.send(b"resumed")
    pump(client, server)
    assert DataReceived(b"resumed") in events(server)


def test_resumption_after_hello_retry_request() -> None:
    scfg = server_config()
    ticket = first_ticket(scfg)
    # The client's first share is for P-384; the server wants X25519: an HRR, then a
    # ClientHello2 whose binder covers message_hash(CH1) and the HRR (RFC 8446 §4.2.11.2).
    client, server = resume(scfg, ticket, groups=(NamedGroup.secp384r1, NamedGroup.x25519))
    assert client.info is not None and client.info.resumed and client.info.hello_retry
    assert server.info is not None and server.info.resumed


def test_resumption_through_the_stateless_gate() -> None:
    scfg = server_config(stateless=True)
    ticket = first_ticket(scfg)
    gate = StatelessGate(scfg)
    client = ClientConnection(client_config(session_ticket=ticket))
    client.start(NOW)
    reply = gate.receive(client.data_to_send(), "peer", NOW)
    client.receive_data(reply.data, NOW)  # type: ignore[union-attr]
    admit = gate.receive(client.data_to_send(), "peer", NOW)
    assert isinstance(admit, StreamAdmit)
    server = ServerConnection.from_admit(scfg, admit, NOW)
    pump(server, client)
    assert client.info is not None and client.info.resumed and client.info.hello_retry


def test_a_ticket_resumes_on_another_server_sharing_the_key() -> None:
    key = ticket_key_from_master(b"\x11" * 32)
    ticket = first_ticket(server_config(ticket_key=key))
    client, _ = resume(server_config(ticket_key=key), ticket)
    assert client.info is not None and client.info.resumed
    # Another key: the ticket does not open; a full handshake follows (RFC 8446 §4.2.11).
    client, _ = resume(server_config(), ticket)
    assert client.info is not None and not client.info.resumed
    assert client.info.peer_certificates


def test_a_ticket_is_not_taken_by_a_server_that_asks_for_client_certificates() -> None:
    """A ticket does not carry the client's certificate: a server sharing the ticket key
    that asks for one (verify_client "optional") ignores the ticket and makes a full
    handshake (RFC 8446 §4.2.11: any PSK may be ignored)."""
    from helpers import credentials

    key = ticket_key_from_master(b"\x11" * 32)
    ticket = first_ticket(server_config(ticket_key=key))
    asking = server_config(
        ticket_key=key, verify_client="optional", cafile=credentials()[0].decode()
    )
    client, server = resume(asking, ticket)
    assert client.info is not None and not client.info.resumed
    assert server.info is not None and not server.info.resumed
    assert client.info.peer_certificates


def test_a_ticket_of_a_suite_the_server_no_longer_allows_is_not_taken() -> None:
    """A ticket resumes only with its own suite, which both sides must still offer: a
    server sharing the ticket key that allows only ChaCha20 makes a full handshake with
    it instead of resuming the AES-128-GCM ticket."""
    key = ticket_key_from_master(b"\x11" * 32)
    ticket = first_ticket(server_config(ticket_key=key))
    assert ticket.suite == CipherSuite.TLS_AES_128_GCM_SHA256
    chacha = server_config(
        ticket_key=key, cipher_suites=(CipherSuite.TLS_CHACHA20_POLY1305_SHA256,)
    )
    client, _ = resume(chacha, ticket)
    assert client.info is not None and not client.info.resumed
    assert client.info.cipher_suite == CipherSuite.TLS_CHACHA20_POLY1305_SHA256


@pytest.mark.parametrize(
    ("delay", "resumed"),
    [(1.0, True), (7199.0, True), (7201.0, False)],
    ids=["fresh", "near_lifetime", "expired"],
)
def test_ticket_lifetime(delay: float, resumed: bool) -> None:
    scfg = server_config()
    ticket = first_ticket(scfg)
    client = ClientConnection(client_config(session_ticket=ticket))
    server = ServerConnection(scfg)
    client.start(NOW + delay)
    client_bytes = client.data_to_send()
    server.receive_data(client_bytes, NOW + delay)
    client.receive_data(server.data_to_send(), NOW + delay)
    assert client.info is not None and client.info.resumed is resumed


def test_server_checks_ticket_age_and_lifetime_itself() -> None:
    scfg = server_config()
    ticket = first_ticket(scfg)
    # The client claims the ticket is fresh but the server's clock says it has expired.
    later = NOW + scfg.ticket_lifetime + 1
    client = ClientConnection(client_config(session_ticket=ticket))
    client.start(NOW + 1)
    server = ServerConnection(scfg)
    server.receive_data(client.data_to_send(), later)
    client.receive_data(server.data_to_send(), later)
    assert client.info is not None and not client.info.resumed
    # An age that disagrees with ours by more than the allowed skew: not resumed either.
    state = TicketState(SUITE, int(NOW * 1000), 7200, 5, b"k" * 32, b"")
    assert state.age_ok(5 + 1000, NOW + 1)
    assert not state.age_ok(5 + 1000 + MAX_TICKET_AGE_SKEW_MS + 1, NOW + 1)
    assert not state.age_ok(5, NOW + 7201)


def test_client_does_not_offer_a_ticket_for_another_name_or_an_expired_one() -> None:
    ticket = first_ticket(server_config())
    ctx = _client.ClientContext(client_config(server_name="localhost"))
    other = dataclasses.replace(ticket, server_name="other.example")
    assert _client.psk_offer(ctx, other, NOW) is None
    assert _client.psk_offer(ctx, ticket, NOW + 7201) is None
    assert _client.psk_offer(ctx, ticket, NOW + 1) is not None
    with pytest.raises(UsageError):
        ClientConnection(client_config(session_ticket=ticket)).start()
    with pytest.raises(UsageError):
        ClientConnection(client_config(session_ticket=b"not a ticket"))


def tampered_binder_hello(scfg: Any) -> bytes:
    ticket = first_ticket(scfg)
    client = ClientConnection(client_config(session_ticket=ticket))
    client.start(NOW)
    out = bytearray(client.data_to_send())
    out[-1] ^= 1  # the last byte of the binder
    return bytes(out)


def test_bad_binder_is_decrypt_error() -> None:
    scfg = server_config()
    server = ServerConnection(scfg)
    with pytest.raises(ProtocolError) as info:
        server.receive_data(tampered_binder_hello(scfg), NOW)
    assert info.value.alert == AlertDescription.decrypt_error
    assert server.data_to_send()[-2:] == bytes((2, AlertDescription.decrypt_error))


def test_forged_ticket_is_ignored_not_fatal() -> None:
    scfg = server_config()
    ticket = first_ticket(scfg)
    forged_nst = dataclasses.replace(ticket.ticket, ticket=b"\x01" + bytes(60))
    client, _ = resume(scfg, dataclasses.replace(ticket, ticket=forged_nst))
    assert client.info is not None and not client.info.resumed


def test_no_tickets_with_client_certificates_or_when_disabled() -> None:
    client, _ = pair(server_config(session_tickets=0), client_config())
    assert not [e for e in events(client) if isinstance(e, SessionTicketReceived)]


def test_ticket_state_encoding() -> None:
    """What a ticket seals (our own format, the same bytes since tickets began: tickets
    sealed before still open): suite u16, issued_at_ms u64, lifetime and age_add u32,
    psk<1..255>, alpn<0..255>."""
    state = TicketState(SUITE, 2**63, 7200, 0xFAD6AAC5, b"k" * 32, b"h2")
    encoded = state.encode()
    assert encoded == (
        SUITE.to_bytes(2, "big")
        + (2**63).to_bytes(8, "big")
        + (7200).to_bytes(4, "big")
        + (0xFAD6AAC5).to_bytes(4, "big")
        + b"\x20"
        + b"k" * 32
        + b"\x02h2"
    )
    assert TicketState.decode(encoded) == state
    for bad in (
        dataclasses.replace(state, age_add=2**32),
        dataclasses.replace(state, issued_at_ms=-1),
        dataclasses.replace(state, psk=b""),
        dataclasses.replace(state, alpn=bytes(256)),
    ):
        with pytest.raises(UsageError):
            bad.encode()


def test_ticket_sealer_round_trip_and_tamper() -> None:
    sealer = TicketSealer(b"\x22" * 32, DefaultProvider())
    state = TicketState(SUITE, 1, 2, 3, b"psk", b"h2")
    ticket = sealer.seal(state)
    assert sealer.open(ticket) == state
    for i in range(len(ticket)):
        bad = bytearray(ticket)
        bad[i] ^= 0x80
        assert sealer.open(bytes(bad)) is None
    assert sealer.open(ticket[:-1]) is None
    assert TicketSealer(b"\x33" * 32, DefaultProvider()).open(ticket) is None
    with pytest.raises(UsageError):
        TicketSealer(b"short", DefaultProvider())


# ---- rejected early data (RFC 8446 §4.2.10) -----------------------------------------------------


def early_data_hello() -> tuple[ClientConnection, bytes]:
    """A ClientHello with early_data (our client never sends it: added, binder refilled)."""
    from dtlsgate.wire.extensions import Extension

    client = ClientConnection(client_config())
    original = _client.client_hello

    def with_early_data(*args: Any, **kw: Any) -> ClientHello:
        hello = original(*args, **kw)
        assert hello.extensions is not None
        extensions = (Extension(42, b""), *hello.extensions)
        return dataclasses.replace(hello, extensions=extensions)

    _client.client_hello = with_early_data  # type: ignore[assignment]
    try:
        client.start(NOW)
    finally:
        _client.client_hello = original  # type: ignore[assignment]
    return client, client.data_to_send()


def fake_early_record(size: int) -> bytes:
    return bytes((23, 3, 3)) + size.to_bytes(2, "big") + bytes(size)


def test_early_data_records_are_skipped_up_to_the_limit() -> None:
    from dtlsgate.handshake.tls13.server import MAX_EARLY_DATA_SKIP

    client, hello = early_data_hello()
    server = ServerConnection(server_config())
    # 0-RTT records right after the ClientHello, then (after our flight) more of them
    # before the client's Finished: all skipped, the handshake completes.
    server.receive_data(hello + fake_early_record(100) * 3, NOW)
    client.receive_data(server.data_to_send(), NOW)
    server.receive_data(fake_early_record(200) + client.data_to_send(), NOW)
    assert server.handshake_complete
    # After the first record that decrypts, a bad record is fatal again (bad_record_mac).
    with pytest.raises(ProtocolError) as info:
        server.receive_data(fake_early_record(100), NOW)
    assert info.value.alert == AlertDescription.bad_record_mac
    # More early data than the limit: unexpected_message.
    _, hello = early_data_hello()
    server = ServerConnection(server_config())
    records = fake_early_record(16000) * (MAX_EARLY_DATA_SKIP // 16000 + 1)
    with pytest.raises(ProtocolError) as info:
        server.receive_data(hello + records, NOW)
    assert info.value.alert == AlertDescription.unexpected_message


def test_early_data_records_after_a_hello_retry_request_are_skipped() -> None:
    """RFC 8446 §4.2.10: a server that sends a HelloRetryRequest ignores the client's
    0-RTT records that follow ClientHello1 (no read key yet: they are skipped unread), and
    the handshake continues with ClientHello2."""
    client, hello = early_data_hello()
    server = ServerConnection(server_config(groups=(NamedGroup.secp384r1,)))
    server.receive_data(hello + fake_early_record(100) * 2, NOW)
    client.receive_data(server.data_to_send(), NOW)  # the HelloRetryRequest
    pump(client, server)
    assert server.handshake_complete and client.handshake_complete
    assert client.info is not None and client.info.hello_retry


def test_early_data_not_skipped_without_the_extension() -> None:
    client = ClientConnection(client_config())
    client.start(NOW)
    server = ServerConnection(server_config())
    with pytest.raises(ProtocolError) as info:
        server.receive_data(client.data_to_send() + fake_early_record(50), NOW)
    assert info.value.alert == AlertDescription.bad_record_mac


def test_handshake_events_on_resumption() -> None:
    scfg = server_config()
    ticket = first_ticket(scfg)
    client, _ = resume(scfg, ticket)
    kinds = [type(e) for e in events(client)]
    assert kinds[0] is HandshakeCompleted and SessionTicketReceived in kinds


# ---- RFC 8448 §5: HelloRetryRequest ------------------------------------------------------------


class TraceShare:
    """A P-256 share standing for the trace's: its public key and the trace's ECDHE secret
    (the RFC prints both shares and the shared secret)."""

    group = NamedGroup.secp256r1

    def __init__(self, public: bytes) -> None:
        self.public_bytes = public

    def exchange(self, peer: bytes) -> bytes:
        return v.HRR_SHARED_SECRET


class HrrServerProvider(DefaultProvider):
    def random(self, n: int) -> bytes:
        return v.HRR_SERVER_RANDOM[:n]

    def generate_key_share(self, group: NamedGroup) -> Any:
        assert group == NamedGroup.secp256r1
        return TraceShare(v.HRR_SERVER_SHARE)


def test_rfc8448_hrr_client_answers_the_trace_hello_retry_request() -> None:
    client = ClientConnection(client_config(insecure=True, server_name=None))
    hello1 = ClientHello.decode(v.HRR_CLIENT_HELLO1[4:], dtls=False)
    share = KeyShare.from_private_bytes(NamedGroup.x25519, bytes(32))
    client._state = WaitServerHello(hello1, v.HRR_CLIENT_HELLO1, {NamedGroup.x25519: share})
    record = bytes((22, 3, 3)) + len(v.HELLO_RETRY_REQUEST).to_bytes(2, "big")
    client.receive_data(record + v.HELLO_RETRY_REQUEST, RFC8448_TIME)
    raw2 = client.data_to_send()[5:]
    hello2 = ClientHello.decode(raw2[4:], dtls=False)
    # RFC 8446 §4.1.2: the same random, the cookie echoed verbatim, one P-256 share.
    assert hello2.random == hello1.random
    assert hello2.get(44) == len(v.HRR_COOKIE).to_bytes(2, "big") + v.HRR_COOKIE
    assert hello2.get(51)[2:6] == b"\x00\x17\x00\x41"  # type: ignore[index]
    # Its transcript starts with message_hash(ClientHello1) and the HelloRetryRequest.
    expected = TranscriptHash.after_hello_retry(Hash.SHA256, v.HRR_CLIENT_HELLO1)
    expected.update(v.HELLO_RETRY_REQUEST)
    expected.update(raw2)
    assert client.state.retry.digest() == expected.digest()  # type: ignore[union-attr]


def test_rfc8448_hrr_client_handshake_secrets() -> None:
    lines: list[str] = []
    client = ClientConnection(client_config(insecure=True, server_name=None), keylog=lines.append)
    retry = TranscriptHash.after_hello_retry(Hash.SHA256, v.HRR_CLIENT_HELLO1)
    retry.update(v.HELLO_RETRY_REQUEST)
    retry.update(v.HRR_CLIENT_HELLO2)
    hello2 = ClientHello.decode(v.HRR_CLIENT_HELLO2[4:], dtls=False)
    shares = {NamedGroup.secp256r1: TraceShare(v.HRR_CLIENT_SHARE)}
    client._state = WaitServerHello(hello2, v.HRR_CLIENT_HELLO2, shares, retry, SUITE)  # type: ignore[arg-type]
    record = bytes((22, 3, 3)) + len(v.HRR_SERVER_HELLO).to_bytes(2, "big")
    client.receive_data(record + v.HRR_SERVER_HELLO, RFC8448_TIME)
    # The secrets over message_hash(CH1), HRR, CH2, SH are the trace's.
    secrets = {line.split()[0]: bytes.fromhex(line.split()[2]) for line in lines}
    assert secrets["CLIENT_HANDSHAKE_TRAFFIC_SECRET"] == v.HRR_CLIENT_HS_SECRET
    assert secrets["SERVER_HANDSHAKE_TRAFFIC_SECRET"] == v.HRR_SERVER_HS_SECRET
    assert client.state.keys.transcript.digest() == v.HRR_TRANSCRIPT_HASH  # type: ignore[union-attr]


def test_rfc8448_hrr_server_hello_and_handshake_keys() -> None:
    from dtlsgate.handshake.tls13.common import client_hello_fixed_part
    from dtlsgate.handshake.tls13.server import WaitClientHello2

    server = ServerConnection(server_config(provider=HrrServerProvider()))
    transcript = TranscriptHash.after_hello_retry(Hash.SHA256, v.HRR_CLIENT_HELLO1)
    transcript.update(v.HELLO_RETRY_REQUEST)
    hello1 = ClientHello.decode(v.HRR_CLIENT_HELLO1[4:], dtls=False)
    fixed = client_hello_fixed_part(hello1)
    cookie = decode_cookie(ServerHello.decode(v.HELLO_RETRY_REQUEST[4:]).get(ExtensionType.cookie))
    server._state = WaitClientHello2(fixed, SUITE, NamedGroup.secp256r1, transcript, cookie)
    record = bytes((22, 3, 3)) + len(v.HRR_CLIENT_HELLO2).to_bytes(2, "big")
    server.receive_data(record + v.HRR_CLIENT_HELLO2, RFC8448_TIME)
    out = server.data_to_send()
    # Byte for byte: the trace's ServerHello (its random and P-256 share, our encoding).
    sh_record = bytes((22, 3, 3, 0, len(v.HRR_SERVER_HELLO))) + v.HRR_SERVER_HELLO
    assert out[: len(sh_record)] == sh_record
    # Our encrypted flight opens under the trace's server handshake traffic key: the
    # transcript through the ServerHello (message_hash first) is the trace's.
    key, iv = KeySchedule.for_suite(suite_info(SUITE)).traffic_keys(v.HRR_SERVER_HS_SECRET)
    reader = RecordProtection(Aead(AeadAlgorithm.AES_128_GCM, key), iv)
    rest = out[len(sh_record) :]
    content_type, ee = reader.open(rest[:5], rest[5 : 5 + int.from_bytes(rest[3:5], "big")])
    assert content_type == 22 and ee[0] == 8


def test_stateless_gate_keeps_the_tickets_suite() -> None:
    # The ticket is for AES-256-GCM-SHA384; the server prefers AES-128-GCM-SHA256: the
    # stateless HRR must choose the ticket's suite, or the PSK's hash would not match.
    suite = CipherSuite.TLS_AES_256_GCM_SHA384
    scfg = server_config(stateless=True)
    ticket = first_ticket(scfg, client_config(cipher_suites=(suite,)))
    gate = StatelessGate(scfg)
    client = ClientConnection(client_config(session_ticket=ticket))
    client.start(NOW)
    reply = gate.receive(client.data_to_send(), "peer", NOW)
    client.receive_data(reply.data, NOW)  # type: ignore[union-attr]
    admit = gate.receive(client.data_to_send(), "peer", NOW)
    assert isinstance(admit, StreamAdmit) and admit.cipher_suite == suite
    server = ServerConnection.from_admit(scfg, admit, NOW)
    pump(server, client)
    assert client.info is not None and client.info.resumed
    assert client.info.cipher_suite == suite


def test_only_the_first_identities_are_tried() -> None:
    from dtlsgate.handshake.tls13.common import client_hello_info
    from dtlsgate.handshake.tls13.server import MAX_PSK_IDENTITIES_TRIED, ServerContext, find_psk
    from dtlsgate.wire.extensions import OfferedPsks, PskIdentity

    scfg = server_config()
    ticket = first_ticket(scfg)
    ctx = ServerContext(scfg)
    client = ClientConnection(client_config(session_ticket=ticket))
    client.start(NOW)
    hello = ClientHello.decode(client.data_to_send()[9:], dtls=False)
    info = client_hello_info(hello)
    assert info.psk is not None
    real = info.psk.identities[0]
    junk = PskIdentity(b"\x01" + bytes(40), 0)
    for position, expected in [
        (MAX_PSK_IDENTITIES_TRIED - 1, True),
        (MAX_PSK_IDENTITIES_TRIED, False),
    ]:
        identities = (junk,) * position + (real,)
        offer = OfferedPsks(identities, (bytes(32),) * len(identities))
        found = find_psk(ctx, hello, dataclasses.replace(info, psk=offer), NOW, ctx.suites)
        assert (found is not None) is expected
        if found is not None:
            assert found.index == position
