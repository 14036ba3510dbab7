"""AEAD algorithms used by TLS 1.2, TLS 1.3 and DTLS records.

`AeadAlgorithm` names the five algorithms (RFC 5116 AES-GCM, RFC 8439 ChaCha20-Poly1305,
RFC 6655 / RFC 7251 AES-CCM and AES-CCM-8); `Aead` is one keyed instance with ``seal`` and
``open``. ``open`` returns ``None`` on an authentication failure: record layers drop such
records silently (RFC 6347 §4.1.2.7, RFC 9147 §4.5.3), so that path raises nothing.
`keyed_primitive` is the keyed ``cryptography`` object alone (`AeadPrimitive`), for a
record layer that builds its nonces itself and keeps nothing else of an `Aead`.
"""

from __future__ import annotations

import enum
import functools
from collections.abc import Callable
from typing import Protocol

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESCCM, AESGCM, ChaCha20Poly1305

from dtlsgate.errors import UsageError

__all__ = ["NONCE_LENGTH", "Aead", "AeadAlgorithm", "AeadPrimitive", "keyed_primitive"]

#: Every algorithm here takes a 96-bit nonce (RFC 5116 §3.2, RFC 8446 §5.3, RFC 6655 §3).
NONCE_LENGTH = 12


class AeadAlgorithm(enum.Enum):
    """An AEAD algorithm with its key and tag lengths."""

    AES_128_GCM = "AES_128_GCM"
    AES_256_GCM = "AES_256_GCM"
    CHACHA20_POLY1305 = "CHACHA20_POLY1305"
    AES_128_CCM = "AES_128_CCM"
    AES_128_CCM_8 = "AES_128_CCM_8"

    # Members are singletons compared by identity (as `Hash`'s): Enum's own __hash__ is a
    # Python-level call per dict look-up, and every keyed `Aead` makes one.
    __hash__ = object.__hash__

    def __init__(self, name: str) -> None:
        #: Key length in bytes, and authentication tag length in bytes (8 only for CCM-8,
        #: RFC 6655 §3): plain attributes of each member, read per epoch by the record
        #: layers (a property was a Python call and a dict look-up per read).
        self.key_length: int = 32 if name in ("AES_256_GCM", "CHACHA20_POLY1305") else 16
        self.tag_length: int = 8 if name == "AES_128_CCM_8" else 16


_GCM = (AeadAlgorithm.AES_128_GCM, AeadAlgorithm.AES_256_GCM)

_Cipher = AESGCM | ChaCha20Poly1305 | AESCCM


def _constructor(algorithm: AeadAlgorithm) -> Callable[[bytes], _Cipher]:
    """What makes the keyed ``cryptography`` object of ``algorithm`` from a key."""
    if algorithm in _GCM:
        return AESGCM
    if algorithm is AeadAlgorithm.CHACHA20_POLY1305:
        return ChaCha20Poly1305
    return functools.partial(AESCCM, tag_length=algorithm.tag_length)


# Each algorithm's constructor, looked up once per keyed `Aead` (its lengths are the
# member's own attributes).
_CONSTRUCTORS: dict[AeadAlgorithm, Callable[[bytes], _Cipher]] = {
    algorithm: _constructor(algorithm) for algorithm in AeadAlgorithm
}


class AeadPrimitive(Protocol):
    """A keyed AEAD as ``cryptography`` makes it: ``encrypt`` returns ciphertext || tag,
    ``decrypt`` raises ``InvalidTag`` when the input does not authenticate (where
    `Aead.open` returns None). The nonce is the caller's, of `NONCE_LENGTH` bytes."""

    def encrypt(self, nonce: bytes, data: bytes, associated_data: bytes | None) -> bytes: ...

    def decrypt(self, nonce: bytes, data: bytes, associated_data: bytes | None) -> bytes: ...


def keyed_primitive(algorithm: AeadAlgorithm, key: bytes) -> AeadPrimitive:
    """The keyed ``cryptography`` object of ``algorithm`` alone: what `Aead.primitive`
    holds, for a record layer that keeps nothing else of an `Aead` (the DTLS 1.2 one: its
    suite gives it the tag length), made without an `Aead` around it, twice per
    handshake."""
    key_length = algorithm.key_length
    if len(key) != key_length:
        raise UsageError(f"{algorithm.value} needs a {key_length}-byte key, got {len(key)}")
    return _CONSTRUCTORS[algorithm](key)


class Aead:
    """One AEAD algorithm under one key. Create it once per epoch and keep it: building the
    underlying ``cryptography`` object is the costly part (providers also cache it per key)."""

    __slots__ = ("_cipher", "algorithm", "key_length", "tag_length")

    #: Length of the full per-record nonce, which is also the TLS 1.3 / DTLS 1.3
    #: ``iv_length`` (RFC 8446 §5.3: the write IV is as long as the nonce).
    iv_length = NONCE_LENGTH

    def __init__(self, algorithm: AeadAlgorithm, key: bytes) -> None:
        self._cipher = keyed_primitive(algorithm, key)  # checks the key's length
        self.algorithm = algorithm
        self.key_length = algorithm.key_length
        self.tag_length = algorithm.tag_length

    @property
    def primitive(self) -> AeadPrimitive:
        """The keyed ``cryptography`` object, for record layers that build nonces themselves
        and call its ``encrypt``/``decrypt`` directly on their per-record hot path (its
        ``decrypt`` raises ``InvalidTag`` where ``open`` returns None)."""
        return self._cipher

    def seal(self, nonce: bytes, plaintext: bytes, aad: bytes) -> bytes:
        """Encrypt and authenticate: returns ciphertext || tag."""
        if len(nonce) != NONCE_LENGTH:
            raise UsageError(f"AEAD nonce must be {NONCE_LENGTH} bytes, got {len(nonce)}")
        return self._cipher.encrypt(nonce, plaintext, aad)

    def open(self, nonce: bytes, ciphertext: bytes, aad: bytes) -> bytes | None:
        """Check and decrypt ciphertext || tag; ``None`` if it does not authenticate."""
        if len(nonce) != NONCE_LENGTH:
            raise UsageError(f"AEAD nonce must be {NONCE_LENGTH} bytes, got {len(nonce)}")
        if len(ciphertext) < self.tag_length:
            return None
        try:
            return self._cipher.decrypt(nonce, ciphertext, aad)
        except InvalidTag:
            return None

    def __repr__(self) -> str:
        return f"Aead({self.algorithm.value})"
