"""DTLS 1.2 session resumption, sans-I/O: session tickets (RFC 5077) sealed under a key the
cookie jar derives from its master key, the session ID cache, the abbreviated handshake of
RFC 5246 §7.3, the extended master secret rules of RFC 7627 §5.3, and every offer the server
cannot take (forged, truncated, expired, other-key tickets, an uncached session ID, another
suite or version) leading to a full handshake, never to an error."""

from __future__ import annotations

import dataclasses
import hmac
from typing import Any

import pytest
from helpers import (
    NOW,
    PSK,
    PSK_ID,
    DatagramPair,
    Link,
    client_config,
    data_events,
    make_pair,
    server_config,
)

from dtlsgate.config import SessionCache
from dtlsgate.connection.datagram import DtlsClientConnection
from dtlsgate.crypto import DeterministicProvider
from dtlsgate.errors import DecodeError, UsageError
from dtlsgate.events import HandshakeCompleted, SessionTicketReceived
from dtlsgate.gate.cookie import CookieJar
from dtlsgate.gate.datagram import Gate
from dtlsgate.handshake.dtls12.resume import (
    Dtls12Session,
    StoredSession,
    TicketKeys,
)
from dtlsgate.wire.enums import CipherSuite, ContentType, HandshakeType
from dtlsgate.wire.handshake import decode_dtls_handshake_fragments
from dtlsgate.wire.record import split_dtls_records

HT = HandshakeType
GCM128 = CipherSuite.TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256
GCM256 = CipherSuite.TLS_ECDHE_ECDSA_WITH_AES_256_GCM_SHA384


def handshake(
    server_cfg: Any, client_cfg: Any, link: Link | None = None
) -> tuple[DatagramPair, list[int]]:
    """Run a handshake; the pair and the types of the plaintext (epoch 0) handshake messages
    the server sent."""
    pair = make_pair(server_cfg, client_cfg)
    sent: list[int] = []
    link = link or Link()
    for _ in range(200):
        c_out = [d for d, _ in pair.client.datagrams_to_send()]
        pair.to_server(link.carry(c_out))
        s_out = [d for d, _ in pair.server.datagrams_to_send()] if pair.server else []
        sent += plaintext_types(s_out)
        for d in link.carry(s_out):
            pair.client.receive(d, None, pair.now)
        pair.drain()
        if not c_out and not s_out:
            timers = [t for t in (pair.client.get_timer(), pair.server and pair.server.get_timer())]
            due = [t for t in timers if t is not None]
            if not due:
                break
            pair.now = max(pair.now, min(due))
            pair.client.handle_timer(pair.now)
            if pair.server is not None:
                pair.server.handle_timer(pair.now)
    return pair, sent


def plaintext_types(datagrams: list[bytes]) -> list[int]:
    out = []
    for d in datagrams:
        for record in split_dtls_records(d):
            if record.content_type == ContentType.HANDSHAKE and record.epoch == 0:
                out += [h.msg_type for h, _ in decode_dtls_handshake_fragments(record.fragment)]
    return out


def completed(events: list[Any]) -> HandshakeCompleted:
    (done,) = [e for e in events if isinstance(e, HandshakeCompleted)]
    return done


def sessions(events: list[Any]) -> list[Dtls12Session]:
    return [e.ticket for e in events if isinstance(e, SessionTicketReceived)]


def first_session(**server_kwargs: Any) -> tuple[Dtls12Session, Any]:
    cfg = server_config(**server_kwargs)
    pair, _sent = handshake(cfg, client_config())
    assert pair.completed() and not completed(pair.client_events).resumed
    (session,) = sessions(pair.client_events)
    assert pair.client.session is session
    return session, cfg


def resume(
    server_cfg: Any, session: Dtls12Session, **client_kwargs: Any
) -> tuple[DatagramPair, list[int]]:
    pair, sent = handshake(server_cfg, client_config(session_ticket=session, **client_kwargs))
    assert pair.completed()
    return pair, sent


ABBREVIATED = [HT.SERVER_HELLO]  # then ChangeCipherSpec and Finished, in epoch 1
FULL = [HT.SERVER_HELLO, HT.CERTIFICATE, HT.SERVER_KEY_EXCHANGE, HT.SERVER_HELLO_DONE]


def test_a_ticket_resumes_on_any_server_with_the_same_master_key() -> None:
    session, _ = first_session()
    assert session.ticket and session.session_id == b""
    # A new config (another process of the fleet) with the same cookie master key.
    pair, sent = resume(server_config(), session)
    assert sent == ABBREVIATED
    assert completed(pair.client_events).resumed and completed(pair.server_events).resumed
    assert sessions(pair.client_events) == []  # the ticket is not renewed
    assert pair.client.session is session
    pair.client.send(b"ping")
    pair.run()
    assert data_events(pair.server_events) == [b"ping"]


def test_the_full_handshake_with_tickets_ends_with_a_new_session_ticket() -> None:
    _pair, sent = handshake(server_config(), client_config())
    assert sent == [*FULL, HT.NEW_SESSION_TICKET]  # RFC 5077 §3.3: before ChangeCipherSpec


def test_the_client_keeps_the_ticket_and_lifetime_hint_the_server_sent() -> None:
    """The NewSessionTicket's ticket and ticket_lifetime_hint (RFC 5077 §3.3) reach the
    client's session, carried in its own state to the server's Finished."""
    session, cfg = first_session(ticket_lifetime=1234)
    assert session.ticket and session.ticket_lifetime_hint == 1234 == cfg.ticket_lifetime
    assert session.received_at == NOW


def test_a_session_id_resumes_from_the_cache() -> None:
    session, cfg = first_session(session_tickets=0)
    assert session.ticket == b"" and len(session.session_id) == 32
    assert cfg.session_cache is not None and len(cfg.session_cache) == 1
    pair, sent = resume(cfg, session)
    assert sent == ABBREVIATED
    assert completed(pair.server_events).resumed
    # Another server has no such session in its cache: a full handshake. (Its provider
    # seeded apart: the same seed would draw the very session ID it is offered.)
    other = server_config(session_tickets=0, provider=DeterministicProvider(b"server 2"))
    pair, sent = resume(other, session)
    assert sent == FULL and not completed(pair.client_events).resumed


def test_a_fully_stateless_server_gives_no_session() -> None:
    cfg = server_config(session_tickets=0, session_cache_size=0)
    assert cfg.session_cache is None
    pair, _ = handshake(cfg, client_config())
    assert pair.completed() and sessions(pair.client_events) == []
    assert pair.client.session is None


def test_psk_and_alpn_sessions_resume() -> None:
    psk_server = dict(key_type=None, psk={PSK_ID: PSK}, alpn_protocols=(b"coap",))
    psk_client = dict(
        psk=PSK,
        psk_identity=PSK_ID,
        cipher_suites=(CipherSuite.TLS_PSK_WITH_AES_128_CCM_8,),
        alpn_protocols=(b"coap",),
    )
    pair, _ = handshake(server_config(**psk_server), client_config(**psk_client))
    (session,) = sessions(pair.client_events)
    pair, sent = handshake(
        server_config(**psk_server), client_config(session_ticket=session, **psk_client)
    )
    done = completed(pair.server_events)
    assert sent == ABBREVIATED and done.resumed
    assert done.psk_identity == PSK_ID and done.alpn_protocol == b"coap"
    # A session of a PSK identity the server no longer has: a full handshake.
    gone = stored_from(session, psk_identity=b"withdrawn")
    offer = replaced(session, ticket=sealed(gone, **psk_server))
    pair, sent = handshake(
        server_config(**psk_server), client_config(session_ticket=offer, **psk_client)
    )
    assert pair.completed() and HT.SERVER_HELLO_DONE in sent


@pytest.mark.parametrize("seed", range(4))
def test_resumption_survives_loss_and_reordering(seed: int) -> None:
    session, _ = first_session()
    link = Link(seed=seed, loss=0.25, dup=0.1, reorder=0.3)
    pair, _ = handshake(server_config(), client_config(session_ticket=session), link)
    assert pair.completed() and completed(pair.client_events).resumed


# ---- offers the server cannot take: a full handshake each ----------------------------------------


def replaced(session: Dtls12Session, **changes: Any) -> Dtls12Session:
    return dataclasses.replace(session, **changes)


def sealed(
    stored: StoredSession, *, jar: CookieJar | None = None, now: float = NOW, **kwargs: Any
) -> bytes:
    if jar is not None:
        kwargs["cookie_jar"] = jar
    return TicketKeys(server_config(**kwargs)).seal(stored, bytes(12), now)


def stored_from(session: Dtls12Session, **changes: Any) -> StoredSession:
    base = StoredSession(
        session.cipher_suite,
        int(NOW),
        7200,
        session.extended_master_secret,
        session.master_secret,
        session.server_name,
        None,
        session.peer_certificates,
    )
    return dataclasses.replace(base, **changes)


def hostile_offers() -> dict[str, Any]:
    def forged(s: Dtls12Session) -> Dtls12Session:
        t = bytearray(s.ticket)
        t[-1] ^= 1
        return replaced(s, ticket=bytes(t))

    return {
        "forged": forged,
        "truncated": lambda s: replaced(s, ticket=s.ticket[:40]),
        # Its format byte, current key epoch and 4 bytes: shorter than a ticket's head,
        # nonce and tag, refused before the AEAD is asked (which takes 12-byte nonces only).
        "shorter-than-a-ticket": lambda s: replaced(s, ticket=s.ticket[:9]),
        "garbage": lambda s: replaced(s, ticket=b"\x02" + bytes(60)),
        "other-key": lambda s: replaced(
            s, ticket=sealed(stored_from(s), jar=CookieJar(b"\x01" * 32))
        ),
        "expired": lambda s: replaced(s, ticket=sealed(stored_from(s, issued_at=int(NOW) - 7200))),
        "from-the-future": lambda s: replaced(
            s, ticket=sealed(stored_from(s, issued_at=int(NOW) + 60))
        ),
        "old-key-epoch": lambda s: replaced(s, ticket=sealed(stored_from(s), now=NOW - 3 * 7200)),
        "other-version": lambda s: replaced(s, ticket=sealed(stored_from(s, version=0xFEFF))),
        "other-suite": lambda s: replaced(
            s, ticket=sealed(stored_from(s, suite=GCM256)), cipher_suite=GCM256
        ),
        # RFC 5246 §7.4.1.2: the session's suite (in the ticket) is not in this
        # ClientHello's cipher_suites (GCM128 and GCM256).
        "suite-not-offered": lambda s: replaced(
            s,
            ticket=sealed(
                stored_from(s, suite=CipherSuite.TLS_ECDHE_ECDSA_WITH_CHACHA20_POLY1305_SHA256)
            ),
        ),
        "tls13-suite": lambda s: replaced(
            s, ticket=sealed(stored_from(s, suite=CipherSuite.TLS_AES_128_GCM_SHA256))
        ),
        "no-extended-master-secret": lambda s: replaced(
            s, ticket=sealed(stored_from(s, extended_master_secret=False))
        ),
        "other-server-name": lambda s: replaced(
            s, ticket=sealed(stored_from(s, server_name="elsewhere"))
        ),
        "uncached-session-id": lambda s: replaced(s, ticket=b"", session_id=bytes(range(32))),
    }


@pytest.mark.parametrize("case", list(hostile_offers()))
def test_an_offer_the_server_cannot_take_gets_a_full_handshake(case: str) -> None:
    session, _ = first_session()
    offer = hostile_offers()[case](session)
    server_kwargs: dict[str, Any] = {}
    if case == "other-suite":
        # The server allows only GCM128 now; the session names GCM256, which the client
        # still offers.
        server_kwargs["cipher_suites"] = (GCM128,)
    pair, sent = handshake(
        server_config(**server_kwargs),
        client_config(session_ticket=offer, cipher_suites=(GCM128, GCM256)),
    )
    assert pair.completed(), case
    assert sent == [*FULL, HT.NEW_SESSION_TICKET], case
    assert not completed(pair.client_events).resumed
    assert not completed(pair.server_events).resumed
    (new,) = sessions(pair.client_events)
    assert new.ticket and new.master_secret != session.master_secret


def test_the_session_of_a_suite_no_longer_offered_is_not_offered() -> None:
    session, _ = first_session()
    other = client_config(session_ticket=session, cipher_suites=(GCM256,))
    conn = DtlsClientConnection(other)
    conn.connect(NOW)
    assert conn.session is None


def test_a_ticket_opens_for_its_lifetime_across_a_key_rotation() -> None:
    cfg = server_config(ticket_lifetime=600)
    stored = StoredSession(GCM128, int(NOW), 600, True, bytes(48), None, None, ())
    keys = TicketKeys(cfg)
    ticket = keys.seal(stored, bytes(12), NOW)
    assert keys.open(ticket, NOW + 599) == stored  # the next key epoch, maybe
    assert keys.open(ticket, NOW + 600) is None
    # A shorter lifetime configured since applies to tickets issued before.
    shorter = server_config(ticket_lifetime=300, cookie_jar=cfg.cookie_jar)
    assert TicketKeys(shorter).open(ticket, NOW + 400) is None


# ---- the client's side: the server must resume the session it was offered -----------------------


def test_a_server_resuming_with_another_suite_is_refused() -> None:
    from dtlsgate.errors import IllegalParameter

    session, _ = first_session()
    liar = replaced(session, cipher_suite=GCM256)
    cfg = client_config(session_ticket=liar, cipher_suites=(GCM128, GCM256))
    # The server opens the ticket (GCM128) and resumes it; the client remembered GCM256.
    with pytest.raises(IllegalParameter):
        handshake(server_config(), cfg)


def test_ems_must_match_the_resumed_sessions() -> None:
    from dtlsgate.errors import HandshakeFailure

    session, _ = first_session()
    # RFC 7627 §5.3: the client remembers a session without the extended master secret;
    # the server resumes with it.
    liar = replaced(session, extended_master_secret=False)
    with pytest.raises(HandshakeFailure):
        handshake(server_config(), client_config(session_ticket=liar))


def test_a_ticket_renewed_on_resumption_is_the_one_kept() -> None:
    """RFC 5077 §3.1 (Figure 2): a server resuming from a ticket may send a new one, a
    NewSessionTicket between its ServerHello and ChangeCipherSpec (OpenSSL does; ours does
    not). The client takes it into the transcript its Finished check covers, answers, and
    reports the session with that ticket (and no session ID) to resume next time."""
    from dtlsgate.crypto.prf import verify_data
    from dtlsgate.crypto.suites import suite_info
    from dtlsgate.handshake.dtls12.negotiate import keys_from_master
    from dtlsgate.record.dtls12 import RecordLayer
    from dtlsgate.wire.enums import ExtensionType
    from dtlsgate.wire.extensions import Extension
    from dtlsgate.wire.handshake import encode_dtls_handshake
    from dtlsgate.wire.messages import ClientHello, ServerHello
    from dtlsgate.wire.messages12 import NewSessionTicket12
    from dtlsgate.wire.record import encode_dtls_record

    session, _ = first_session()
    client = DtlsClientConnection(client_config(session_ticket=session))
    client.connect(NOW)
    ((datagram, _),) = client.datagrams_to_send()
    ((_, client_hello),) = decode_dtls_handshake_fragments(
        next(split_dtls_records(datagram)).fragment
    )
    hello = ClientHello.decode(client_hello[12:], dtls=True)
    # The server's side of an abbreviated handshake with a new ticket, made by hand.
    random = bytes(range(32))
    extensions = (
        Extension(ExtensionType.extended_master_secret, b""),
        Extension(ExtensionType.session_ticket, b""),
    )
    sh = ServerHello(0xFEFD, random, hello.session_id, session.cipher_suite, 0, extensions)
    messages = (
        encode_dtls_handshake(HT.SERVER_HELLO, sh.encode(), 0),
        encode_dtls_handshake(HT.NEW_SESSION_TICKET, NewSessionTicket12(600, b"new").encode(), 1),
    )
    suite = suite_info(session.cipher_suite)
    provider = DeterministicProvider(b"server")
    keys = keys_from_master(provider, suite, session.master_secret, hello.random, random)
    transcript = suite.hash.new(client_hello + b"".join(messages)).digest()
    finished = verify_data(suite.hash, session.master_secret, False, transcript)
    server_records = RecordLayer()
    server_records.install_write(1, keys.server_write)
    flight = (
        encode_dtls_record(ContentType.HANDSHAKE, 0xFEFD, 0, 0, b"".join(messages))
        + encode_dtls_record(ContentType.CHANGE_CIPHER_SPEC, 0xFEFD, 0, 1, b"\x01")
        + server_records.protect(
            ContentType.HANDSHAKE, encode_dtls_handshake(HT.FINISHED, finished, 2), 1
        )
    )
    client.receive(flight, None, NOW + 1)
    got = []
    while (event := client.next_event()) is not None:
        got.append(event)
    assert completed(got).resumed
    (renewed,) = sessions(got)
    assert (renewed.ticket, renewed.ticket_lifetime_hint) == (b"new", 600)
    assert renewed.session_id == b"" and renewed.master_secret == session.master_secret
    assert client.session is renewed
    assert client.datagrams_to_send()  # our ChangeCipherSpec and Finished


# ---- saving and restoring a session; the cache ----------------------------------------------------


def test_a_session_saves_and_restores() -> None:
    session, _ = first_session()
    assert Dtls12Session.decode(session.encode()) == replaced(
        session, received_at=float(int(session.received_at))
    )
    restored = Dtls12Session.from_pem(session.to_pem())
    _pair, sent = resume(server_config(), restored)
    assert sent == ABBREVIATED
    for bad in (b"", b"garbage", session.encode()[:-1], session.encode() + b"\x00"):
        with pytest.raises(DecodeError):
            Dtls12Session.decode(bad)
    with pytest.raises(DecodeError):
        Dtls12Session.from_pem("no session here")


def test_a_stored_session_with_every_field_encodes_and_decodes() -> None:
    """The state a ticket or the cache holds, with a server name, a PSK identity and a
    client's chain of two certificates (each its own vector in the chain's vector)."""
    stored = StoredSession(
        GCM128, int(NOW), 600, True, bytes(range(48)), "example.com", b"id", (b"a" * 3, b"b")
    )
    encoded = stored.encode()
    assert encoded.endswith(b"\x00\x00\x0a" + b"\x00\x00\x03aaa" + b"\x00\x00\x01b")
    assert StoredSession.decode(encoded) == stored
    with pytest.raises(UsageError):
        dataclasses.replace(stored, master_secret=bytes(47)).encode()


def test_the_session_cache_is_bounded_least_recently_used_out_first() -> None:
    cache = SessionCache(2, 10)
    cache.put(b"a", b"1", 0)
    cache.put(b"b", b"2", 0)
    assert cache.get(b"a", 1) == b"1"  # a is now the most recently used
    cache.put(b"c", b"3", 1)
    assert cache.get(b"b", 1) is None and cache.get(b"a", 1) == b"1" and len(cache) == 2
    assert cache.get(b"c", 11) is None  # expired, and gone
    assert len(cache) == 1
    for size, lifetime in ((0, 1), (1, 0)):
        with pytest.raises(UsageError):
            SessionCache(size, lifetime)


def test_derive_key_keeps_the_cookie_secrets_label_to_itself() -> None:
    from dtlsgate.gate import cookie

    jar = CookieJar(bytes(32))
    for label in (cookie._SECRET_LABEL, b""):  # the cookies' label, or none
        with pytest.raises(UsageError):
            jar.derive_key(label, 0)
    # HMAC-SHA256(master_key, label | epoch as 8 bytes): what every server of a fleet
    # derives alike, whichever release it runs.
    assert jar.derive_key(b"x", 2) == hmac.digest(bytes(32), b"x" + bytes(7) + b"\x02", "sha256")
    assert (
        jar.derive_key(b"x", 1)
        != jar.derive_key(b"x", 2)
        != CookieJar(b"\x01" * 32).derive_key(b"x", 2)
    )


def test_a_resuming_client_hello_goes_through_the_cookie_exchange() -> None:
    """Issue 15 item 5: the gate stays as it is. A ClientHello offering a ticket is
    answered with a HelloVerifyRequest like any other, and admitted only with its cookie."""
    session, _ = first_session()
    pair, sent = resume(server_config(), session)
    assert sent == ABBREVIATED
    assert pair.gate.stats["reply"] == 1 and pair.gate.stats["admit"] == 1


def test_key_log_lines_full_and_resumed_only_where_a_callback_is() -> None:
    """Each side with a key log callback writes one CLIENT_RANDOM line (NSS format) per
    handshake, full or abbreviated, and both name the same master secret. The gate's
    shared context makes no KeyLog action (``log_keys`` off); a server connection with a
    callback reads its ``logging_keys()`` variant, which shares the prepared data."""
    cfg = server_config()
    gate = Gate(cfg)
    client_lines: list[str] = []
    server_lines: list[str] = []
    pair = make_pair(
        cfg, client_config(), gate=gate, keylogs=(client_lines.append, server_lines.append)
    )
    assert pair.run() and pair.completed()
    (session,) = sessions(pair.client_events)
    resumed = make_pair(
        cfg,
        client_config(session_ticket=session),
        gate=gate,
        keylogs=(client_lines.append, server_lines.append),
    )
    assert resumed.run() and completed(resumed.client_events).resumed
    assert client_lines == server_lines
    assert len(client_lines) == 2
    (label, random, secret), (label2, random2, secret2) = (line.split(" ") for line in client_lines)
    assert (label, label2) == ("CLIENT_RANDOM", "CLIENT_RANDOM")
    assert len(bytes.fromhex(random)) == len(bytes.fromhex(random2)) == 32
    assert secret == secret2 and len(bytes.fromhex(secret)) == 48  # the same session

    shared = gate.dtls12_context
    logging = shared.logging_keys()
    assert not shared.log_keys and logging.log_keys
    assert shared.logging_keys() is logging and logging.logging_keys() is logging
    assert (logging.config, logging.tickets, logging.preferences) == (
        shared.config,
        shared.tickets,
        shared.preferences,
    )
    # Without callbacks nothing is logged, and the handshake is the same.
    quiet = make_pair(cfg, client_config(), gate=gate)
    assert quiet.run() and quiet.completed()
    assert len(client_lines) == 2
