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

from dtlsgate.wire.enums import CipherSuite

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


def test_certificate_bodies_are_cached_per_chain_and_bounded() -> None:
    from dtlsgate.crypto.certs import load_identity, make_self_signed
    from dtlsgate.handshake.dtls12 import server
    from dtlsgate.wire.messages12 import Certificate12

    cert_pem, key_pem = make_self_signed("localhost", "ecdsa-p256")
    leaf = load_identity(cert_pem, key_pem).chain[0]
    chain = [leaf]
    body = server._certificate_body(chain)
    assert Certificate12.decode(body).certificates == (leaf.public_bytes(Encoding.DER),)
    assert server._certificate_body(chain) is body  # encoded once per chain
    # Chains of other certificate objects (here: other lengths) each take an entry, at most
    # MAX_CACHED_CHAINS of them.
    for n in range(1, 2 * server.MAX_CACHED_CHAINS):
        server._certificate_body([leaf] * n)
        assert len(server._certificate_bodies) <= server.MAX_CACHED_CHAINS


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
