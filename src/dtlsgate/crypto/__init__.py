"""The crypto provider layer: everything cryptographic the protocol code needs, over the
``cryptography`` package.

Modules: `provider` (CryptoProvider, DefaultProvider, DeterministicProvider), `aead`,
`suites` (the cipher-suite table), `hashes` (transcript hash, HMAC), `prf` (TLS 1.2 key
derivation), `keyschedule` (TLS 1.3 / DTLS 1.3 HKDF key schedule), `kex` (key shares in
every group), `ffdhe` (RFC 7919 groups), `mlkem` (ML-KEM and the hybrids),
`signatures` (SignatureScheme sign/verify), `certs` (loading and verifying certificates).
The most used names are re-exported here.
"""

from dtlsgate.crypto.aead import Aead, AeadAlgorithm
from dtlsgate.crypto.hashes import Hash, TranscriptHash
from dtlsgate.crypto.kex import SUPPORTED_GROUPS, KeyShare
from dtlsgate.crypto.keyschedule import (
    DTLS13_LABEL_PREFIX,
    TLS13_LABEL_PREFIX,
    KeySchedule,
    derive_secret,
    hkdf_expand_label,
    hkdf_extract,
)
from dtlsgate.crypto.provider import CryptoProvider, DefaultProvider, DeterministicProvider
from dtlsgate.crypto.suites import SUITES, KeyExchange, SuiteInfo, suite_info

__all__ = [
    "DTLS13_LABEL_PREFIX",
    "SUITES",
    "SUPPORTED_GROUPS",
    "TLS13_LABEL_PREFIX",
    "Aead",
    "AeadAlgorithm",
    "CryptoProvider",
    "DefaultProvider",
    "DeterministicProvider",
    "Hash",
    "KeyExchange",
    "KeySchedule",
    "KeyShare",
    "SuiteInfo",
    "TranscriptHash",
    "derive_secret",
    "hkdf_expand_label",
    "hkdf_extract",
    "suite_info",
]
