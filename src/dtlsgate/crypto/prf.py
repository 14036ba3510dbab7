"""TLS 1.2 / DTLS 1.2 key derivation: the PRF and what is built on it.

- ``prf``: PRF(secret, label, seed) = P_hash(secret, label + seed) (RFC 5246 §5), with the
  suite's hash (SHA-256, or SHA-384 for *_SHA384 suites).
- master secret (RFC 5246 §8.1) and extended master secret (RFC 7627 §4);
- key block expansion into write keys and IVs (RFC 5246 §6.3);
- Finished ``verify_data`` (RFC 5246 §7.4.9, 12 bytes);
- the PSK premaster secrets (RFC 4279 §2, RFC 5489 §2) and the exporter (RFC 5705 §4).
"""

from __future__ import annotations

from dtlsgate.crypto.hashes import Hash, KeyedHmac
from dtlsgate.crypto.suites import SuiteInfo
from dtlsgate.errors import UsageError

__all__ = [
    "MASTER_SECRET_LENGTH",
    "VERIFY_DATA_LENGTH",
    "export_keying_material",
    "extended_master_secret",
    "key_block",
    "master_secret",
    "prf",
    "psk_premaster_secret",
    "verify_data",
]

#: RFC 5246 §8.1: master_secret is always 48 bytes.
MASTER_SECRET_LENGTH = 48
#: RFC 5246 §7.4.9: verify_data_length defaults to 12 for every suite we implement.
VERIFY_DATA_LENGTH = 12


def prf(hash: Hash, secret: bytes | KeyedHmac, label: bytes, seed: bytes, length: int) -> bytes:
    """The TLS 1.2 PRF (RFC 5246 §5): ``P_<hash>(secret, label + seed)``, ``length`` bytes.
    ``secret`` may be given already keyed (`KeyedHmac`): the master secret keys the key
    block and both Finished messages."""
    if length < 0:
        raise UsageError("PRF output length must not be negative")
    keyed = secret if isinstance(secret, KeyedHmac) else KeyedHmac(hash, secret)
    return keyed.p_hash(label + seed, length)


def master_secret(
    hash: Hash, pre_master_secret: bytes, client_random: bytes, server_random: bytes
) -> bytes:
    """RFC 5246 §8.1: PRF(pre_master_secret, "master secret", ClientHello.random +
    ServerHello.random)[0..47]."""
    _check_randoms(client_random, server_random)
    return prf(
        hash,
        pre_master_secret,
        b"master secret",
        client_random + server_random,
        MASTER_SECRET_LENGTH,
    )


def extended_master_secret(hash: Hash, pre_master_secret: bytes, session_hash: bytes) -> bytes:
    """RFC 7627 §4: PRF(pre_master_secret, "extended master secret", session_hash)[0..47],
    ``session_hash`` being the transcript hash up to and including ClientKeyExchange."""
    return prf(
        hash, pre_master_secret, b"extended master secret", session_hash, MASTER_SECRET_LENGTH
    )


def key_block(
    suite: SuiteInfo, master: bytes | KeyedHmac, client_random: bytes, server_random: bytes
) -> tuple[bytes, bytes, bytes, bytes]:
    """Expand the master secret into write keys and IVs for ``suite`` (RFC 5246 §6.3: the seed
    is server_random + client_random, the reverse of the master secret's), cut in the
    block's order: client_write_key, server_write_key, client_write_iv, server_write_iv (no
    MAC keys for AEAD suites). A plain tuple: the caller unpacks it at once into its two
    cipher states."""
    if suite.is_tls13:
        raise UsageError(f"{suite.suite.name} is a TLS 1.3 suite; it has no TLS 1.2 key block")
    _check_randoms(client_random, server_random)
    k = suite.key_length
    iv = suite.fixed_iv_length
    block = prf(suite.hash, master, b"key expansion", server_random + client_random, 2 * (k + iv))
    return (
        block[0:k],
        block[k : 2 * k],
        block[2 * k : 2 * k + iv],
        block[2 * k + iv : 2 * k + 2 * iv],
    )


def verify_data(
    hash: Hash, master: bytes | KeyedHmac, is_client: bool, handshake_hash: bytes
) -> bytes:
    """Finished.verify_data (RFC 5246 §7.4.9): PRF(master_secret, "client finished" or
    "server finished", Hash(handshake_messages))[0..11]."""
    label = b"client finished" if is_client else b"server finished"
    return prf(hash, master, label, handshake_hash, VERIFY_DATA_LENGTH)


def psk_premaster_secret(psk: bytes, other_secret: bytes | None = None) -> bytes:
    """The premaster secret of the PSK key exchanges: ``uint16 len || other_secret ||
    uint16 len || psk``, where other_secret is N zero bytes for plain PSK (RFC 4279 §2, N =
    len(psk)) and the ECDHE shared secret for ECDHE_PSK (RFC 5489 §2)."""
    if other_secret is None:
        other_secret = bytes(len(psk))
    if len(psk) > 0xFFFF or len(other_secret) > 0xFFFF:
        raise UsageError("PSK and other_secret must each be at most 65535 bytes")
    return len(other_secret).to_bytes(2, "big") + other_secret + len(psk).to_bytes(2, "big") + psk


def export_keying_material(
    hash: Hash,
    master: bytes,
    label: bytes,
    client_random: bytes,
    server_random: bytes,
    context: bytes | None,
    length: int,
) -> bytes:
    """RFC 5705 §4: PRF(master_secret, label, client_random + server_random [+ uint16
    context length + context])."""
    seed = client_random + server_random
    if context is not None:
        if len(context) > 0xFFFF:
            raise UsageError("exporter context must be at most 65535 bytes")
        seed += len(context).to_bytes(2, "big") + context
    return prf(hash, master, label, seed, length)


def _check_randoms(client_random: bytes, server_random: bytes) -> None:
    # RFC 5246 §7.4.1.2: Random is exactly 32 bytes.
    if len(client_random) != 32 or len(server_random) != 32:
        raise UsageError("ClientHello.random and ServerHello.random must be 32 bytes each")
