"""Ephemeral (EC)DHE key exchange for the ``key_share`` extension (TLS 1.3) and the
ServerKeyExchange / ClientKeyExchange ECDHE parameters (TLS 1.2, RFC 8422).

`KeyShare` is our ephemeral private key for one group; ``public_bytes`` is what goes on the
wire and ``exchange`` turns the peer's public value into the shared secret. Every invalid peer
value (wrong length, point not on the curve, compressed point, X25519/X448 all-zero result)
raises `IllegalParameter`, never another exception (RFC 8446 §4.2.8.2, §7.4.2; RFC 8422 §5.11).
"""

from __future__ import annotations

from typing import cast

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, x448, x25519

from dtlsgate.errors import IllegalParameter, UsageError
from dtlsgate.wire.enums import NamedGroup

__all__ = ["SUPPORTED_GROUPS", "KeyShare", "public_length"]

_PrivateKey = x25519.X25519PrivateKey | x448.X448PrivateKey | ec.EllipticCurvePrivateKey

#: Groups we implement, in our order of preference.
SUPPORTED_GROUPS: tuple[NamedGroup, ...] = (
    NamedGroup.x25519,
    NamedGroup.secp256r1,
    NamedGroup.secp384r1,
    NamedGroup.x448,
)

# Read on every key generation and exchange: in Python 3.11 a module global is about 0.17 us
# cheaper than ``NamedGroup.x25519`` (the enum class's __getattr__ hook).
_X25519 = NamedGroup.x25519
_X448 = NamedGroup.x448

_NIST_CURVES: dict[NamedGroup, type[ec.EllipticCurve]] = {
    NamedGroup.secp256r1: ec.SECP256R1,
    NamedGroup.secp384r1: ec.SECP384R1,
}

# RFC 8446 §4.2.8.2: X25519 and X448 send the raw u-coordinate (32 / 56 bytes); NIST curves
# send the uncompressed point 0x04 || X || Y (65 / 97 bytes).
_PUBLIC_LENGTHS = {
    NamedGroup.x25519: 32,
    NamedGroup.x448: 56,
    NamedGroup.secp256r1: 65,
    NamedGroup.secp384r1: 97,
}
_SCALAR_LENGTHS = {
    NamedGroup.x25519: 32,
    NamedGroup.x448: 56,
    NamedGroup.secp256r1: 32,
    NamedGroup.secp384r1: 48,
}


def public_length(group: NamedGroup) -> int:
    """Wire length of a public value of ``group`` (RFC 8446 §4.2.8.2)."""
    try:
        return _PUBLIC_LENGTHS[group]
    except KeyError:
        raise UsageError(f"group {group!r} is not implemented") from None


class KeyShare:
    """Our ephemeral key pair in one named group."""

    __slots__ = ("_private", "group", "public_bytes")

    def __init__(self, group: NamedGroup, private_key: _PrivateKey) -> None:
        self.group = group
        self._private = private_key
        self.public_bytes = _encode_public(group, private_key)

    @classmethod
    def generate(cls, group: NamedGroup) -> KeyShare:
        """A fresh key pair from ``cryptography``'s own random generator."""
        if group is _X25519:
            return cls(group, x25519.X25519PrivateKey.generate())
        if group is _X448:
            return cls(group, x448.X448PrivateKey.generate())
        if group in _NIST_CURVES:
            return cls(group, ec.generate_private_key(_NIST_CURVES[group]()))
        raise UsageError(f"group {group!r} is not implemented")

    @classmethod
    def from_private_bytes(cls, group: NamedGroup, private: bytes) -> KeyShare:
        """A key pair from a given private scalar (test vectors, deterministic providers).
        For NIST curves ``private`` is the big-endian scalar; it must be in [1, n-1]."""
        if len(private) != _SCALAR_LENGTHS.get(group, -1):
            raise UsageError(f"wrong private key length {len(private)} for {group!r}")
        if group is _X25519:
            return cls(group, x25519.X25519PrivateKey.from_private_bytes(private))
        if group is _X448:
            return cls(group, x448.X448PrivateKey.from_private_bytes(private))
        try:
            key = ec.derive_private_key(int.from_bytes(private, "big"), _NIST_CURVES[group]())
        except ValueError as exc:
            raise UsageError(f"invalid private scalar for {group!r}: {exc}") from None
        return cls(group, key)

    def exchange(self, peer_public: bytes) -> bytes:
        """The shared secret with the peer's public value: the X25519/X448 output, or the
        x-coordinate of the ECDH point for NIST curves (RFC 8446 §7.4.2, RFC 8422 §5.10).
        Raises `IllegalParameter` for any invalid peer value."""
        group = self.group
        expected = _PUBLIC_LENGTHS[group]
        if len(peer_public) != expected:
            raise IllegalParameter(
                f"{group.name} key share must be {expected} bytes, got {len(peer_public)}"
            )
        # The key's type follows from the group (see generate): branching on the group
        # spares isinstance checks against cryptography's abstract key classes, which go
        # through ABCMeta (up to 1 us each).
        try:
            if group is _X25519:
                x25519_key = cast(x25519.X25519PrivateKey, self._private)
                shared = x25519_key.exchange(x25519.X25519PublicKey.from_public_bytes(peer_public))
            elif group is _X448:
                x448_key = cast(x448.X448PrivateKey, self._private)
                shared = x448_key.exchange(x448.X448PublicKey.from_public_bytes(peer_public))
            else:
                # RFC 8446 §4.2.8.2: only the uncompressed form (legacy_form = 4) is valid.
                if peer_public[0] != 0x04:
                    raise IllegalParameter(f"{group.name} point is not uncompressed")
                # from_encoded_point checks that the point is on the curve (RFC 8446 §4.2.8.2
                # requires the receiver to validate it).
                ec_key = cast(ec.EllipticCurvePrivateKey, self._private)
                peer = ec.EllipticCurvePublicKey.from_encoded_point(ec_key.curve, peer_public)
                shared = ec_key.exchange(ec.ECDH(), peer)
        except ValueError as exc:
            # cryptography raises ValueError for a point off the curve and for an all-zero
            # X25519/X448 result.
            raise IllegalParameter(f"invalid {self.group.name} key share: {exc}") from None
        # RFC 8446 §7.4.2 / RFC 7748 §6: an all-zero X25519/X448 output must be rejected.
        if not any(shared):
            raise IllegalParameter(f"{self.group.name} shared secret is all zeros")
        return shared

    def __repr__(self) -> str:
        return f"KeyShare({self.group.name}, public={self.public_bytes.hex()[:16]}...)"


def _encode_public(group: NamedGroup, private_key: _PrivateKey) -> bytes:
    public = private_key.public_key()
    if group in _NIST_CURVES:
        return public.public_bytes(
            serialization.Encoding.X962, serialization.PublicFormat.UncompressedPoint
        )
    return public.public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)
