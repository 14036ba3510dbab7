"""The datagram gate speaking DTLS 1.3 (RFC 9147 §5.1): a ClientHello offering DTLS 1.3
gets a stateless HelloRetryRequest whose cookie carries Hash(ClientHello1) and the server's
choice; ClientHello2 with that cookie is admitted and the server rebuilds the transcript
from it alone; a DTLS 1.2-only ClientHello still gets a HelloVerifyRequest."""

from __future__ import annotations

import dataclasses
import re

import pytest
from helpers import (
    CLIENT,
    NOW,
    SERVER,
    Link,
    client_config,
    data_events,
    make_pair,
    make_pair13,
    server_config,
)

from dtlsgate.connection.datagram13 import Dtls13ClientConnection, Dtls13ServerConnection
from dtlsgate.crypto import DeterministicProvider
from dtlsgate.errors import UsageError
from dtlsgate.events import HandshakeCompleted
from dtlsgate.gate import datagram as gate_module
from dtlsgate.gate.cookie import CookieJar
from dtlsgate.gate.datagram import Drop, DropReason, Dtls13Admit, Gate, Reply
from dtlsgate.wire.enums import ExtensionType, HandshakeType, NamedGroup, ProtocolVersion
from dtlsgate.wire.extensions import Extension, decode_supported_versions_sh
from dtlsgate.wire.handshake import encode_dtls_handshake
from dtlsgate.wire.messages import ClientHello, ServerHello
from dtlsgate.wire.record import encode_dtls_record


def first_client_hello(**kwargs: object) -> bytes:
    client = Dtls13ClientConnection(client_config(**kwargs), SERVER)  # type: ignore[arg-type]
    client.connect(NOW)
    ((datagram, _),) = client.datagrams_to_send()
    return datagram


def test_hello_retry_request_is_stateless_and_small() -> None:
    gate = Gate(server_config())
    hello = first_client_hello()
    result = gate.receive(hello, CLIENT, NOW)
    assert isinstance(result, Reply)
    reply = result.data
    assert len(reply) <= len(hello)  # never amplify
    assert reply[0] == 22 and reply[3:5] == b"\x00\x00"  # plaintext handshake, epoch 0
    assert reply[13] == HandshakeType.SERVER_HELLO
    sh = ServerHello.decode(reply[25:])
    assert sh.is_hello_retry_request and sh.legacy_version == ProtocolVersion.DTLS12
    versions = sh.get(ExtensionType.supported_versions)
    assert versions is not None and decode_supported_versions_sh(versions) == 0xFEFC
    assert sh.get(ExtensionType.cookie) is not None
    assert gate.replies == 1 and gate.admits == 0


@pytest.mark.parametrize("groups", [None, (NamedGroup.secp256r1,)])
def test_gated_handshake(groups: tuple[NamedGroup, ...] | None) -> None:
    # With the server preferring P-256, the HRR also asks for a key share.
    pair = make_pair13(server_config(groups=groups), client_config(), gated=True)
    assert pair.run()
    assert pair.completed() and pair.gate is not None and pair.gate.admits == 1
    done = next(e for e in pair.client_events if isinstance(e, HandshakeCompleted))
    assert done.hello_retry and done.version == ProtocolVersion.DTLS13
    assert all(len(r) <= 300 for r in pair.replies)
    pair.client.send(b"ping")
    assert pair.server is not None
    pair.server.send(b"pong")
    assert pair.run()
    assert data_events(pair.server_events) == [b"ping"]
    assert data_events(pair.client_events) == [b"pong"]


def test_gated_handshake_lossy() -> None:
    for seed in range(4):
        pair = make_pair13(server_config(), client_config(), gated=True)
        assert pair.run(Link(seed=seed, loss=0.2, dup=0.1, reorder=0.3), rounds=400)
        assert pair.completed()


def test_acknowledging_a_duplicate_hello_retry_request_leaves_the_server_hello_unacknowledged() -> (
    None
):
    """Issue 12: the gate numbers its HRR record as the ClientHello1 it answers (0 here);
    the server's plaintext records must not reuse that number, or the client's ACK of a
    duplicate HRR (RFC 9147 §7) acknowledges a lost ServerHello, which the server then
    never sends again while the client waits for it."""
    pair = make_pair13(server_config(), client_config(), gated=True)
    ((ch1, _),) = pair.client.datagrams_to_send()
    pair.to_server([ch1])
    (hrr,) = pair.replies
    ((ch2, _),) = pair.client.datagrams_to_send()
    pair.to_server([ch2])
    server = pair.server
    assert isinstance(server, Dtls13ServerConnection)
    flight = [d for d, _ in server.datagrams_to_send()]
    assert flight[0][0] == 22  # the ServerHello, in plaintext: lost
    pair.client.receive(hrr, SERVER, NOW + 0.5)  # a late duplicate of the HRR
    ack = [d for d, _ in pair.client.datagrams_to_send()]
    assert [d[0] for d in ack] == [26]  # a plaintext ACK record: of the HRR's record
    pair.to_server(ack)
    for d in flight[1:]:  # what the client cannot open before the ServerHello
        pair.client.receive(d, SERVER, NOW + 0.5)
    timer = server.get_timer()
    assert timer is not None
    server.handle_timer(timer)
    for d, _ in server.datagrams_to_send():
        pair.client.receive(d, SERVER, timer)
    assert pair.client.server_answered and pair.client.state_name != "WaitServerHello"


def test_admitted_by_another_process_sharing_the_master_key() -> None:
    # Two gates (two processes of a fleet) with the same CookieJar master key.
    key = bytes(range(32))
    one = Gate(server_config(cookie_jar=CookieJar(key)))
    other_cfg = server_config(cookie_jar=CookieJar(key))
    other = Gate(other_cfg)
    client = Dtls13ClientConnection(client_config(), SERVER)
    client.connect(NOW)
    ((hello, _),) = client.datagrams_to_send()
    reply = one.receive(hello, CLIENT, NOW)
    assert isinstance(reply, Reply)
    client.receive(reply.data, SERVER, NOW)
    ((hello2, _),) = client.datagrams_to_send()
    admit = other.receive(hello2, CLIENT, NOW)
    assert isinstance(admit, Dtls13Admit)
    server = Dtls13ServerConnection.from_admit(admit, other_cfg)
    server.start(NOW)
    for datagram, _ in server.datagrams_to_send():
        client.receive(datagram, SERVER, NOW)
    for datagram, _ in client.datagrams_to_send():
        server.receive(datagram, CLIENT, NOW)
    assert client.handshake_complete and server.handshake_complete


def hello2_for(gate: Gate, now: float = NOW) -> bytes:
    client = Dtls13ClientConnection(client_config(), SERVER)
    client.connect(now)
    ((hello, _),) = client.datagrams_to_send()
    reply = gate.receive(hello, CLIENT, now)
    assert isinstance(reply, Reply)
    client.receive(reply.data, SERVER, now)
    ((hello2, _),) = client.datagrams_to_send()
    return hello2


def test_cookie_refusals() -> None:
    gate = Gate(server_config())
    hello2 = hello2_for(gate)
    # From another address, too late, or forged: dropped, nothing allocated.
    assert gate.receive(hello2, ("192.0.2.99", 1), NOW) == Drop(DropReason.COOKIE_INVALID)
    assert gate.receive(hello2, CLIENT, NOW + 3600) == Drop(DropReason.COOKIE_INVALID)
    forged = bytearray(hello2)
    forged[-40] ^= 1  # inside the ClientHello's last extensions, where the cookie is
    assert isinstance(gate.receive(bytes(forged), CLIENT, NOW), Drop)
    # Another master key (rotated out of the fleet): no.
    assert Gate(server_config(cookie_jar=CookieJar(b"\x01" * 32))).receive(
        hello2, CLIENT, NOW
    ) == Drop(DropReason.COOKIE_INVALID)
    assert gate.admits == 0
    assert isinstance(gate.receive(hello2, CLIENT, NOW), Dtls13Admit)


def test_application_cookie_callbacks() -> None:
    """The application's part of the cookie (``stateless_cookie_generate``/``_verify``, as
    for TLS 1.3's stateless HelloRetryRequest) rides inside the jar's cookie: made for the
    peer on ClientHello1, handed back on ClientHello2; refused, the ClientHello2 is dropped."""
    seen: list[tuple[object, bytes]] = []
    verdict = [False]

    def generate(peer: object) -> bytes:
        return b"app:" + repr(peer).encode()

    def verify(peer: object, cookie: bytes) -> bool:
        seen.append((peer, cookie))
        return verdict[0]

    config = server_config(stateless_cookie_generate=generate, stateless_cookie_verify=verify)
    gate = Gate(config)
    hello2 = hello2_for(gate)
    assert gate.receive(hello2, CLIENT, NOW) == Drop(DropReason.COOKIE_INVALID)
    assert seen == [(CLIENT, b"app:" + repr(CLIENT).encode())] and gate.admits == 0
    verdict[0] = True
    admit = gate.receive(hello2, CLIENT, NOW)
    assert isinstance(admit, Dtls13Admit) and len(seen) == 2
    # A cookie the jar refuses never reaches the application's verify.
    assert gate.receive(hello2, ("192.0.2.99", 1), NOW) == Drop(DropReason.COOKIE_INVALID)
    assert len(seen) == 2
    for bad in (lambda peer: "text", lambda peer: bytes(1025)):
        with pytest.raises(UsageError, match="stateless_cookie_generate"):
            Gate(
                server_config(stateless_cookie_generate=bad, stateless_cookie_verify=verify)
            ).receive(first_client_hello(), CLIENT, NOW)
    wrong = server_config(
        stateless_cookie_generate=generate, stateless_cookie_verify=lambda p, c: 1
    )
    with pytest.raises(UsageError, match="stateless_cookie_verify"):
        Gate(wrong).receive(hello2_for(Gate(wrong)), CLIENT, NOW)


def test_dtls12_only_client_still_gets_hello_verify_request() -> None:
    pair = make_pair(server_config(), client_config())
    assert pair.run()
    assert pair.completed()
    assert pair.client.info is not None and pair.client.info.version == ProtocolVersion.DTLS12
    # The gate (both versions on) answered it with a HelloVerifyRequest, not an HRR.
    assert [r[13] for r in pair.replies] == [HandshakeType.HELLO_VERIFY_REQUEST]


def test_versions_pinned() -> None:
    only12 = Gate(server_config(dtls_versions=(0xFEFD,)))
    hello = first_client_hello()
    # A DTLS 1.3 ClientHello to a DTLS 1.2-pinned gate: judged as DTLS 1.2 (HVR).
    result = only12.receive(hello, CLIENT, NOW)
    assert isinstance(result, Reply) and result.data[13] == HandshakeType.HELLO_VERIFY_REQUEST
    only13 = Gate(server_config(dtls_versions=(0xFEFC,)))
    pair = make_pair(server_config(), client_config())
    ((hello12, _),) = pair.client.datagrams_to_send()
    assert only13.receive(hello12, CLIENT, NOW) == Drop(DropReason.VERSION_DISABLED)


def test_flood_of_dtls13_hellos_keeps_nothing() -> None:
    """Distinct DTLS 1.3 ClientHellos (their randoms differ) from distinct spoofed
    addresses, with the cyclic garbage collector off: memory stays flat, so nothing is kept
    and nothing is left to the collector (no reference cycle per call). 20,000 here, to keep
    the suite fast; bench/flood13.py runs the issue's 200,000 the same way."""
    import gc
    import tracemalloc

    gate = Gate(server_config(provider=DeterministicProvider(b"s")))
    template = bytearray(first_client_hello())
    random_at = 13 + 12 + 2  # the ClientHello random inside the datagram

    def flood(start: int, count: int) -> None:
        for i in range(start, start + count):
            template[random_at : random_at + 4] = i.to_bytes(4, "big")
            peer = (f"10.{(i >> 16) & 255}.{(i >> 8) & 255}.{i & 255}", 1024 + i % 60000)
            assert type(gate.receive(bytes(template), peer, NOW + i / 100_000)) is Reply

    # Warm up: the DTLS 1.3 context, the jar's secret, interned strings, and CPython's free
    # lists (up to 2,000 tuples of each size are kept for reuse, still allocated for
    # tracemalloc until a full collection clears them: what looked like a reference cycle
    # reclaimed by the collector, and is not one; DEBUG_SAVEALL finds no garbage).
    gc.collect()
    gc.disable()
    flood(0, 5000)
    tracemalloc.start()
    try:
        before = tracemalloc.get_traced_memory()[0]
        flood(5000, 20_000)
        grown = tracemalloc.get_traced_memory()[0] - before
    finally:
        tracemalloc.stop()
        gc.enable()
    assert grown < 16 * 1024, f"gate grew by {grown} bytes"
    assert gate.replies == 25_000


def test_hello_retry_request_records_are_the_codecs() -> None:
    """The gate's HelloRetryRequest records, made once per shape and filled in per reply,
    are byte for byte what the codec makes for each (sequence number, session_id, suite,
    group asked for or not, cookie), whichever shape came first."""
    from dtlsgate.gate.dtls13 import DtlsGate13
    from dtlsgate.handshake.tls13.common import DTLS_VERSIONS, hello_retry_request
    from dtlsgate.wire.enums import CipherSuite, ContentType
    from dtlsgate.wire.handshake import encode_dtls_handshake
    from dtlsgate.wire.record import encode_dtls_record

    gate13 = DtlsGate13(server_config())
    suites = (CipherSuite.TLS_AES_128_GCM_SHA256, CipherSuite.TLS_CHACHA20_POLY1305_SHA256)
    groups = (None, NamedGroup.x25519, NamedGroup.secp256r1)
    shapes = [
        (suite, group, sid_len, cookie_len, seq)
        for suite in suites
        for group in groups
        for sid_len in (0, 1, 32)
        for cookie_len in (1, 70, 255)
        for seq in (0, 1, 2**48 - 1)
    ]
    for round_ in range(2):  # the second round reads the records the first one made
        for n, (suite, group, sid_len, cookie_len, seq) in enumerate(shapes):
            sid, cookie = bytes([n]) * sid_len, bytes([n + round_ + 1]) * cookie_len
            hrr = hello_retry_request(sid, suite, group, cookie, DTLS_VERSIONS)
            message = encode_dtls_handshake(HandshakeType.SERVER_HELLO, hrr[4:], 0)
            expected = encode_dtls_record(ContentType.HANDSHAKE, 0xFEFD, 0, seq, message)
            got = gate13.hello_retry_request(seq, sid, suite, group, cookie)
            assert got == expected, (round_, n)
    with pytest.raises(UsageError):  # as encode_dtls_record refuses it
        gate13.hello_retry_request(2**48, b"", suites[0], None, b"c")


def test_cookie_states_are_the_encoders() -> None:
    """The gates' cookie states (`CookieStates`, the DTLS 1.3 gate's and the stream
    gate's), their bytes before the digest made once per (suite, group, key share
    requested) and kept, are byte for byte `encode_cookie_state`'s for each (suite, group,
    requested) and Hash(ClientHello1) by the suite's hash, whichever came first; they
    decode to those fields."""
    from dtlsgate.crypto.suites import suite_info
    from dtlsgate.gate.dtls13 import DtlsGate13
    from dtlsgate.gate.stream import CookieState, StatelessGate, encode_cookie_state
    from dtlsgate.wire.enums import CipherSuite

    suites = (
        CipherSuite.TLS_AES_128_GCM_SHA256,
        CipherSuite.TLS_AES_256_GCM_SHA384,
        CipherSuite.TLS_CHACHA20_POLY1305_SHA256,
    )
    groups = (NamedGroup.x25519, NamedGroup.secp256r1, NamedGroup.secp384r1)
    shapes = [
        (suite, group, requested)
        for requested in (False, True)
        for group in groups
        for suite in suites
    ]
    for states in (
        DtlsGate13(server_config()).states,
        StatelessGate(server_config(stateless=True)).states,
    ):
        for round_ in range(2):  # the second round reads the heads the first one made
            for n, (suite, group, requested) in enumerate(shapes):
                message = bytes([n + round_]) * (100 + n)
                digest = suite_info(suite).hash.digest(message)
                state = states.cookie_state(suite, group, requested, message)
                expected = encode_cookie_state(suite, group, requested, digest, b"")
                assert state == expected, (round_, n)
                decoded = CookieState.decode(state)
                assert decoded == CookieState(suite, group, requested, digest, b"")


def test_server_engine_remembers_its_choice_per_offer_and_its_retry_request_per_shape() -> None:
    """The engine's `choose` without a PSK is made once per offer (``ServerContext.choices``):
    another ClientHello with the same offer (its own random and key shares) gets the same
    Choice; a refused offer raises each time and is not kept; at most MAX_CHOICES offers are
    kept (a full memo starts over). `ServerContext.retry_request` is `hello_retry_request`
    byte for byte for every session_id length and cookies of two lengths."""
    import itertools

    from dtlsgate.errors import HandshakeFailure
    from dtlsgate.handshake.tls13.common import (
        DTLS_VERSIONS,
        ClientHelloInfo,
        decode_client_hello,
        hello_retry_request,
    )
    from dtlsgate.handshake.tls13.server import MAX_CHOICES, ServerContext, choose
    from dtlsgate.wire.enums import CipherSuite

    ctx = ServerContext(server_config(), versions=DTLS_VERSIONS)
    suites = [s for s in CipherSuite if s >> 8 == 0x13]
    orders = list(itertools.permutations(suites))[: MAX_CHOICES + 1]

    def decoded(**kwargs: object) -> tuple[ClientHello, ClientHelloInfo]:
        return decode_client_hello(first_client_hello(**kwargs)[25:], DTLS_VERSIONS)

    first = choose(ctx, *decoded(cipher_suites=orders[0]), None)
    hello, info = decoded(cipher_suites=orders[0])
    assert choose(ctx, hello, info, None) is first and len(ctx.choices) == 1
    fresh = ServerContext(server_config(), versions=DTLS_VERSIONS)
    assert choose(fresh, hello, info, None) == first
    for n, order in enumerate(orders[1:], 2):
        choose(ctx, *decoded(cipher_suites=order), None)
        assert len(ctx.choices) == (n - 1) % MAX_CHOICES + 1  # full: started over
    refused = ServerContext(server_config(groups=(NamedGroup.x448,)), versions=DTLS_VERSIONS)
    hello, info = decoded(groups=(NamedGroup.x25519,))
    for _ in range(2):
        with pytest.raises(HandshakeFailure):
            choose(refused, hello, info, None)
    assert len(refused.choices) == 0

    for length, cookie in itertools.product(range(33), (b"\x01" * 40, b"\x02" * 77)):
        session_id = bytes(range(1, length + 1))
        for suite, group in ((0x1301, None), (0x1302, NamedGroup.secp256r1)):
            expected = hello_retry_request(session_id, suite, group, cookie, DTLS_VERSIONS)
            assert ctx.retry_request(session_id, suite, group, cookie) == expected


def test_choices_are_remembered_per_offer_and_bounded() -> None:
    """The gate decides the server's choice once per offer (`DtlsGate13.choose`): each is
    the engine's `choose` on the decoded ClientHello, a gate that remembers it answers
    byte for byte as a fresh gate does, a refused offer stays refused, at most MAX_CHOICES
    offers are kept (a full memo starts over), and an offer of more than
    MAX_OFFER_BYTES bytes is not kept."""
    import itertools

    from dtlsgate.gate.dtls13 import MAX_CHOICES, MAX_OFFER_BYTES, DtlsGate13
    from dtlsgate.handshake.tls13.common import DTLS_VERSIONS, decode_client_hello
    from dtlsgate.handshake.tls13.server import Choice, choose
    from dtlsgate.wire.client_hello13_peek import peek_client_hello13
    from dtlsgate.wire.enums import CipherSuite

    suites = [s for s in CipherSuite if s >> 8 == 0x13]  # the five TLS 1.3 suites
    orders = list(itertools.permutations(suites))[: MAX_CHOICES + 8]
    hellos = [first_client_hello(cipher_suites=order) for order in orders]
    gate = Gate(server_config())
    for hello in [*hellos, *hellos[-4:]]:  # the last four again: remembered
        assert gate.receive(hello, CLIENT, NOW) == Gate(server_config()).receive(hello, CLIENT, NOW)
    gate13 = DtlsGate13(server_config())
    for n, hello in enumerate(hellos):
        body = hello[25:]
        choice = gate13.choose(peek_client_hello13(body))
        assert choice == choose(gate13.context, *decode_client_hello(body, DTLS_VERSIONS), None)
        assert gate13.choices_remembered == n % MAX_CHOICES + 1  # full: started over
    peek = peek_client_hello13(hellos[0][25:])
    choice = gate13.choose(peek)
    assert isinstance(choice, Choice) and choice.suite == suites[0]
    assert gate13.choices_remembered == len(hellos) % MAX_CHOICES + 1  # a new one again

    gate13 = DtlsGate13(server_config())
    big = peek._replace(cipher_suites=peek.cipher_suites + bytes(range(256)) * 2)
    assert len(big.cipher_suites) > MAX_OFFER_BYTES
    assert gate13.choose(big) == choice and gate13.choices_remembered == 0
    # Malformed in the offer, or not offering DTLS 1.3: judged as DTLS 1.2, not remembered.
    assert peek.groups is not None and peek.versions is not None
    assert gate13.choose(peek._replace(groups=peek.groups[1:])) is None
    assert gate13.choose(peek._replace(versions=b"\x02\xfe\xfd")) is None
    assert gate13.choices_remembered == 0

    refused = Gate(server_config(groups=(NamedGroup.x448,)))
    hello = first_client_hello(groups=(NamedGroup.x25519,))
    for _ in range(2):
        assert refused.receive(hello, CLIENT, NOW) == Drop(DropReason.CLIENT_HELLO_REFUSED)


def test_a_psk_offer_the_server_refuses_is_dropped() -> None:
    """A ClientHello1 offering a PSK is decoded in full and chosen for by the engine (its
    PSK in psk_dhe_ke mode): when that refuses it (no group in common here) the gate
    drops it as it drops any refused offer, with nothing kept."""
    gate = Gate(server_config(groups=(NamedGroup.x448,)))
    hello = first_client_hello(psk=bytes(16), psk_identity=b"id", groups=(NamedGroup.x25519,))
    assert gate.receive(hello, CLIENT, NOW) == Drop(DropReason.CLIENT_HELLO_REFUSED)
    assert gate.replies == gate.admits == 0


def test_an_offer_as_early_as_a_client_hello_allows_gets_a_hello_retry_request() -> None:
    """The gate looks for a DTLS 1.3 offer only after the random: a ClientHello whose offer
    comes as early as one can (no session_id, one cipher suite, one compression method,
    supported_versions the first extension and DTLS 1.3 its first entry, RFC 9147 §5.3)
    still gets a HelloRetryRequest, not a HelloVerifyRequest."""
    ours = ClientHello.decode(first_client_hello()[25:], dtls=True)
    assert ours.session_id == b"" and ours.extensions is not None
    earliest = dataclasses.replace(
        ours,
        cipher_suites=(0x1301,),  # TLS_AES_128_GCM_SHA256
        extensions=(
            Extension(ExtensionType.supported_versions, b"\x02\xfe\xfc"),
            *(e for e in ours.extensions if e.type != ExtensionType.supported_versions),
        ),
    )
    message = encode_dtls_handshake(HandshakeType.CLIENT_HELLO, earliest.encode(), 0)
    datagram = encode_dtls_record(22, ProtocolVersion.DTLS12, 0, 0, message)
    # Record (13) and handshake (12) headers, client_version (2), random (32), the
    # session_id's and cookie's length bytes, cipher_suites (2 + 2), compression_methods
    # (1 + 1), the extensions block's length (2), supported_versions' header (4) and the
    # length byte of its list: DTLS 1.3 is the datagram's only 0xFEFC.
    assert datagram.find(b"\xfe\xfc") == 74 and datagram.count(b"\xfe\xfc") == 1
    result = Gate(server_config()).receive(datagram, CLIENT, NOW)
    assert isinstance(result, Reply) and result.data[13] == HandshakeType.SERVER_HELLO
    assert ServerHello.decode(result.data[25:]).is_hello_retry_request


def test_the_pattern_search_runs_only_for_a_client_hello_holding_the_second_version_byte(
    monkeypatch: pytest.MonkeyPatch, openssl_client_hello: bytes
) -> None:
    """The look for a DTLS 1.3 offer first tests for DTLS 1.3's second version byte (0xFC,
    one ``memchr``): a DTLS 1.2 ClientHello without it is answered without the pattern
    search; with it (here in the random) the search decides, and an offer is still found."""
    searched: list[int] = []
    pattern = gate_module._DTLS13_VERSION

    class Spy:
        def search(self, data: bytes, pos: int) -> re.Match[bytes] | None:
            searched.append(pos)
            return pattern.search(data, pos)

    monkeypatch.setattr(gate_module, "_DTLS13_VERSION", Spy())
    gate = Gate(server_config())
    assert 0xFC not in openssl_client_hello
    result = gate.receive(openssl_client_hello, CLIENT, NOW)
    assert isinstance(result, Reply) and result.data[13] == HandshakeType.HELLO_VERIFY_REQUEST
    assert searched == []
    with_byte = bytearray(openssl_client_hello)
    with_byte[13 + 12 + 2] = 0xFC  # the first byte of the random
    result = gate.receive(bytes(with_byte), CLIENT, NOW)
    assert isinstance(result, Reply) and result.data[13] == HandshakeType.HELLO_VERIFY_REQUEST
    assert len(searched) == 1
    result = gate.receive(first_client_hello(), CLIENT, NOW)
    assert isinstance(result, Reply) and result.data[13] == HandshakeType.SERVER_HELLO
    assert len(searched) == 2


@pytest.mark.parametrize(
    "change",
    [
        {"cookie": b"c" * 20},  # RFC 9147 §5.3: legacy_cookie empty in DTLS 1.3
        {"compression_methods": b"\x01\x00"},  # RFC 8446 §4.1.2: exactly one null byte
        {"legacy_version": ProtocolVersion.DTLS13},  # RFC 9147 §5.3: {254, 253}
    ],
    ids=["legacy-cookie", "compression", "legacy-version"],
)
def test_client_hello_that_breaks_dtls13_rules_is_judged_as_dtls12(
    change: dict[str, object],
) -> None:
    """A ClientHello offering DTLS 1.3 that breaks a rule of its legacy fields is not a
    DTLS 1.3 one: a gate that also takes DTLS 1.2 answers it with a HelloVerifyRequest (a
    DTLS 1.2 client offering both sends its legacy_cookie there), one that takes DTLS 1.3
    only drops it."""
    datagram = first_client_hello()
    hello = dataclasses.replace(ClientHello.decode(datagram[25:], dtls=True), **change)  # type: ignore[arg-type]
    changed = encode_dtls_record(22, 0xFEFD, 0, 0, encode_dtls_handshake(1, hello.encode(), 0))
    reply = Gate(server_config()).receive(changed, CLIENT, NOW)
    assert isinstance(reply, Reply)
    assert reply.data[13] == HandshakeType.HELLO_VERIFY_REQUEST
    only13 = Gate(server_config(dtls_versions=(ProtocolVersion.DTLS13,)))
    assert only13.receive(changed, CLIENT, NOW) == Drop(DropReason.VERSION_DISABLED)


def test_records_after_a_dtls13_client_hello_do_not_change_the_verdict() -> None:
    """The gate reads a DTLS 1.3 ClientHello to its record's end, by the two-byte length
    field (here above 255, so both bytes count), not to the datagram's: a record after it
    in the datagram (RFC 6347 §4.1.1) changes neither the HelloRetryRequest nor the admit."""
    trailing = encode_dtls_record(23, 0xFEFD, 1, 0, bytes(24))
    client = Dtls13ClientConnection(client_config(alpn_protocols=(b"p" * 100,)), SERVER)
    client.connect(NOW)
    ((hello, _),) = client.datagrams_to_send()
    assert (hello[11] << 8 | hello[12]) > 255 and len(hello) == 13 + (hello[11] << 8 | hello[12])
    reply = Gate(server_config()).receive(hello, CLIENT, NOW)
    assert isinstance(reply, Reply)
    gate = Gate(server_config())
    assert gate.receive(hello + trailing, CLIENT, NOW) == reply
    client.receive(reply.data, SERVER, NOW)
    ((hello2, _),) = client.datagrams_to_send()
    alone = Gate(server_config()).receive(hello2, CLIENT, NOW)
    result = gate.receive(hello2 + trailing, CLIENT, NOW)
    assert isinstance(alone, Dtls13Admit) and isinstance(result, Dtls13Admit)
    assert result == dataclasses.replace(alone, datagram=hello2 + trailing)
    assert (gate.replies, gate.admits) == (1, 1)
