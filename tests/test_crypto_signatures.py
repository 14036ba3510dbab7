"""Signature schemes: sign/verify for each scheme, tampered signatures, scheme/key mismatch,
``schemes_for_key`` and the TLS 1.3 CertificateVerify content."""

from __future__ import annotations

import pytest
from cryptography.hazmat.primitives.asymmetric import ec, ed448, ed25519, mldsa, rsa

from dtlsgate.crypto.hashes import Hash
from dtlsgate.crypto.provider import DefaultProvider, DeterministicProvider
from dtlsgate.crypto.signatures import (
    IMPLEMENTED_SCHEMES,
    TLS13_FORBIDDEN_SCHEMES,
    PrivateKey,
    certificate_verify_content,
    scheme_hash,
    schemes_for_key,
    sign,
    verify,
)
from dtlsgate.errors import DecryptError, IllegalParameter, UsageError
from dtlsgate.wire.enums import AlertDescription, SignatureScheme

S = SignatureScheme


@pytest.fixture(scope="module")
def keys() -> dict[str, PrivateKey]:
    return {
        "p256": ec.generate_private_key(ec.SECP256R1()),
        "p384": ec.generate_private_key(ec.SECP384R1()),
        "p521": ec.generate_private_key(ec.SECP521R1()),
        "rsa": rsa.generate_private_key(public_exponent=65537, key_size=2048),
        "ed25519": ed25519.Ed25519PrivateKey.generate(),
        "ed448": ed448.Ed448PrivateKey.generate(),
        "mldsa44": mldsa.MLDSA44PrivateKey.generate(),
        "mldsa65": mldsa.MLDSA65PrivateKey.generate(),
        "mldsa87": mldsa.MLDSA87PrivateKey.generate(),
    }


SCHEME_KEYS = [
    (S.ecdsa_secp256r1_sha256, "p256"),
    (S.ecdsa_secp384r1_sha384, "p384"),
    (S.ecdsa_secp521r1_sha512, "p521"),
    (S.rsa_pss_rsae_sha256, "rsa"),
    (S.rsa_pss_rsae_sha384, "rsa"),
    (S.rsa_pss_rsae_sha512, "rsa"),
    (S.rsa_pss_pss_sha256, "rsa"),
    (S.rsa_pss_pss_sha384, "rsa"),
    (S.rsa_pss_pss_sha512, "rsa"),
    (S.rsa_pkcs1_sha256, "rsa"),
    (S.rsa_pkcs1_sha384, "rsa"),
    (S.rsa_pkcs1_sha512, "rsa"),
    (S.ed25519, "ed25519"),
    (S.ed448, "ed448"),
    (S.mldsa44, "mldsa44"),
    (S.mldsa65, "mldsa65"),
    (S.mldsa87, "mldsa87"),
]


def test_every_implemented_scheme_is_tested() -> None:
    assert {s for s, _ in SCHEME_KEYS} == IMPLEMENTED_SCHEMES


@pytest.mark.parametrize(("scheme", "key_name"), SCHEME_KEYS)
def test_sign_verify_and_tamper(
    keys: dict[str, PrivateKey], scheme: SignatureScheme, key_name: str
) -> None:
    provider = DefaultProvider()
    key = keys[key_name]
    data = certificate_verify_content(b"\x11" * 32, server=True)
    signature = provider.sign(key, scheme, data)
    provider.verify(key.public_key(), scheme, data, signature)
    tampered = bytearray(signature)
    tampered[len(tampered) // 2] ^= 0x01
    with pytest.raises(DecryptError) as info:
        provider.verify(key.public_key(), scheme, data, bytes(tampered))
    assert info.value.alert is AlertDescription.decrypt_error
    with pytest.raises(DecryptError):
        provider.verify(key.public_key(), scheme, data + b"x", signature)
    with pytest.raises(DecryptError):
        provider.verify(key.public_key(), scheme, data, b"")


def test_pss_and_pkcs1_are_not_interchangeable(keys: dict[str, PrivateKey]) -> None:
    rsa_key = keys["rsa"]
    signature = sign(rsa_key, S.rsa_pkcs1_sha256, b"data")
    with pytest.raises(DecryptError):
        verify(rsa_key.public_key(), S.rsa_pss_rsae_sha256, b"data", signature)
    pss = sign(rsa_key, S.rsa_pss_rsae_sha256, b"data")
    with pytest.raises(DecryptError):
        verify(rsa_key.public_key(), S.rsa_pss_rsae_sha384, b"data", pss)


def test_scheme_that_does_not_fit_the_peer_key(keys: dict[str, PrivateKey]) -> None:
    p256 = keys["p256"]
    signature = sign(p256, S.ecdsa_secp256r1_sha256, b"data")
    with pytest.raises(IllegalParameter):
        verify(p256.public_key(), S.rsa_pss_rsae_sha256, b"data", signature)
    with pytest.raises(IllegalParameter):
        verify(keys["ed25519"].public_key(), S.ed448, b"data", signature)
    # TLS 1.3 binds the curve to the scheme (RFC 8446 §4.2.3); TLS 1.2 does not.
    sha384_on_p256 = sign(p256, S.ecdsa_secp384r1_sha384, b"data", tls13=False)
    with pytest.raises(IllegalParameter):
        verify(p256.public_key(), S.ecdsa_secp384r1_sha384, b"data", sha384_on_p256)
    verify(p256.public_key(), S.ecdsa_secp384r1_sha384, b"data", sha384_on_p256, tls13=False)
    with pytest.raises(IllegalParameter):
        verify(p256.public_key(), S.rsa_pkcs1_sha1, b"data", signature)


def test_signing_with_the_wrong_key_is_a_usage_error(keys: dict[str, PrivateKey]) -> None:
    with pytest.raises(UsageError):
        sign(keys["rsa"], S.ecdsa_secp256r1_sha256, b"data")
    with pytest.raises(UsageError):
        sign(keys["p384"], S.ecdsa_secp256r1_sha256, b"data")
    with pytest.raises(UsageError):
        sign(keys["p256"], S.ecdsa_sha1, b"data")


def test_deterministic_provider_ecdsa_is_reproducible(keys: dict[str, PrivateKey]) -> None:
    provider = DeterministicProvider(1)
    one = provider.sign(keys["p256"], S.ecdsa_secp256r1_sha256, b"data")
    assert provider.sign(keys["p256"], S.ecdsa_secp256r1_sha256, b"data") == one
    provider.verify(keys["p256"].public_key(), S.ecdsa_secp256r1_sha256, b"data", one)


def test_schemes_for_key(keys: dict[str, PrivateKey]) -> None:
    assert schemes_for_key(keys["p256"]) == [S.ecdsa_secp256r1_sha256]
    assert schemes_for_key(keys["p384"].public_key()) == [S.ecdsa_secp384r1_sha384]
    assert schemes_for_key(keys["p521"]) == [S.ecdsa_secp521r1_sha512]
    assert schemes_for_key(keys["rsa"]) == [
        S.rsa_pss_rsae_sha256,
        S.rsa_pss_rsae_sha384,
        S.rsa_pss_rsae_sha512,
        S.rsa_pkcs1_sha256,
        S.rsa_pkcs1_sha384,
        S.rsa_pkcs1_sha512,
    ]
    assert schemes_for_key(keys["ed25519"]) == [S.ed25519]
    assert schemes_for_key(keys["ed448"].public_key()) == [S.ed448]
    assert schemes_for_key(ec.generate_private_key(ec.SECP256K1())) == []


def test_scheme_hash_and_tls13_forbidden() -> None:
    assert scheme_hash(S.rsa_pss_pss_sha384) is Hash.SHA384
    assert scheme_hash(S.ecdsa_secp521r1_sha512) is Hash.SHA512
    assert scheme_hash(S.ed25519) is None
    assert S.rsa_pkcs1_sha256 in TLS13_FORBIDDEN_SCHEMES
    assert S.rsa_pss_rsae_sha256 not in TLS13_FORBIDDEN_SCHEMES


def test_certificate_verify_content() -> None:
    digest = bytes(range(32))
    server = certificate_verify_content(digest, server=True)
    assert server == b"\x20" * 64 + b"TLS 1.3, server CertificateVerify\x00" + digest
    client = certificate_verify_content(digest, server=False)
    assert client[64:97] == b"TLS 1.3, client CertificateVerify"
    assert client[97] == 0
    assert client[98:] == digest
