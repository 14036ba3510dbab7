"""The cipher-suite table: for each `CipherSuite`, its AEAD, hash and key exchange.

TLS 1.3 suites (RFC 8446 §B.4) name only the AEAD and the HKDF hash. TLS 1.2 / DTLS 1.2 AEAD
suites also fix the key exchange and how the 12-byte nonce is built:

- AES-GCM (RFC 5288 §3) and AES-CCM (RFC 6655 §3, RFC 7251): a 4-byte implicit salt from the
  key block plus an 8-byte explicit nonce carried in each record;
- ChaCha20-Poly1305 (RFC 7905 §2): a 12-byte implicit IV XORed with the sequence number,
  no explicit nonce.

All TLS 1.3 suites use a 12-byte IV and no explicit nonce (RFC 8446 §5.3). The signalling
values (TLS_EMPTY_RENEGOTIATION_INFO_SCSV, TLS_FALLBACK_SCSV) are not suites and have no entry.
"""

from __future__ import annotations

import enum
from typing import cast

from dtlsgate._frozen import frozen
from dtlsgate.crypto.aead import AeadAlgorithm
from dtlsgate.crypto.hashes import Hash
from dtlsgate.errors import UsageError
from dtlsgate.wire.enums import CipherSuite

__all__ = ["SUITES", "KeyExchange", "SuiteInfo", "suite_info"]


class KeyExchange(enum.Enum):
    """How a suite authenticates and agrees keys (TLS 1.2); ``TLS13`` for TLS 1.3 suites,
    which leave both to extensions."""

    ECDHE_ECDSA = "ecdhe_ecdsa"
    ECDHE_RSA = "ecdhe_rsa"
    PSK = "psk"
    ECDHE_PSK = "ecdhe_psk"
    TLS13 = "tls13"

    # As for `Hash`: identity hash, C code, consistent with the identity equality of
    # members (Enum.__hash__ is Python code; the negotiation looks kinds up by member).
    __hash__ = object.__hash__


@frozen
class SuiteInfo:
    """What a cipher suite means for the record layer and the key schedule."""

    suite: CipherSuite
    aead: AeadAlgorithm
    #: The PRF hash (TLS 1.2, RFC 5246 §5) or HKDF / transcript hash (TLS 1.3).
    hash: Hash
    key_exchange: KeyExchange
    #: Implicit IV bytes from the key block / traffic secret (``fixed_iv_length``).
    fixed_iv_length: int
    #: Explicit nonce bytes carried in each record (``record_iv_length``).
    record_iv_length: int
    # Derived from the fields above when the table is built (``_info``), and kept as fields:
    # every handshake reads them several times, and a property is a Python call each time.
    #: AEAD key length in bytes.
    key_length: int
    #: AEAD tag length in bytes.
    tag_length: int
    #: True when the server authenticates with a certificate (ECDHE_ECDSA, ECDHE_RSA and
    #: TLS 1.3 without PSK).
    uses_certificate: bool
    #: True when a TLS 1.2 suite's key exchange is (EC)DHE, alone or with a PSK (all but
    #: plain PSK, RFC 4279 §2): its handshake needs a group.
    uses_group: bool
    #: True for a TLS 1.3 / DTLS 1.3 suite.
    is_tls13: bool


_CS = CipherSuite
_A = AeadAlgorithm
_K = KeyExchange


def _info(
    suite: CipherSuite,
    aead: AeadAlgorithm,
    hash: Hash,
    kx: KeyExchange,
    fixed_iv_length: int,
    record_iv_length: int,
) -> SuiteInfo:
    return SuiteInfo(
        suite,
        aead,
        hash,
        kx,
        fixed_iv_length,
        record_iv_length,
        key_length=aead.key_length,
        tag_length=aead.tag_length,
        uses_certificate=kx not in (_K.PSK, _K.ECDHE_PSK),
        uses_group=kx is not _K.PSK,
        is_tls13=kx is _K.TLS13,
    )


def _tls13(suite: CipherSuite, aead: AeadAlgorithm, hash: Hash) -> SuiteInfo:
    # RFC 8446 §5.3: iv_length = max(8, N_MIN) = 12 for every AEAD here; no explicit nonce.
    return _info(suite, aead, hash, _K.TLS13, 12, 0)


def _tls12(suite: CipherSuite, aead: AeadAlgorithm, hash: Hash, kx: KeyExchange) -> SuiteInfo:
    if aead is _A.CHACHA20_POLY1305:
        # RFC 7905 §2: 12-byte fixed IV, nonce = IV XOR padded sequence number.
        return _info(suite, aead, hash, kx, 12, 0)
    # RFC 5288 §3 (GCM), RFC 6655 §3 (CCM): 4-byte salt + 8-byte explicit nonce.
    return _info(suite, aead, hash, kx, 4, 8)


_S256 = Hash.SHA256
_S384 = Hash.SHA384

SUITES: dict[CipherSuite, SuiteInfo] = {
    info.suite: info
    for info in (
        _tls13(_CS.TLS_AES_128_GCM_SHA256, _A.AES_128_GCM, _S256),
        _tls13(_CS.TLS_AES_256_GCM_SHA384, _A.AES_256_GCM, _S384),
        _tls13(_CS.TLS_CHACHA20_POLY1305_SHA256, _A.CHACHA20_POLY1305, _S256),
        _tls13(_CS.TLS_AES_128_CCM_SHA256, _A.AES_128_CCM, _S256),
        _tls13(_CS.TLS_AES_128_CCM_8_SHA256, _A.AES_128_CCM_8, _S256),
        # RFC 5289 §3.2
        _tls12(_CS.TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256, _A.AES_128_GCM, _S256, _K.ECDHE_ECDSA),
        _tls12(_CS.TLS_ECDHE_ECDSA_WITH_AES_256_GCM_SHA384, _A.AES_256_GCM, _S384, _K.ECDHE_ECDSA),
        _tls12(_CS.TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256, _A.AES_128_GCM, _S256, _K.ECDHE_RSA),
        _tls12(_CS.TLS_ECDHE_RSA_WITH_AES_256_GCM_SHA384, _A.AES_256_GCM, _S384, _K.ECDHE_RSA),
        # RFC 7905 §2
        _tls12(
            _CS.TLS_ECDHE_RSA_WITH_CHACHA20_POLY1305_SHA256,
            _A.CHACHA20_POLY1305,
            _S256,
            _K.ECDHE_RSA,
        ),
        _tls12(
            _CS.TLS_ECDHE_ECDSA_WITH_CHACHA20_POLY1305_SHA256,
            _A.CHACHA20_POLY1305,
            _S256,
            _K.ECDHE_ECDSA,
        ),
        _tls12(_CS.TLS_PSK_WITH_CHACHA20_POLY1305_SHA256, _A.CHACHA20_POLY1305, _S256, _K.PSK),
        _tls12(
            _CS.TLS_ECDHE_PSK_WITH_CHACHA20_POLY1305_SHA256,
            _A.CHACHA20_POLY1305,
            _S256,
            _K.ECDHE_PSK,
        ),
        # RFC 7251 §2 (ECDHE_ECDSA with CCM; the PRF is SHA-256)
        _tls12(_CS.TLS_ECDHE_ECDSA_WITH_AES_128_CCM, _A.AES_128_CCM, _S256, _K.ECDHE_ECDSA),
        _tls12(_CS.TLS_ECDHE_ECDSA_WITH_AES_128_CCM_8, _A.AES_128_CCM_8, _S256, _K.ECDHE_ECDSA),
        # RFC 5487 §3.1 (PSK with GCM)
        _tls12(_CS.TLS_PSK_WITH_AES_128_GCM_SHA256, _A.AES_128_GCM, _S256, _K.PSK),
        _tls12(_CS.TLS_PSK_WITH_AES_256_GCM_SHA384, _A.AES_256_GCM, _S384, _K.PSK),
        # RFC 6655 §4 (PSK with CCM)
        _tls12(_CS.TLS_PSK_WITH_AES_128_CCM, _A.AES_128_CCM, _S256, _K.PSK),
        _tls12(_CS.TLS_PSK_WITH_AES_128_CCM_8, _A.AES_128_CCM_8, _S256, _K.PSK),
        # RFC 8442 §3
        _tls12(_CS.TLS_ECDHE_PSK_WITH_AES_128_GCM_SHA256, _A.AES_128_GCM, _S256, _K.ECDHE_PSK),
    )
}


# SUITES by the integer code: its keys are IntEnum members, which hash and compare as their
# integers, so a plain int finds its entry without converting it to the enum first (two
# Python calls each time, several per handshake).
_BY_CODE = cast("dict[int, SuiteInfo]", SUITES)


def suite_info(suite: CipherSuite | int) -> SuiteInfo:
    """The table entry for ``suite``; `UsageError` for a value we do not implement (callers
    filter a peer's offer with ``suite in SUITES`` first)."""
    info = _BY_CODE.get(suite)
    if info is None:
        raise UsageError(f"cipher suite {suite:#06x} is not implemented")
    return info
