"""Signatures by `SignatureScheme` (RFC 8446 §4.2.3) for CertificateVerify (TLS 1.3, TLS 1.2)
and ServerKeyExchange (TLS 1.2, RFC 8422 §5.4).

Each scheme is tied to one key type (RFC 8446 §4.2.3): ECDSA to its curve (in TLS 1.3),
RSASSA-PSS to an RSA key (rsa_pss_pss_* to a certificate naming id-RSASSA-PSS, rsa_pss_rsae_*
to rsaEncryption: the caller knows the certificate), EdDSA to its curve, and ML-DSA-44/65/87
(draft-ietf-tls-mldsa, TLS 1.3 only: pure ML-DSA with an empty context) to its parameter set.

``sign`` and ``verify`` map a scheme to the ``cryptography`` padding and hash; a failed check
raises `DecryptError` (RFC 8446 §4.4.3: decrypt_error). A scheme that does not fit the peer's
key raises `IllegalParameter`. ``certificate_verify_content`` builds the TLS 1.3 signed data.
"""

from __future__ import annotations

from typing import Final, cast

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives.asymmetric import ec, ed448, ed25519, mldsa, padding, rsa
from cryptography.hazmat.primitives.asymmetric.types import (
    CertificatePublicKeyTypes,
    PrivateKeyTypes,
)

from dtlsgate.crypto.hashes import Hash
from dtlsgate.errors import DecryptError, IllegalParameter, UsageError
from dtlsgate.wire.enums import SignatureScheme

__all__ = [
    "IMPLEMENTED_SCHEMES",
    "MLDSA_SCHEMES",
    "RSA_PSS_PSS_SCHEMES",
    "TLS13_FORBIDDEN_SCHEMES",
    "PrivateKey",
    "PublicKey",
    "certificate_verify_content",
    "scheme_hash",
    "schemes_for_key",
    "sign",
    "verify",
]

MldsaPrivateKey = mldsa.MLDSA44PrivateKey | mldsa.MLDSA65PrivateKey | mldsa.MLDSA87PrivateKey
MldsaPublicKey = mldsa.MLDSA44PublicKey | mldsa.MLDSA65PublicKey | mldsa.MLDSA87PublicKey
PrivateKey = (
    ec.EllipticCurvePrivateKey
    | rsa.RSAPrivateKey
    | ed25519.Ed25519PrivateKey
    | ed448.Ed448PrivateKey
    | MldsaPrivateKey
)
PublicKey = (
    ec.EllipticCurvePublicKey
    | rsa.RSAPublicKey
    | ed25519.Ed25519PublicKey
    | ed448.Ed448PublicKey
    | MldsaPublicKey
)

_S = SignatureScheme

_ECDSA: Final = {
    _S.ecdsa_secp256r1_sha256: (Hash.SHA256, "secp256r1"),
    _S.ecdsa_secp384r1_sha384: (Hash.SHA384, "secp384r1"),
    _S.ecdsa_secp521r1_sha512: (Hash.SHA512, "secp521r1"),
}
_RSA_PSS: Final = {
    _S.rsa_pss_rsae_sha256: Hash.SHA256,
    _S.rsa_pss_rsae_sha384: Hash.SHA384,
    _S.rsa_pss_rsae_sha512: Hash.SHA512,
    _S.rsa_pss_pss_sha256: Hash.SHA256,
    _S.rsa_pss_pss_sha384: Hash.SHA384,
    _S.rsa_pss_pss_sha512: Hash.SHA512,
}
_RSA_PKCS1: Final = {
    _S.rsa_pkcs1_sha256: Hash.SHA256,
    _S.rsa_pkcs1_sha384: Hash.SHA384,
    _S.rsa_pkcs1_sha512: Hash.SHA512,
}
# draft-ietf-tls-mldsa §3: each scheme is one FIPS 204 parameter set, whose key the
# end-entity certificate must carry.
_MLDSA: Final = {
    _S.mldsa44: (mldsa.MLDSA44PrivateKey, mldsa.MLDSA44PublicKey),
    _S.mldsa65: (mldsa.MLDSA65PrivateKey, mldsa.MLDSA65PublicKey),
    _S.mldsa87: (mldsa.MLDSA87PrivateKey, mldsa.MLDSA87PublicKey),
}
#: The ML-DSA schemes (TLS 1.3 only).
MLDSA_SCHEMES: frozenset[SignatureScheme] = frozenset(_MLDSA)
# ECDSA with each hash (random nonces): immutable parameter objects, made once rather than
# per signature (about 2 us each with the hash object inside).
_ECDSA_ALGORITHMS: Final = {hash: ec.ECDSA(hash.cryptography_hash()) for hash in Hash}

#: Every scheme ``sign``/``verify`` handle.
IMPLEMENTED_SCHEMES: frozenset[SignatureScheme] = frozenset(
    {*_ECDSA, *_RSA_PSS, *_RSA_PKCS1, _S.ed25519, _S.ed448, *_MLDSA}
)

#: RFC 8446 §4.2.3 / §4.4.3: RSASSA-PKCS1-v1_5 and SHA-1 schemes must not be used in TLS 1.3
#: CertificateVerify (they remain valid in certificates and in TLS 1.2).
TLS13_FORBIDDEN_SCHEMES: frozenset[SignatureScheme] = frozenset(
    {*_RSA_PKCS1, _S.rsa_pkcs1_sha1, _S.ecdsa_sha1}
)


#: RFC 8446 §4.2.3: the schemes for a key whose certificate names it id-RSASSA-PSS; the
#: rsa_pss_rsae_* ones are for rsaEncryption keys.
RSA_PSS_PSS_SCHEMES: frozenset[SignatureScheme] = frozenset(
    {_S.rsa_pss_pss_sha256, _S.rsa_pss_pss_sha384, _S.rsa_pss_pss_sha512}
)


def scheme_hash(scheme: SignatureScheme) -> Hash | None:
    """The hash a scheme signs with; ``None`` for EdDSA (which hashes internally)."""
    if scheme in _ECDSA:
        return _ECDSA[scheme][0]
    if scheme in _RSA_PSS:
        return _RSA_PSS[scheme]
    if scheme in _RSA_PKCS1:
        return _RSA_PKCS1[scheme]
    if scheme in (_S.ed25519, _S.ed448) or scheme in _MLDSA:
        return None
    raise UsageError(f"signature scheme {scheme!r} is not implemented")


def _pss(hash: Hash) -> padding.PSS:
    # RFC 8446 §4.2.3: MGF1 with the same hash, salt as long as the digest.
    return padding.PSS(mgf=padding.MGF1(hash.cryptography_hash()), salt_length=hash.digest_size)


# The key classes (private or public) of each family of schemes, as one type each: made once,
# not per check (``A | B`` makes a new union object every time it runs).
_EC_KEY = ec.EllipticCurvePrivateKey | ec.EllipticCurvePublicKey
_RSA_KEY = rsa.RSAPrivateKey | rsa.RSAPublicKey
_ED25519_KEY = ed25519.Ed25519PrivateKey | ed25519.Ed25519PublicKey
_ED448_KEY = ed448.Ed448PrivateKey | ed448.Ed448PublicKey


def _key_fits(key: PrivateKey | PublicKey, scheme: SignatureScheme, tls13: bool) -> bool:
    if scheme in _ECDSA:
        if not isinstance(key, _EC_KEY):
            return False
        # RFC 8446 §4.2.3: in TLS 1.3 the curve is part of the scheme; in TLS 1.2 the
        # value only names the hash (RFC 5246 §7.4.1.4.1).
        return not tls13 or key.curve.name == _ECDSA[scheme][1]
    if scheme in _RSA_PSS or scheme in _RSA_PKCS1:
        return isinstance(key, _RSA_KEY)
    if scheme is _S.ed25519:
        return isinstance(key, _ED25519_KEY)
    if scheme is _S.ed448:
        return isinstance(key, _ED448_KEY)
    if scheme in _MLDSA:
        # draft-ietf-tls-mldsa: defined for TLS 1.3 only.
        return tls13 and isinstance(key, _MLDSA[scheme])
    return False


def schemes_for_key(
    key: PrivateKey | PublicKey | PrivateKeyTypes,
    *,
    tls13: bool = False,
    rsassa_pss: bool = False,
) -> list[SignatureScheme]:
    """The schemes ``key`` can sign or verify with, preferred first (TLS 1.3 rules for ECDSA:
    the scheme of the key's curve). RSA keys list rsa_pss_rsae_* then rsa_pkcs1_* (the
    latter only for (D)TLS 1.2: ``tls13`` leaves out what RFC 8446 §4.4.3 forbids in a
    CertificateVerify); ``rsassa_pss`` (the certificate names id-RSASSA-PSS) lists only
    rsa_pss_pss_* (RFC 8446 §4.2.3), TLS 1.3 only. ML-DSA keys have their one scheme in
    TLS 1.3 and none in (D)TLS 1.2."""
    if rsassa_pss:
        is_rsa = isinstance(key, _RSA_KEY)
        return sorted(RSA_PSS_PSS_SCHEMES) if tls13 and is_rsa else []
    if tls13:
        found = [s for s in schemes_for_key(key) if s not in TLS13_FORBIDDEN_SCHEMES]
        return found + [
            s for s, (private, public) in _MLDSA.items() if isinstance(key, private | public)
        ]
    if isinstance(key, _EC_KEY):
        return [s for s, (_, curve) in _ECDSA.items() if curve == key.curve.name]
    if isinstance(key, _RSA_KEY):
        return [
            _S.rsa_pss_rsae_sha256,
            _S.rsa_pss_rsae_sha384,
            _S.rsa_pss_rsae_sha512,
            _S.rsa_pkcs1_sha256,
            _S.rsa_pkcs1_sha384,
            _S.rsa_pkcs1_sha512,
        ]
    if isinstance(key, _ED25519_KEY):
        return [_S.ed25519]
    if isinstance(key, _ED448_KEY):
        return [_S.ed448]
    return []


def sign(
    key: PrivateKey,
    scheme: SignatureScheme,
    data: bytes,
    *,
    tls13: bool = True,
    deterministic_ecdsa: bool = False,
) -> bytes:
    """Sign ``data`` with ``scheme``. `UsageError` if the scheme does not fit our key.
    ``deterministic_ecdsa`` selects RFC 6979 nonces (reproducible test transcripts)."""
    if scheme not in IMPLEMENTED_SCHEMES or not _key_fits(key, scheme, tls13):
        raise UsageError(f"cannot sign with {scheme!r} using a {type(key).__name__}")
    # _key_fits checked the key's type against the scheme: the scheme alone now says which
    # it is (another isinstance against cryptography's abstract classes would cost ~1 us).
    if scheme in _ECDSA:
        hash = _ECDSA[scheme][0]
        if deterministic_ecdsa:
            algorithm = ec.ECDSA(hash.cryptography_hash(), deterministic_signing=True)
        else:
            algorithm = _ECDSA_ALGORITHMS[hash]
        return cast(ec.EllipticCurvePrivateKey, key).sign(data, algorithm)
    if scheme in _RSA_PSS:
        hash = _RSA_PSS[scheme]
        return cast(rsa.RSAPrivateKey, key).sign(data, _pss(hash), hash.cryptography_hash())
    if scheme in _RSA_PKCS1:
        hash = _RSA_PKCS1[scheme]
        return cast(rsa.RSAPrivateKey, key).sign(data, padding.PKCS1v15(), hash.cryptography_hash())
    if scheme in _MLDSA:
        # draft-ietf-tls-mldsa §3.2: ML-DSA.Sign (FIPS 204 Algorithm 2), empty context.
        return cast(MldsaPrivateKey, key).sign(data)
    return cast(ed25519.Ed25519PrivateKey | ed448.Ed448PrivateKey, key).sign(data)


def verify(
    key: PublicKey | CertificatePublicKeyTypes,
    scheme: SignatureScheme,
    data: bytes,
    signature: bytes,
    *,
    tls13: bool = True,
) -> None:
    """Check the peer's ``signature`` over ``data``. Raises `IllegalParameter` when the peer
    chose a scheme that does not fit its key or that we do not implement, and `DecryptError`
    when the signature is wrong (RFC 8446 §4.4.3)."""
    if scheme not in IMPLEMENTED_SCHEMES:
        raise IllegalParameter(f"peer used signature scheme {scheme!r} which we did not offer")
    if not isinstance(key, PublicKey) or not _key_fits(key, scheme, tls13):
        raise IllegalParameter(f"signature scheme {scheme!r} does not fit the peer's key")
    try:
        if isinstance(key, ec.EllipticCurvePublicKey):
            key.verify(signature, data, _ECDSA_ALGORITHMS[_ECDSA[scheme][0]])
        elif isinstance(key, rsa.RSAPublicKey):
            if scheme in _RSA_PSS:
                hash = _RSA_PSS[scheme]
                key.verify(signature, data, _pss(hash), hash.cryptography_hash())
            else:
                hash = _RSA_PKCS1[scheme]
                key.verify(signature, data, padding.PKCS1v15(), hash.cryptography_hash())
        else:
            key.verify(signature, data)
    except (InvalidSignature, ValueError):
        raise DecryptError(f"{scheme.name} signature does not verify") from None


#: RFC 8446 §4.4.3 context strings (DTLS 1.3 uses the same ones, RFC 9147 §5).
_SERVER_CONTEXT = b"TLS 1.3, server CertificateVerify"
_CLIENT_CONTEXT = b"TLS 1.3, client CertificateVerify"


def certificate_verify_content(transcript_hash: bytes, *, server: bool) -> bytes:
    """The data a TLS 1.3 CertificateVerify signs (RFC 8446 §4.4.3): 64 spaces, the context
    string, a zero byte, then Transcript-Hash(Handshake Context, Certificate)."""
    context = _SERVER_CONTEXT if server else _CLIENT_CONTEXT
    return b" " * 64 + context + b"\x00" + transcript_hash
