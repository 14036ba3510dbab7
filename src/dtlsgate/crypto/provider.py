"""The crypto provider: the one object through which the protocol layers get randomness,
AEAD instances, ephemeral key shares and signatures, so tests can inject their own.

- `CryptoProvider`: the interface (a Protocol);
- `DefaultProvider`: ``cryptography`` plus ``os.urandom`` (the only use of it in the core);
- `DeterministicProvider`: the same algorithms with a seeded SHA-256 counter stream for
  ``random`` and key shares drawn from it, so test transcripts are reproducible.
"""

from __future__ import annotations

import hashlib
import os
from typing import Protocol, runtime_checkable

from cryptography.hazmat.primitives.asymmetric.types import CertificatePublicKeyTypes

from dtlsgate.crypto.aead import Aead, AeadAlgorithm
from dtlsgate.crypto.kex import SUPPORTED_GROUPS, KeyShare
from dtlsgate.crypto.mlkem import Kem
from dtlsgate.crypto.mlkem import encapsulate as _encapsulate
from dtlsgate.crypto.signatures import PrivateKey, PublicKey
from dtlsgate.crypto.signatures import sign as _sign
from dtlsgate.crypto.signatures import verify as _verify
from dtlsgate.errors import UsageError
from dtlsgate.wire.enums import NamedGroup, SignatureScheme

__all__ = ["CryptoProvider", "DefaultProvider", "DeterministicProvider"]


@runtime_checkable
class CryptoProvider(Protocol):
    """What the protocol layers need from cryptography."""

    supported_groups: tuple[NamedGroup, ...]

    def random(self, n: int) -> bytes:
        """``n`` bytes from a cryptographically secure generator."""
        ...

    def aead(self, algorithm: AeadAlgorithm, key: bytes) -> Aead:
        """A keyed AEAD (may be cached per key)."""
        ...

    def generate_key_share(self, group: NamedGroup) -> KeyShare:
        """A fresh ephemeral key pair in ``group``."""
        ...

    def encapsulate(self, kem: Kem, encapsulation_key: bytes) -> tuple[bytes, bytes]:
        """(ciphertext, shared secret) for a peer's ML-KEM encapsulation key (see
        `dtlsgate.crypto.mlkem.encapsulate`)."""
        ...

    def sign(
        self, key: PrivateKey, scheme: SignatureScheme, data: bytes, *, tls13: bool = True
    ) -> bytes:
        """Sign ``data`` with ``scheme`` (see `dtlsgate.crypto.signatures.sign`)."""
        ...

    def verify(
        self,
        key: PublicKey | CertificatePublicKeyTypes,
        scheme: SignatureScheme,
        data: bytes,
        signature: bytes,
        *,
        tls13: bool = True,
    ) -> None:
        """Check a peer signature (see `dtlsgate.crypto.signatures.verify`)."""
        ...


class DefaultProvider:
    """``cryptography`` for every primitive, ``os.urandom`` for randomness."""

    supported_groups: tuple[NamedGroup, ...] = SUPPORTED_GROUPS

    def random(self, n: int) -> bytes:
        """``n`` bytes from the operating system's CSPRNG."""
        if n < 0:
            raise UsageError("random(n) needs n >= 0")
        return os.urandom(n)

    def aead(self, algorithm: AeadAlgorithm, key: bytes) -> Aead:
        """A keyed AEAD. Record layers create one per epoch and direction and keep it, so
        nothing is cached here: a cache would keep finished connections' keys alive."""
        return Aead(algorithm, key)

    def generate_key_share(self, group: NamedGroup) -> KeyShare:
        """A fresh key pair: X25519/X448 private keys from ``os.urandom``, the other groups'
        from ``cryptography``'s generator."""
        return KeyShare.generate(group, os.urandom)

    def encapsulate(self, kem: Kem, encapsulation_key: bytes) -> tuple[bytes, bytes]:
        """A fresh encapsulation; ``cryptography`` draws its randomness."""
        return _encapsulate(kem, encapsulation_key)

    def sign(
        self, key: PrivateKey, scheme: SignatureScheme, data: bytes, *, tls13: bool = True
    ) -> bytes:
        """Sign ``data`` (ECDSA nonces and PSS salts are random)."""
        return _sign(key, scheme, data, tls13=tls13)

    def verify(
        self,
        key: PublicKey | CertificatePublicKeyTypes,
        scheme: SignatureScheme,
        data: bytes,
        signature: bytes,
        *,
        tls13: bool = True,
    ) -> None:
        """Check a peer signature; `DecryptError` when it is wrong."""
        _verify(key, scheme, data, signature, tls13=tls13)


# DeterministicProvider.encapsulate's memory: the oldest entry goes first past this many
# keys (a test process replays a few dozen handshakes; each entry is about 2.5 KB).
_MAX_ENCAPSULATIONS = 256
_ENCAPSULATIONS: dict[tuple[str, bytes], tuple[bytes, bytes]] = {}


class DeterministicProvider(DefaultProvider):
    """For tests: ``random`` is SHA-256(seed || counter) blocks, key shares come from it, and
    ECDSA uses RFC 6979 nonces. RSA-PSS salts stay random (``cryptography`` draws them)."""

    def __init__(self, seed: bytes | int | str = 0) -> None:
        if isinstance(seed, int):
            seed = seed.to_bytes(8, "big", signed=True)
        elif isinstance(seed, str):
            seed = seed.encode()
        self._seed = seed
        self._counter = 0
        self._buffer = b""

    def random(self, n: int) -> bytes:
        """The next ``n`` bytes of the seeded stream."""
        if n < 0:
            raise UsageError("random(n) needs n >= 0")
        while len(self._buffer) < n:
            block = hashlib.sha256(self._seed + self._counter.to_bytes(8, "big")).digest()
            self._buffer += block
            self._counter += 1
        out, self._buffer = self._buffer[:n], self._buffer[n:]
        return out

    def generate_key_share(self, group: NamedGroup) -> KeyShare:
        """A key pair whose private value (scalar, exponent, ML-KEM seed) comes from the
        seeded stream. ML-KEM encapsulation (a server's side) stays random: ``cryptography``
        draws its randomness itself."""
        return KeyShare.from_random(group, self.random)

    def encapsulate(self, kem: Kem, encapsulation_key: bytes) -> tuple[bytes, bytes]:
        """The first encapsulation to this key made in this process, for any deterministic
        provider: ``cryptography`` takes no randomness for it, so repeating the result is
        what makes a transcript with an ML-KEM group reproducible (a replayed handshake sees
        the same ciphertext). A test shortcut only: real ciphertexts must never repeat
        (draft-ietf-tls-mlkem §4.2)."""
        key = (kem.name, encapsulation_key)
        result = _ENCAPSULATIONS.get(key)
        if result is None:
            result = _encapsulate(kem, encapsulation_key)
            if len(_ENCAPSULATIONS) >= _MAX_ENCAPSULATIONS:
                _ENCAPSULATIONS.pop(next(iter(_ENCAPSULATIONS)))
            _ENCAPSULATIONS[key] = result
        return result

    def sign(
        self, key: PrivateKey, scheme: SignatureScheme, data: bytes, *, tls13: bool = True
    ) -> bytes:
        """Sign with RFC 6979 deterministic ECDSA nonces."""
        return _sign(key, scheme, data, tls13=tls13, deterministic_ecdsa=True)
