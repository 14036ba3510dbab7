"""Hash functions, HMAC and the handshake transcript hash.

The hashes a TLS/DTLS cipher suite or signature scheme names (`Hash`), an incremental and
copyable `TranscriptHash` (RFC 8446 §4.4.1, RFC 5246 §7.4.9), and the synthetic
``message_hash`` message that replaces ClientHello1 after a HelloRetryRequest.
"""

from __future__ import annotations

import enum
import hashlib
import hmac as _hmac
from typing import TYPE_CHECKING

from cryptography.hazmat.primitives import hashes

if TYPE_CHECKING:
    from hashlib import _Hash

__all__ = [
    "Hash",
    "TranscriptHash",
    "constant_time_equal",
    "hmac_digest",
    "message_hash",
    "message_hash_from_digest",
]


class Hash(enum.Enum):
    """A hash named by a cipher suite (PRF / HKDF hash) or a signature scheme."""

    SHA256 = "sha256"
    SHA384 = "sha384"
    SHA512 = "sha512"

    # Members are singletons compared by identity, so the identity hash agrees with
    # equality; Enum's own __hash__ is Python code (hash of the name), about 0.3 us per dict
    # lookup keyed by a member, and every handshake makes several (the PRF's KeyedHmac).
    __hash__ = object.__hash__

    def __init__(self, name: str) -> None:
        #: Output length in bytes (``Hash.length`` in RFC 8446): a plain attribute of each
        #: member, read two dozen times per handshake by the key schedule (a property was
        #: a Python call and a dict lookup per read).
        self.digest_size: int = hashlib.new(name).digest_size

    def new(self, data: bytes = b"") -> _Hash:
        """A fresh hashlib object for this hash."""
        return _CONSTRUCTORS[self](data)

    def digest(self, data: bytes) -> bytes:
        """One-shot hash of ``data``."""
        return _CONSTRUCTORS[self](data).digest()

    def empty_digest(self) -> bytes:
        """Hash of the empty string (``Transcript-Hash("")`` in RFC 8446 §7.1)."""
        return _EMPTY_DIGESTS[self]

    def cryptography_hash(self) -> hashes.HashAlgorithm:
        """The matching ``cryptography`` hash object (for signatures)."""
        if self is Hash.SHA256:
            return hashes.SHA256()
        if self is Hash.SHA384:
            return hashes.SHA384()
        return hashes.SHA512()


# hashlib's named constructors: about a third cheaper than hashlib.new(name), which looks
# the algorithm up by name on every call.
_CONSTRUCTORS = {
    Hash.SHA256: hashlib.sha256,
    Hash.SHA384: hashlib.sha384,
    Hash.SHA512: hashlib.sha512,
}
_BLOCK_SIZES = {Hash.SHA256: 64, Hash.SHA384: 128, Hash.SHA512: 128}
# A constant the TLS 1.3 key schedule takes twice per handshake ("derived", RFC 8446 §7.1).
_EMPTY_DIGESTS = {hash: new().digest() for hash, new in _CONSTRUCTORS.items()}


class KeyedHmac:
    """HMAC (RFC 2104) under one key, for many messages: the key schedule (the ipad and
    opad blocks, already hashed, RFC 2104 §4) is computed once and copied per message.
    With OpenSSL 3 behind hashlib, keying an HMAC costs more than the MAC itself, and the
    TLS 1.2 PRF computes two MACs per output block under the same key."""

    __slots__ = ("_inner", "_outer")

    def __init__(self, hash: Hash, key: bytes) -> None:
        new = _CONSTRUCTORS[hash]
        block = _BLOCK_SIZES[hash]
        if len(key) > block:
            key = new(key).digest()
        key = key.ljust(block, b"\x00")
        self._inner = new(key.translate(_IPAD))
        self._outer = new(key.translate(_OPAD))

    def digest(self, data: bytes) -> bytes:
        """HMAC(key, data)."""
        inner = self._inner.copy()
        inner.update(data)
        outer = self._outer.copy()
        outer.update(inner.digest())
        return outer.digest()

    def p_hash(self, seed: bytes, length: int) -> bytes:
        """RFC 5246 §5's data expansion function P_hash(key, seed), ``length`` bytes:
        A(0) = seed, A(i) = HMAC(key, A(i-1)); the output is HMAC(key, A(1) + seed) +
        HMAC(key, A(2) + seed) + ...

        The two MACs of each block are ``digest`` written out: a handshake computes a dozen
        of them here, and the calls were a sixth of the PRF's Python work."""
        inner, outer = self._inner, self._outer
        out = b""
        a = seed
        while len(out) < length:
            h = inner.copy()
            h.update(a)
            o = outer.copy()
            o.update(h.digest())
            a = o.digest()  # A(i) = HMAC(key, A(i-1))
            h = inner.copy()
            h.update(a + seed)
            o = outer.copy()
            o.update(h.digest())
            out += o.digest()  # HMAC(key, A(i) + seed)
        return out[:length]


_IPAD = bytes(b ^ 0x36 for b in range(256))
_OPAD = bytes(b ^ 0x5C for b in range(256))


def hmac_digest(hash: Hash, key: bytes, data: bytes) -> bytes:
    """HMAC (RFC 2104) of ``data`` under ``key``: H(K ^ opad || H(K ^ ipad || data)).

    Written out over two hashlib hashes: with OpenSSL 3 behind hashlib, its one-call HMAC
    sets up a MAC context per call that costs more than the two hashes (callgrind: about
    24,000 instructions against 19,600 for a 32-byte key), and the TLS 1.3 key schedule
    makes two dozen of them per handshake, each under a different key."""
    new = _CONSTRUCTORS[hash]
    block = _BLOCK_SIZES[hash]
    if len(key) > block:
        key = new(key).digest()
    key = key.ljust(block, b"\x00")
    return new(key.translate(_OPAD) + new(key.translate(_IPAD) + data).digest()).digest()


def constant_time_equal(a: bytes, b: bytes) -> bool:
    """Compare two MACs without leaking the position of the first difference."""
    return _hmac.compare_digest(a, b)


def message_hash(hash: Hash, client_hello1: bytes) -> bytes:
    """The synthetic handshake message that replaces ClientHello1 in the transcript after a
    HelloRetryRequest: ``message_hash(254) || 00 00 || Hash.length || Hash(ClientHello1)``
    (RFC 8446 §4.4.1). ``client_hello1`` is the whole handshake message as hashed (for DTLS
    1.3, without the DTLS-only header fields, RFC 9147 §5.2)."""
    return message_hash_from_digest(hash.digest(client_hello1))


def message_hash_from_digest(digest: bytes) -> bytes:
    """Like `message_hash`, from an already computed ``Hash(ClientHello1)`` (a stateless
    server keeps only that digest in its cookie, RFC 8446 §4.2.2)."""
    # RFC 8446 §4.4.1: HandshakeType message_hash = 254, uint24 length = Hash.length.
    return bytes((254, 0, 0, len(digest))) + digest


class TranscriptHash:
    """Running hash over the handshake messages exactly as received or sent.

    ``update`` feeds bytes, ``digest`` returns the hash so far without finishing it, ``copy``
    forks the state (a TLS 1.2 CertificateVerify and a Finished need hashes at different points).
    """

    __slots__ = ("_state", "hash")

    def __init__(self, hash: Hash, data: bytes = b"", state: _Hash | None = None) -> None:
        """A transcript of ``hash`` that starts with ``data``, or (``copy``) continues
        ``state``."""
        self.hash = hash
        self._state = hash.new(data) if state is None else state

    def update(self, data: bytes) -> None:
        """Add handshake message bytes to the transcript."""
        self._state.update(data)

    def digest(self) -> bytes:
        """``Transcript-Hash`` of everything fed so far; the transcript continues."""
        return self._state.digest()

    def copy(self) -> TranscriptHash:
        """An independent transcript with the same content."""
        return TranscriptHash(self.hash, b"", self._state.copy())

    @classmethod
    def after_hello_retry(cls, hash: Hash, client_hello1: bytes) -> TranscriptHash:
        """A transcript that starts with ``message_hash(ClientHello1)`` (RFC 8446 §4.4.1);
        the HelloRetryRequest and later messages are then fed with ``update``."""
        return cls(hash, message_hash(hash, client_hello1))
