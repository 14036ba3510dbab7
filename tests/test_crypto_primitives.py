"""AEADs, key exchange and the providers: round trips, tamper detection, invalid peer values,
deterministic randomness."""

from __future__ import annotations

import hashlib
import hmac
from typing import cast

import pytest

from dtlsgate.crypto.aead import Aead, AeadAlgorithm, keyed_primitive
from dtlsgate.crypto.hashes import Hash, KeyedHmac, hmac_digest
from dtlsgate.crypto.kex import KeyShare, public_length
from dtlsgate.crypto.provider import CryptoProvider, DefaultProvider, DeterministicProvider
from dtlsgate.errors import IllegalParameter, ProtocolError, UsageError
from dtlsgate.wire.enums import AlertDescription, NamedGroup

ALGORITHMS = list(AeadAlgorithm)
NONCE = bytes(range(12))
AAD = b"\x17\xfe\xfd\x00\x01" + bytes(6) + b"\x04\xb0"
PLAINTEXT = bytes(range(256)) * 4 + bytes(176)  # 1200 bytes


@pytest.mark.parametrize(
    ("algorithm", "key_length", "tag_length"),
    [
        (AeadAlgorithm.AES_128_GCM, 16, 16),
        (AeadAlgorithm.AES_256_GCM, 32, 16),
        (AeadAlgorithm.CHACHA20_POLY1305, 32, 16),
        (AeadAlgorithm.AES_128_CCM, 16, 16),
        (AeadAlgorithm.AES_128_CCM_8, 16, 8),
    ],
)
def test_aead_round_trip(algorithm: AeadAlgorithm, key_length: int, tag_length: int) -> None:
    assert (algorithm.key_length, algorithm.tag_length) == (key_length, tag_length)
    key = bytes(range(1, key_length + 1))
    aead = DefaultProvider().aead(algorithm, key)
    assert (aead.key_length, aead.tag_length, aead.iv_length) == (key_length, tag_length, 12)
    sealed = aead.seal(NONCE, PLAINTEXT, AAD)
    assert len(sealed) == len(PLAINTEXT) + tag_length
    assert sealed[: len(PLAINTEXT)] != PLAINTEXT
    assert aead.open(NONCE, sealed, AAD) == PLAINTEXT
    assert aead.open(NONCE, aead.seal(NONCE, b"", b""), b"") == b""


@pytest.mark.parametrize("algorithm", ALGORITHMS)
def test_aead_tamper_detection(algorithm: AeadAlgorithm) -> None:
    aead = Aead(algorithm, bytes(algorithm.key_length))
    sealed = aead.seal(NONCE, PLAINTEXT, AAD)
    flipped_body = bytes([sealed[0] ^ 1]) + sealed[1:]
    flipped_tag = sealed[:-1] + bytes([sealed[-1] ^ 0x80])
    assert aead.open(NONCE, flipped_body, AAD) is None
    assert aead.open(NONCE, flipped_tag, AAD) is None
    assert aead.open(NONCE, sealed, AAD[:-1] + b"\x00") is None
    assert aead.open(bytes(12), sealed, AAD) is None
    assert aead.open(NONCE, sealed[: aead.tag_length - 1], AAD) is None
    assert aead.open(NONCE, b"", AAD) is None
    other = Aead(algorithm, b"\x01" * algorithm.key_length)
    assert other.open(NONCE, sealed, AAD) is None


def test_aead_misuse_is_a_usage_error() -> None:
    with pytest.raises(UsageError):
        Aead(AeadAlgorithm.AES_128_GCM, bytes(32))
    aead = Aead(AeadAlgorithm.AES_128_GCM, bytes(16))
    with pytest.raises(UsageError):
        aead.seal(bytes(8), b"x", b"")
    with pytest.raises(UsageError):
        aead.open(bytes(13), bytes(32), b"")


@pytest.mark.parametrize("algorithm", ALGORITHMS)
def test_keyed_primitive_is_the_aeads_own(algorithm: AeadAlgorithm) -> None:
    """The primitive alone (a record layer's) seals and opens as the `Aead` of the same key,
    and takes only that key's length."""
    key = bytes(range(algorithm.key_length))
    primitive = DefaultProvider().aead_primitive(algorithm, key)
    aead = Aead(algorithm, key)
    sealed = primitive.encrypt(NONCE, PLAINTEXT, AAD)
    assert sealed == aead.seal(NONCE, PLAINTEXT, AAD)
    assert primitive.decrypt(NONCE, sealed, AAD) == PLAINTEXT
    assert type(primitive) is type(aead.primitive)
    with pytest.raises(UsageError):
        keyed_primitive(algorithm, key + b"\x00")


def test_aead_known_answer_aes128gcm() -> None:
    # NIST GCM test case 2 (all-zero key, nonce and block): C = 0388dace60b6a392f328c2b971b2fe78,
    # T = ab6e47d42cec13bdf53a67b21257bddf.
    aead = Aead(AeadAlgorithm.AES_128_GCM, bytes(16))
    assert aead.seal(bytes(12), bytes(16), b"") == bytes.fromhex(
        "0388dace60b6a392f328c2b971b2fe78ab6e47d42cec13bdf53a67b21257bddf"
    )


def test_provider_keeps_no_keys() -> None:
    """Each call keys a fresh AEAD; the provider holds no key material of past connections."""
    provider = DefaultProvider()
    a = provider.aead(AeadAlgorithm.AES_128_GCM, bytes(16))
    assert provider.aead(AeadAlgorithm.AES_128_GCM, bytes(16)) is not a
    assert not [v for v in vars(provider).values() if isinstance(v, dict) and v]


def test_providers_satisfy_the_protocol() -> None:
    assert isinstance(DefaultProvider(), CryptoProvider)
    assert isinstance(DeterministicProvider(1), CryptoProvider)


def test_default_random() -> None:
    provider = DefaultProvider()
    assert len(provider.random(32)) == 32
    assert provider.random(32) != provider.random(32)
    assert provider.random(0) == b""
    with pytest.raises(UsageError):
        provider.random(-1)


def test_deterministic_random_is_a_sha256_counter_stream() -> None:
    a, b = DeterministicProvider(b"seed"), DeterministicProvider(b"seed")
    first = a.random(10) + a.random(40)
    assert first == b.random(50)
    expected = hashlib.sha256(b"seed" + bytes(8)).digest()
    expected += hashlib.sha256(b"seed" + (1).to_bytes(8, "big")).digest()
    assert first == expected[:50]
    assert DeterministicProvider(b"other").random(50) != first
    assert DeterministicProvider(7).random(8) == DeterministicProvider(7).random(8)


GROUPS = [NamedGroup.x25519, NamedGroup.secp256r1, NamedGroup.secp384r1, NamedGroup.x448]


@pytest.mark.parametrize("group", GROUPS)
def test_key_exchange_between_two_providers(group: NamedGroup) -> None:
    client = DefaultProvider().generate_key_share(group)
    server = DeterministicProvider(3).generate_key_share(group)
    assert len(client.public_bytes) == public_length(group)
    if group in (NamedGroup.secp256r1, NamedGroup.secp384r1):
        assert client.public_bytes[0] == 0x04
    shared = client.exchange(server.public_bytes)
    assert shared == server.exchange(client.public_bytes)
    assert len(shared) == {32: 32, 56: 56, 65: 32, 97: 48}[public_length(group)]


@pytest.mark.parametrize("group", GROUPS)
def test_deterministic_key_shares_repeat(group: NamedGroup) -> None:
    first = DeterministicProvider(9).generate_key_share(group)
    again = DeterministicProvider(9).generate_key_share(group)
    other = DeterministicProvider(10).generate_key_share(group)
    assert first.public_bytes == again.public_bytes != other.public_bytes


def _bad_values(group: NamedGroup) -> list[bytes]:
    n = public_length(group)
    values = [b"", bytes(n - 1), bytes(n + 1)]
    if group in (NamedGroup.x25519, NamedGroup.x448):
        # u = 0 and u = 1 are small-order points: the shared secret is all zeros.
        values += [bytes(n), b"\x01" + bytes(n - 1)]
    else:
        half = (n - 1) // 2
        values += [
            b"\x04" + b"\x01" * half + b"\x02" * half,  # not on the curve
            b"\x04" + bytes(n - 1),  # (0, 0) is not on the curve
            b"\x03" + b"\x01" * (n - 1),  # wrong point format byte
        ]
    return values


@pytest.mark.parametrize("group", GROUPS)
def test_invalid_peer_public_values_are_illegal_parameter(group: NamedGroup) -> None:
    share = KeyShare.generate(group)
    for value in _bad_values(group):
        with pytest.raises(IllegalParameter) as info:
            share.exchange(value)
        assert isinstance(info.value, ProtocolError)
        assert info.value.alert is AlertDescription.illegal_parameter


def test_key_share_misuse() -> None:
    unimplemented = cast(NamedGroup, 0x0200)  # MLKEM512: not in cryptography
    with pytest.raises(UsageError):
        KeyShare.generate(unimplemented)
    with pytest.raises(UsageError):
        KeyShare.from_private_bytes(NamedGroup.x25519, bytes(31))
    with pytest.raises(UsageError):
        KeyShare.from_private_bytes(NamedGroup.secp256r1, bytes(32))  # scalar 0
    with pytest.raises(UsageError):
        DeterministicProvider(0).generate_key_share(unimplemented)


# --- KeyedHmac and hmac_digest: the HMACs of the TLS 1.2 PRF and the TLS 1.3 keys --------------------------------


@pytest.mark.parametrize("hash", list(Hash))
@pytest.mark.parametrize("key_length", [0, 1, 32, 48, 64, 65, 128, 129, 300])
def test_keyed_hmac_matches_the_standard_library(hash: Hash, key_length: int) -> None:
    # Keys shorter than, equal to and longer than the block (64 or 128 bytes; RFC 2104 §2
    # hashes a longer key first), and the same object reused for several messages.
    key = bytes((i * 7 + 3) & 0xFF for i in range(key_length))
    mac = KeyedHmac(hash, key)
    for message in (b"", b"abc", bytes(range(256)) * 3):
        assert mac.digest(message) == hmac.digest(key, message, hash.value)
        # The one-shot HMAC of the key schedule, written out over hashlib as well.
        assert hmac_digest(hash, key, message) == hmac.digest(key, message, hash.value)


def test_x25519_rfc7748_vector() -> None:
    """RFC 7748 §6.1: Alice's and Bob's keys and their shared secret, through KeyShare (whose
    X25519 keys are loaded from a DER head and the raw value)."""
    alice = KeyShare.from_private_bytes(
        NamedGroup.x25519,
        bytes.fromhex("77076d0a7318a57d3c16c17251b26645df4c2f87ebc0992ab177fba51db92c2a"),
    )
    bob_public = bytes.fromhex("de9edb7d7b7dc1b4d35b61c2ece435373f8343c85b78674dadfc7e146f882b4f")
    assert alice.public_bytes == bytes.fromhex(
        "8520f0098930a754748b7ddcb43ef75a0dbf3a0d26381af4eba4a98eaa9b4e6a"
    )
    assert alice.exchange(bob_public) == bytes.fromhex(
        "4a5d9d5ba4ce2de1728e3bf480350f25e07e21c947d19e3376f09b3c1e161742"
    )


@pytest.mark.parametrize("group", [NamedGroup.x25519, NamedGroup.x448])
def test_montgomery_keys_match_cryptography_raw_api(group: NamedGroup) -> None:
    """The DER-loaded keys are the ones cryptography's raw-bytes API makes: same public value,
    same shared secret with a peer, for random keys and for generated ones."""
    from cryptography.hazmat.primitives.asymmetric import x448, x25519

    private_type = x25519.X25519PrivateKey if group is NamedGroup.x25519 else x448.X448PrivateKey
    public_type = x25519.X25519PublicKey if group is NamedGroup.x25519 else x448.X448PublicKey
    peer = private_type.generate()
    peer_public = peer.public_key().public_bytes_raw()
    for share in (
        KeyShare.from_private_bytes(group, bytes(range(public_length(group)))),
        KeyShare.generate(group),
    ):
        raw = share._private.private_bytes_raw()
        reference = private_type.from_private_bytes(raw)
        assert share.public_bytes == reference.public_key().public_bytes_raw()
        assert share.exchange(peer_public) == peer.exchange(
            public_type.from_public_bytes(share.public_bytes)
        )
