"""Ephemeral key exchange for the ``key_share`` extension (TLS 1.3) and the ServerKeyExchange /
ClientKeyExchange ECDHE parameters (TLS 1.2, RFC 8422).

`KeyShare` is our ephemeral private key for one group; ``public_bytes`` is what goes on the
wire and ``exchange`` turns the peer's public value into the shared secret. The groups:

- elliptic curves: X25519, X448 (RFC 7748), secp256r1, secp384r1, secp521r1 (here);
- finite fields: ffdhe2048 ... ffdhe8192 (RFC 7919, `dtlsgate.crypto.ffdhe`; TLS 1.3 only);
- ML-KEM alone and the ECDHE-ML-KEM hybrids (`dtlsgate.crypto.mlkem`; TLS 1.3 only). For a KEM
  the client's `KeyShare` holds the decapsulation key and ``exchange`` decapsulates; the
  server does not generate a key pair but encapsulates: `respond` is the server's side of
  every group.

Every invalid peer value (wrong length, point not on the curve, compressed point, X25519/X448
all-zero result, FFDHE Y out of range, an encapsulation key that fails FIPS 203's check, a
ciphertext of the wrong size) raises `IllegalParameter`, never another exception (RFC 8446
§4.2.8.1, §4.2.8.2, §7.4.2; RFC 8422 §5.11; draft-ietf-tls-mlkem §4.2;
draft-ietf-tls-ecdhe-mlkem §3.1).
"""

from __future__ import annotations

import functools
import os
from collections.abc import Callable
from typing import Any, Protocol, cast

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, x448, x25519

from dtlsgate.crypto import ffdhe, mlkem
from dtlsgate.errors import IllegalParameter, UsageError
from dtlsgate.wire.enums import NamedGroup

__all__ = [
    "DEFAULT_TLS13_GROUPS",
    "ECDHE_GROUPS",
    "SUPPORTED_GROUPS",
    "KeyShare",
    "ecdhe_groups",
    "initial_key_share_groups",
    "is_kem",
    "public_length",
    "respond",
    "tls13_groups",
]

_PrivateKey = x25519.X25519PrivateKey | x448.X448PrivateKey | ec.EllipticCurvePrivateKey
_G = NamedGroup

#: The elliptic-curve groups: the only ones TLS 1.2 / DTLS 1.2 ECDHE may use (RFC 8422 §5.1.1;
#: FFDHE there belongs to the DHE suites, RFC 7919 §4, and ML-KEM is TLS 1.3 only).
ECDHE_GROUPS: tuple[NamedGroup, ...] = (
    _G.x25519,
    _G.secp256r1,
    _G.secp384r1,
    _G.x448,
    _G.secp521r1,
)

#: Every group we implement, in our order of preference: the hybrids first (a server picks
#: one whenever the client offers it), then the curves, the finite fields, and ML-KEM alone.
SUPPORTED_GROUPS: tuple[NamedGroup, ...] = (
    _G.X25519MLKEM768,
    _G.SecP256r1MLKEM768,
    _G.SecP384r1MLKEM1024,
    *ECDHE_GROUPS,
    *ffdhe.FFDHE_GROUPS,
    _G.MLKEM768,
    _G.MLKEM1024,
)
#: TLS 1.3's default preference (client supported_groups, server choice): all of them.
DEFAULT_TLS13_GROUPS = SUPPORTED_GROUPS
_IMPLEMENTED = frozenset(SUPPORTED_GROUPS)


_NIST_CURVES: dict[NamedGroup, type[ec.EllipticCurve]] = {
    NamedGroup.secp256r1: ec.SECP256R1,
    NamedGroup.secp384r1: ec.SECP384R1,
    NamedGroup.secp521r1: ec.SECP521R1,
}

# RFC 8446 §4.2.8.2: X25519 and X448 send the raw u-coordinate (32 / 56 bytes); NIST curves
# send the uncompressed point 0x04 || X || Y (65 / 97 / 133 bytes).
_PUBLIC_LENGTHS = {
    NamedGroup.x25519: 32,
    NamedGroup.x448: 56,
    NamedGroup.secp256r1: 65,
    NamedGroup.secp384r1: 97,
    NamedGroup.secp521r1: 133,
}
_SCALAR_LENGTHS = {
    NamedGroup.x25519: 32,
    NamedGroup.x448: 56,
    NamedGroup.secp256r1: 32,
    NamedGroup.secp384r1: 48,
    NamedGroup.secp521r1: 66,
}


# X25519 and X448 keys go through cryptography's DER loaders, which make the same OpenSSL key
# as ``X25519PrivateKey.from_private_bytes`` and ``X25519PublicKey.from_public_bytes`` (and as
# ``generate``, from our random bytes) without those methods' Python layer, an import
# statement and a backend check per call: about 13,800 instructions fewer per exchange
# (bench/RESULTS.md, ecdhe13). A raw key in DER is a fixed head and the raw value (RFC 8410
# §7: PKCS #8 OneAsymmetricKey with the key as an OCTET STRING in the privateKey OCTET
# STRING; §4: SubjectPublicKeyInfo with the key as the BIT STRING); the OIDs are
# id-X25519 1.3.101.110 and id-X448 1.3.101.111. The peer's value has its length checked
# before it is put in a structure, so the loader always sees the head's key type.
_MONTGOMERY_PRIVATE_HEAD = {
    NamedGroup.x25519: bytes.fromhex("302e020100300506032b656e04220420"),
    NamedGroup.x448: bytes.fromhex("3046020100300506032b656f043a0438"),
}
_MONTGOMERY_PUBLIC_HEAD = {
    NamedGroup.x25519: bytes.fromhex("302a300506032b656e032100"),
    NamedGroup.x448: bytes.fromhex("3042300506032b656f033900"),
}


def _montgomery_private(group: NamedGroup) -> Callable[[bytes], Any]:
    """The maker of an X25519 or X448 private key from its raw value (which OpenSSL clamps
    when it uses it, RFC 7748 §5)."""
    head = _MONTGOMERY_PRIVATE_HEAD[group]
    load = serialization.load_der_private_key

    def private_key(private: bytes) -> Any:
        return load(head + private, None)

    return private_key


_MONTGOMERY_PRIVATE = {group: _montgomery_private(group) for group in _MONTGOMERY_PRIVATE_HEAD}


def _montgomery_exchange(group: NamedGroup) -> Callable[[Any, bytes], bytes]:
    """The X25519 or X448 exchange of a private key with the peer's raw public value."""
    head = _MONTGOMERY_PUBLIC_HEAD[group]
    load = serialization.load_der_public_key

    def exchange(private: Any, peer_public: bytes) -> bytes:
        return cast(bytes, private.exchange(load(head + peer_public)))

    return exchange


_ECDH = ec.ECDH()  # an immutable parameter object, made once for every exchange


def _nist_exchange(private: Any, peer_public: bytes) -> bytes:
    """The ECDH of a NIST curve's private key with the peer's encoded point: its
    x-coordinate (RFC 8422 §5.10). ``from_encoded_point`` checks that the point is on the
    curve (RFC 8446 §4.2.8.2 requires the receiver to validate it)."""
    peer = ec.EllipticCurvePublicKey.from_encoded_point(private.curve, peer_public)
    shared: bytes = private.exchange(_ECDH, peer)
    return shared


# Each elliptic curve's key generation, exchange and public value encoding, looked up by
# the group once per key share instead of comparing the group with each curve in turn, with
# the encoding parameter objects read once (``serialization`` is a module wrapper whose
# every attribute read is a Python-level call). The key's type follows from the
# group: branching on it spares isinstance checks against cryptography's abstract key
# classes, which go through ABCMeta (up to 1 us each).
#
# A NIST curve's key is cryptography's: every route to one from our own scalar
# (``derive_private_key``, ``load_der_private_key``) adds OpenSSL's whole key check, about
# 160,000 instructions, and gives the same legacy key, exported to OpenSSL's provider at the
# exchange all the same (bench/RESULTS.md, ecdhe13). An X25519 or X448 private key is
# random bytes (`KeyShare.generate`).
_NIST_GENERATE: dict[NamedGroup, Callable[[], Any]] = {
    group: functools.partial(ec.generate_private_key, curve())
    for group, curve in _NIST_CURVES.items()
}
_CURVE_EXCHANGE: dict[NamedGroup, Callable[[Any, bytes], bytes]] = {
    NamedGroup.x25519: _montgomery_exchange(NamedGroup.x25519),
    NamedGroup.x448: _montgomery_exchange(NamedGroup.x448),
    **{group: _nist_exchange for group in _NIST_CURVES},
}
# RFC 8446 §4.2.8.2: the raw u-coordinate (X25519, X448), the uncompressed point (NIST).
_RAW = (serialization.Encoding.Raw, serialization.PublicFormat.Raw)
_UNCOMPRESSED = (serialization.Encoding.X962, serialization.PublicFormat.UncompressedPoint)
_CURVE_PUBLIC_FORMAT: dict[
    NamedGroup, tuple[serialization.Encoding, serialization.PublicFormat]
] = {
    NamedGroup.x25519: _RAW,
    NamedGroup.x448: _RAW,
    **{group: _UNCOMPRESSED for group in _NIST_CURVES},
}


def is_kem(group: int) -> bool:
    """Whether ``group`` is ML-KEM or an ML-KEM hybrid (the server encapsulates)."""
    return group in mlkem.KEMS or group in mlkem.HYBRIDS


def ecdhe_groups(groups: tuple[int, ...]) -> tuple[int, ...]:
    """The members of ``groups`` a TLS 1.2 / DTLS 1.2 ECDHE handshake may use."""
    return tuple(g for g in groups if g in ECDHE_GROUPS)


def tls13_groups(groups: tuple[int, ...] | None) -> tuple[NamedGroup, ...]:
    """A configured TLS 1.3 preference list (None: the default), checked: every member must
    be a group we implement, or `UsageError`."""
    if groups is None:
        return DEFAULT_TLS13_GROUPS
    if not groups:
        raise UsageError("groups must name at least one group")
    unknown = [g for g in groups if g not in _IMPLEMENTED]
    if unknown:
        names = ", ".join(g.name for g in SUPPORTED_GROUPS)
        raise UsageError(f"unsupported groups {unknown}; supported: {names}")
    return tuple(NamedGroup(g) for g in groups)


def initial_key_share_groups(groups: tuple[int, ...]) -> tuple[int, ...]:
    """The groups a client sends key shares for in its first ClientHello: the first group of
    its preference, and when that is ML-KEM based, also its first elliptic curve (so a server
    without ML-KEM needs no HelloRetryRequest). The default order gives X25519MLKEM768 and
    X25519, the pair browsers and OpenSSL 3.5 send."""
    first = groups[0]
    if not is_kem(first):
        return (first,)
    classic = next((g for g in groups if g in ECDHE_GROUPS), None)
    return (first,) if classic is None else (first, classic)


def public_length(group: NamedGroup) -> int:
    """Wire length of a client's public value of ``group`` (RFC 8446 §4.2.8.1, §4.2.8.2; for
    ML-KEM groups the encapsulation key, with the ECDH share for a hybrid)."""
    length = _PUBLIC_LENGTHS.get(group)
    if length is not None:
        return length
    if group in ffdhe.FFDHE_GROUPS:
        return ffdhe.prime_length(group)
    hybrid = mlkem.HYBRIDS.get(group)
    if hybrid is not None:
        return hybrid.kem.ek_length + _PUBLIC_LENGTHS[hybrid.ecdh]
    return mlkem.kem_of(group).ek_length


def private_length(group: NamedGroup) -> int:
    """Length of the private value `KeyShare.from_private_bytes` takes for ``group``: the
    scalar (curves), the exponent's bytes (FFDHE), the 64-byte ML-KEM seed, and for a hybrid
    the seed followed by the curve's scalar."""
    length = _SCALAR_LENGTHS.get(group)
    if length is not None:
        return length
    if group in ffdhe.FFDHE_GROUPS:
        return ffdhe.exponent_bytes(group)
    hybrid = mlkem.HYBRIDS.get(group)
    if hybrid is not None:
        return mlkem.SEED_LENGTH + _SCALAR_LENGTHS[hybrid.ecdh]
    if group in mlkem.KEMS:
        return mlkem.SEED_LENGTH
    raise UsageError(f"group {group!r} is not implemented")


class KeyShare:
    """Our ephemeral key pair in one named group. ``_private`` is the curve's private key, an
    `ffdhe.FfdhePrivateKey`, an `mlkem.MlkemPrivateKey`, or for a hybrid the pair
    (ML-KEM key, the curve's `KeyShare`)."""

    __slots__ = ("_private", "group", "public_bytes")

    def __init__(self, group: NamedGroup, private_key: Any) -> None:
        self.group = group
        self._private = private_key
        self.public_bytes: bytes = _encode_public(group, private_key)

    @classmethod
    def generate(cls, group: NamedGroup, random: Callable[[int], bytes] = os.urandom) -> KeyShare:
        """A fresh key pair: an X25519 or X448 private key is ``random``'s bytes
        (`DefaultProvider` passes ``os.urandom``), the other groups' keys come from
        ``cryptography``'s own random generator."""
        private_key = _MONTGOMERY_PRIVATE.get(group)
        if private_key is not None:
            return cls(group, private_key(random(_SCALAR_LENGTHS[group])))
        generate = _NIST_GENERATE.get(group)
        if generate is not None:
            return cls(group, generate())
        if group in ffdhe.FFDHE_GROUPS:
            return cls(group, ffdhe.FfdhePrivateKey.generate(group))
        if group in mlkem.KEMS:
            return cls(group, mlkem.MlkemPrivateKey.generate(mlkem.KEMS[group]))
        hybrid = mlkem.HYBRIDS.get(group)
        if hybrid is not None:
            kem_key = mlkem.MlkemPrivateKey.generate(hybrid.kem)
            return cls(group, (kem_key, KeyShare.generate(hybrid.ecdh, random)))
        raise UsageError(f"group {group!r} is not implemented")

    @classmethod
    def from_private_bytes(cls, group: NamedGroup, private: bytes) -> KeyShare:
        """A key pair from a given private value (test vectors, deterministic providers), as
        `private_length` describes. For NIST curves ``private`` is the big-endian scalar; it
        must be in [1, n-1]."""
        if len(private) != private_length(group):
            raise UsageError(f"wrong private key length {len(private)} for {group!r}")
        private_key = _MONTGOMERY_PRIVATE.get(group)
        if private_key is not None:
            return cls(group, private_key(private))
        if group in ffdhe.FFDHE_GROUPS:
            return cls(group, ffdhe.FfdhePrivateKey.from_random(group, private))
        if group in mlkem.KEMS:
            return cls(group, mlkem.MlkemPrivateKey.from_seed(mlkem.KEMS[group], private))
        hybrid = mlkem.HYBRIDS.get(group)
        if hybrid is not None:
            seed, scalar = private[: mlkem.SEED_LENGTH], private[mlkem.SEED_LENGTH :]
            kem_key = mlkem.MlkemPrivateKey.from_seed(hybrid.kem, seed)
            return cls(group, (kem_key, KeyShare.from_private_bytes(hybrid.ecdh, scalar)))
        try:
            key = ec.derive_private_key(int.from_bytes(private, "big"), _NIST_CURVES[group]())
        except ValueError as exc:
            raise UsageError(f"invalid private scalar for {group!r}: {exc}") from None
        return cls(group, key)

    @classmethod
    def from_random(cls, group: NamedGroup, random: Callable[[int], bytes]) -> KeyShare:
        """A key pair from ``random``'s bytes (a deterministic provider's stream). NIST
        scalars are kept below the group order by clearing top bits (P-256/P-384: order >
        2^(bits-1), so the top bit; P-521: the whole first byte); X25519/X448 clamp any bytes
        themselves (RFC 7748 §5)."""
        data = bytearray(random(private_length(group)))
        hybrid = mlkem.HYBRIDS.get(group)
        ecdh = hybrid.ecdh if hybrid is not None else group
        if ecdh in _NIST_CURVES:
            at = len(data) - _SCALAR_LENGTHS[ecdh]  # the scalar is last in a hybrid's value
            data[at] &= 0x00 if ecdh is NamedGroup.secp521r1 else 0x7F
            if not any(data[at:]):
                data[-1] = 1
        return cls.from_private_bytes(group, bytes(data))

    def exchange(self, peer_public: bytes) -> bytes:
        """The shared secret with the peer's public value: the X25519/X448 output, the
        x-coordinate of the ECDH point for NIST curves (RFC 8446 §7.4.2, RFC 8422 §5.10), the
        padded Z for FFDHE (§7.4.1), the decapsulated secret for ML-KEM, both secrets in the
        group's order for a hybrid. Raises `IllegalParameter` for any invalid peer value."""
        group = self.group
        if group in _PUBLIC_LENGTHS:
            return self._curve_exchange(peer_public)
        if group in ffdhe.FFDHE_GROUPS:
            return cast(ffdhe.FfdhePrivateKey, self._private).exchange(peer_public)
        if group in mlkem.KEMS:
            return cast(mlkem.MlkemPrivateKey, self._private).decapsulate(peer_public)
        hybrid = mlkem.HYBRIDS[group]
        kem_key, ecdh_key = cast(tuple[mlkem.MlkemPrivateKey, KeyShare], self._private)
        ecdh_length = _PUBLIC_LENGTHS[hybrid.ecdh]
        # draft-ietf-tls-ecdhe-mlkem §3.1 "Server share": ciphertext and ECDH share, in the
        # group's order, of fixed total length.
        expected = hybrid.kem.ct_length + ecdh_length
        if len(peer_public) != expected:
            raise IllegalParameter(
                f"{group.name} key share must be {expected} bytes, got {len(peer_public)}"
            )
        first = ecdh_length if hybrid.ecdh_first else hybrid.kem.ct_length
        ciphertext, ecdh_public = mlkem.split(peer_public, first, hybrid.ecdh_first)
        ecdh_secret = ecdh_key.exchange(ecdh_public)
        # draft-ietf-tls-ecdhe-mlkem §3.1 "Shared secret".
        return mlkem.join(kem_key.decapsulate(ciphertext), ecdh_secret, hybrid.ecdh_first)

    def _curve_exchange(self, peer_public: bytes) -> bytes:
        group = self.group
        expected = _PUBLIC_LENGTHS[group]
        if len(peer_public) != expected:
            raise IllegalParameter(
                f"{group.name} key share must be {expected} bytes, got {len(peer_public)}"
            )
        # RFC 8446 §4.2.8.2: only the uncompressed form (legacy_form = 4) of a NIST curve's
        # point is valid.
        if group in _NIST_CURVES and peer_public[0] != 0x04:
            raise IllegalParameter(f"{group.name} point is not uncompressed")
        try:
            shared = _CURVE_EXCHANGE[group](self._private, peer_public)
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


class _Provider(Protocol):
    def generate_key_share(self, group: NamedGroup) -> KeyShare: ...

    def encapsulate(self, kem: mlkem.Kem, encapsulation_key: bytes) -> tuple[bytes, bytes]: ...


def respond(group: NamedGroup, client_share: bytes, provider: _Provider) -> tuple[bytes, bytes]:
    """The server's side of ``group`` for the client's ``client_share``: (our key_share
    value for the ServerHello, the shared secret). For (EC)DHE a fresh key pair from the
    provider and the exchange; for ML-KEM the provider's encapsulation; for a hybrid both,
    in the group's order (draft-ietf-tls-ecdhe-mlkem §3.1). Raises `IllegalParameter` for
    an invalid share."""
    kem = mlkem.KEMS.get(group)
    hybrid = mlkem.HYBRIDS.get(group)
    if kem is not None:
        return provider.encapsulate(kem, client_share)
    if hybrid is None:
        ours = provider.generate_key_share(group)
        return ours.public_bytes, ours.exchange(client_share)
    # draft-ietf-tls-ecdhe-mlkem §3.1 "Client share": encapsulation key and ECDH share, in
    # the group's order, of fixed total length.
    expected = public_length(group)
    if len(client_share) != expected:
        raise IllegalParameter(
            f"{group.name} key share must be {expected} bytes, got {len(client_share)}"
        )
    ecdh_length = _PUBLIC_LENGTHS[hybrid.ecdh]
    first = ecdh_length if hybrid.ecdh_first else hybrid.kem.ek_length
    encapsulation_key, ecdh_public = mlkem.split(client_share, first, hybrid.ecdh_first)
    ours = provider.generate_key_share(hybrid.ecdh)
    ecdh_secret = ours.exchange(ecdh_public)
    ciphertext, kem_secret = provider.encapsulate(hybrid.kem, encapsulation_key)
    return (
        mlkem.join(ciphertext, ours.public_bytes, hybrid.ecdh_first),
        mlkem.join(kem_secret, ecdh_secret, hybrid.ecdh_first),
    )


def _encode_public(group: NamedGroup, private_key: Any) -> bytes:
    if group in ffdhe.FFDHE_GROUPS or group in mlkem.KEMS:
        return cast(bytes, private_key.public_bytes)
    hybrid = mlkem.HYBRIDS.get(group)
    if hybrid is not None:
        kem_key, ecdh_key = private_key
        return mlkem.join(kem_key.public_bytes, ecdh_key.public_bytes, hybrid.ecdh_first)
    encoding, public_format = _CURVE_PUBLIC_FORMAT[group]
    public: bytes = private_key.public_key().public_bytes(encoding, public_format)
    return public
