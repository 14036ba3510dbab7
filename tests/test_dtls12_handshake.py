"""DTLS 1.2 handshakes in memory: our client and our server behind the gate."""

from __future__ import annotations

import pytest
from cryptography.hazmat.primitives.serialization import Encoding
from helpers import (
    PSK,
    PSK_ID,
    client_config,
    closed_events,
    data_events,
    make_pair,
    server_config,
)

from dtlsgate.wire.enums import CipherSuite, HandshakeType

CS = CipherSuite


def exchange(pair: object) -> None:
    p = pair
    p.client.send(b"ping")  # type: ignore[attr-defined]
    p.run()  # type: ignore[attr-defined]
    assert data_events(p.server_events) == [b"ping"]  # type: ignore[attr-defined]
    p.server.send(b"pong")  # type: ignore[attr-defined]
    p.run()  # type: ignore[attr-defined]
    assert data_events(p.client_events) == [b"pong"]  # type: ignore[attr-defined]


@pytest.mark.parametrize(
    ("key_type", "suite"),
    [
        ("ecdsa-p256", CS.TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256),
        ("ecdsa-p256", CS.TLS_ECDHE_ECDSA_WITH_AES_256_GCM_SHA384),
        ("ecdsa-p256", CS.TLS_ECDHE_ECDSA_WITH_CHACHA20_POLY1305_SHA256),
        ("ecdsa-p256", CS.TLS_ECDHE_ECDSA_WITH_AES_128_CCM_8),
        ("rsa-2048", CS.TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256),
        ("rsa-2048", CS.TLS_ECDHE_RSA_WITH_CHACHA20_POLY1305_SHA256),
        ("ed25519", CS.TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256),
    ],
)
def test_certificate_handshake_and_data(key_type: str, suite: CS) -> None:
    pair = make_pair(server_config(key_type), client_config(key_type, cipher_suites=(suite,)))
    pair.run()
    assert pair.completed()
    assert pair.client.info is not None and pair.client.info.cipher_suite == suite
    assert pair.server is not None and pair.server.info is not None
    assert pair.server.info.extended_master_secret
    exchange(pair)


@pytest.mark.parametrize(
    "suite",
    [
        CS.TLS_PSK_WITH_AES_128_CCM_8,
        CS.TLS_PSK_WITH_AES_128_GCM_SHA256,
        CS.TLS_ECDHE_PSK_WITH_CHACHA20_POLY1305_SHA256,
    ],
)
@pytest.mark.parametrize("hint", [b"", b"hint"])
def test_psk_handshake_and_data(suite: CS, hint: bytes) -> None:
    server = server_config(None, psk={PSK_ID: PSK}, psk_identity_hint=hint)
    client = client_config(psk=PSK, psk_identity=PSK_ID, cipher_suites=(suite,))
    pair = make_pair(server, client)
    pair.run()
    assert pair.completed()
    assert pair.server is not None and pair.server.info is not None
    assert pair.server.info.psk_identity == PSK_ID
    exchange(pair)


def test_close_notify_reaches_the_peer() -> None:
    pair = make_pair(server_config(), client_config())
    pair.run()
    pair.client.close()
    pair.run()
    assert [e.alert for e in closed_events(pair.server_events)] == [0]


def test_certificate_message_is_encoded_once_per_context_and_bounded() -> None:
    from dtlsgate.handshake.dtls12 import server
    from dtlsgate.wire.handshake import DTLS_HANDSHAKE_HEADER_LENGTH
    from dtlsgate.wire.messages12 import Certificate12

    cfg = server_config()
    leaf = cfg.certificate_chain[0]
    ctx = server.ServerContext(cfg)
    message = ctx.certificate_message(2)
    assert message[0] == HandshakeType.CERTIFICATE and message[4:6] == b"\x00\x02"
    body = message[DTLS_HANDSHAKE_HEADER_LENGTH:]
    assert Certificate12.decode(body).certificates == (leaf.public_bytes(Encoding.DER),)
    # Encoded once per message_seq: every connection of the context holds the same bytes.
    assert ctx.certificate_message(2) is message
    other = ctx.certificate_message(5)
    assert other[DTLS_HANDSHAKE_HEADER_LENGTH:] == body and other[4:6] == b"\x00\x05"
    # At most MAX_CACHED_MESSAGE_SEQS message_seq values are kept (a client picks its
    # ClientHello's), the others encoded afresh each time.
    for seq in range(100):
        assert ctx.certificate_message(seq)[4:6] == seq.to_bytes(2, "big")
    assert len(ctx._certificate_messages) <= server.MAX_CACHED_MESSAGE_SEQS


def test_answers_are_remembered_per_offer_and_bounded() -> None:
    """A context answers each offer once (`ServerContext.answer`): the choice is
    `choose`'s, the ServerHello part the one a full handshake on it sends; ClientHellos
    that differ only in random, session_id or cookie share the answer; a refused offer stays
    refused; at most MAX_ANSWERS
    offers are kept (a full memo starts over), and an offer of more than
    MAX_OFFER_ITEMS items or MAX_OFFER_EXTENSION_BYTES bytes of extensions is not kept."""
    import dataclasses

    from builders import client_hello

    from dtlsgate.errors import HandshakeFailure, ProtocolVersionError
    from dtlsgate.handshake.dtls12 import server
    from dtlsgate.handshake.dtls12.negotiate import choose
    from dtlsgate.wire.extensions import Extension

    ctx = server.ServerContext(server_config())
    hello = client_hello(cookie=b"c")
    answer = ctx.answer(hello)
    assert answer.choice == choose(ctx.preferences, hello) and not answer.new_ticket
    # No renegotiation_info (neither it nor the SCSV offered); extended_master_secret.
    assert answer.server_hello == bytes.fromhex("c02b00000400170000")
    other = dataclasses.replace(hello, random=bytes(32), session_id=b"s" * 32, cookie=b"")
    assert ctx.answer(other) is answer and ctx.answers_remembered == 1
    for refused, error in (
        (client_hello(suites=(0x0033,)), HandshakeFailure),
        (dataclasses.replace(hello, legacy_version=0xFEFF), ProtocolVersionError),
    ):
        for _ in range(2):
            with pytest.raises(error):
                ctx.answer(refused)
    assert ctx.answers_remembered == 1

    offers = [client_hello(suites=(0xC02B, 0x5000 + n)) for n in range(server.MAX_ANSWERS + 8)]
    for n, offer in enumerate(offers):
        assert ctx.answer(offer).choice == choose(ctx.preferences, offer)
        assert ctx.answers_remembered == (n + 1) % server.MAX_ANSWERS + 1  # full: over
    assert ctx.answer(hello) is not answer  # forgotten: answered afresh, alike
    assert ctx.answer(hello) == answer

    ctx = server.ServerContext(server_config())
    many = client_hello(suites=(0xC02B, *range(0x5000, 0x5000 + server.MAX_OFFER_ITEMS)))
    padded = dataclasses.replace(
        hello,
        extensions=(
            *(hello.extensions or ()),
            Extension(21, bytes(server.MAX_OFFER_EXTENSION_BYTES)),
        ),
    )
    for big in (many, padded):
        assert ctx.answer(big).choice == choose(ctx.preferences, big)
    assert ctx.answers_remembered == 0


def test_completions_are_remembered_per_choice_and_bounded() -> None:
    """What a full handshake reports is made once per suite, ALPN protocol, server name and
    extended master secret when the client gave no identity (`ServerContext.completed`):
    two such handshakes through one gate report the same event, a PSK client's identity
    is its own, at most MAX_COMPLETIONS are kept (a full memo starts over), and none for
    a server name longer than MAX_REMEMBERED_NAME_LENGTH."""
    from dtlsgate.crypto.suites import suite_info
    from dtlsgate.gate.datagram import Gate
    from dtlsgate.handshake.dtls12 import server
    from dtlsgate.handshake.dtls12.common import Session, Transcript, WaitFinished
    from dtlsgate.handshake.dtls12.negotiate import Keys

    config = server_config()
    gate = Gate(config)
    infos = []
    for _ in range(2):
        pair = make_pair(config, client_config(), gate=gate)
        pair.run()
        assert pair.server is not None and pair.server.info is not None
        infos.append(pair.server.info)
    assert infos[0] is infos[1] and infos[0].psk_identity is None

    config = server_config(None, psk={PSK_ID: PSK, b"other": PSK})
    gate = Gate(config)
    for identity in (PSK_ID, b"other"):
        client = client_config(psk=PSK, psk_identity=identity)
        pair = make_pair(config, client, gate=gate)
        pair.run()
        assert pair.server is not None and pair.server.info is not None
        assert pair.server.info.psk_identity == identity

    ctx = server.ServerContext(server_config())
    session = Session(suite_info(CS.TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256), b"", b"", True)
    # Only the master secret is read (for the exporter): each handshake's own.
    keys = Keys(bytes(48), None, None, None)  # type: ignore[arg-type]
    states = [
        WaitFinished(Transcript(), session._replace(server_name=f"n{n}"), keys)
        for n in range(server.MAX_COMPLETIONS + 8)
    ]
    for n, state in enumerate(states):
        assert ctx.completed(state).info.server_name == f"n{n}"
        assert ctx.completions_remembered == (
            (n + 1) % server.MAX_COMPLETIONS or server.MAX_COMPLETIONS
        )
    again = ctx.completed(states[-1])
    assert again.info is ctx.completed(states[-1]).info  # the event is shared...
    assert again.exporter is not ctx.completed(states[-1]).exporter  # ...the exporter is not
    long_name = "n" * (server.MAX_REMEMBERED_NAME_LENGTH + 1)
    state = WaitFinished(Transcript(), session._replace(server_name=long_name), keys)
    remembered = ctx.completions_remembered
    assert ctx.completed(state).info.server_name == long_name
    assert ctx.completions_remembered == remembered  # made, not kept


def test_connections_accepted_through_a_gate_share_its_prepared_context() -> None:
    from dtlsgate.connection.datagram import DtlsServerConnection
    from dtlsgate.connection.datagram13 import accept
    from dtlsgate.errors import UsageError

    first = make_pair(server_config(), client_config())
    second = make_pair(server_config(), client_config())
    for pair in (first, second):
        pair.run()
        assert pair.server.handshake_complete
    assert first.gate is not None and second.gate is not None
    assert first.server._ctx is first.gate.dtls12_context
    assert second.server._ctx is not first.server._ctx  # another gate, another config
    # A context is for the config it was made from (checked before the admit is read).
    context = first.gate.dtls12_context
    with pytest.raises(UsageError, match="another config"):
        DtlsServerConnection(None, server_config(), context=context)  # type: ignore[arg-type]
    with pytest.raises(UsageError, match="another config"):
        accept(None, server_config(), gate=first.gate)  # type: ignore[arg-type]


def test_transcript_digests_equal_a_fresh_hash_of_each_prefix() -> None:
    """Transcript keeps the running hash of the prefix it hashed last: whatever the order
    of the requests (longer, the same, shorter, another hash), each digest is the hash of
    exactly the messages asked for."""
    from dtlsgate.crypto.hashes import Hash
    from dtlsgate.handshake.dtls12.common import Transcript

    t = Transcript()
    requests = [
        (Hash.SHA256, False),
        (Hash.SHA256, False),
        (Hash.SHA256, True),
        (Hash.SHA384, False),
        (Hash.SHA256, False),
        (Hash.SHA384, True),
    ]
    for i in range(1, 8):
        t.add(bytes([i]) * (10 * i))
        for hash, exclude_last in requests:
            expected = hash.digest(t.data(exclude_last=exclude_last))
            assert t.digest(hash, exclude_last=exclude_last) == expected


@pytest.mark.parametrize("keep_messages", [False, True])
def test_hashed_transcript_digests_equal_a_fresh_hash_of_each_prefix(keep_messages: bool) -> None:
    """After hash_with the transcript hashes as messages come and keeps their bytes only
    when asked: its digests are still the hash of exactly the messages asked for. A digest
    of everything takes the newest message into the running hash (no copy of the state):
    the hash without it can be asked for again only after another message."""
    from dtlsgate.crypto.hashes import Hash
    from dtlsgate.errors import StateError
    from dtlsgate.handshake.dtls12.common import Transcript

    t = Transcript()
    sent: list[bytes] = []
    for i in range(1, 3):
        t.add(bytes([i]) * (10 * i))
        sent.append(bytes([i]) * (10 * i))
    t.hash_with(Hash.SHA384, keep_messages=keep_messages)
    for i in range(3, 9):
        t.add(bytes([i]) * (10 * i))
        sent.append(bytes([i]) * (10 * i))
        for exclude_last in (True, True, False, False):
            expected = Hash.SHA384.digest(b"".join(sent[:-1] if exclude_last else sent))
            assert t.digest(Hash.SHA384, exclude_last=exclude_last) == expected
        with pytest.raises(StateError):
            t.digest(Hash.SHA384, exclude_last=True)
        if keep_messages:
            assert t.data(exclude_last=True) == b"".join(sent[:-1])
        else:
            with pytest.raises(StateError):
                t.data()
    with pytest.raises(StateError):
        t.digest(Hash.SHA256)  # only the chosen hash is running
    with pytest.raises(StateError):
        t.hash_with(Hash.SHA256, keep_messages=True)


def test_a_transcript_kept_by_its_hash_alone_from_the_start() -> None:
    """A server that never asks for a client certificate keeps no messages from the start
    (``keep_messages=False``): the ClientHello waits alone for the hash to be chosen, and
    the digests are the hash of exactly the messages asked for. What it cannot answer
    without the messages is refused, not answered wrong: a second message, a digest or
    the messages before the hash is chosen, keeping the messages afterwards."""
    from dtlsgate.crypto.hashes import Hash
    from dtlsgate.errors import StateError
    from dtlsgate.handshake.dtls12.common import Transcript

    t = Transcript(1, keep_messages=False)
    hello = b"\x01" * 40
    t.add(hello)
    with pytest.raises(StateError):
        t.digest(Hash.SHA256)
    with pytest.raises(StateError):
        t.data()
    with pytest.raises(StateError):
        Transcript(keep_messages=False).hash_with(Hash.SHA256, keep_messages=True)
    t.hash_with(Hash.SHA256, keep_messages=False)
    sent = [hello]
    for i in range(2, 6):
        sent.append(t.send(i, bytes([i]) * (10 * i)))
        assert t.digest(Hash.SHA256, exclude_last=True) == Hash.SHA256.digest(b"".join(sent[:-1]))
        assert t.digest(Hash.SHA256) == Hash.SHA256.digest(b"".join(sent))
    assert t.send_seq == 5
    lost = Transcript(keep_messages=False)
    lost.add(hello)
    with pytest.raises(StateError):
        lost.add(hello)
