"""ML-KEM (FIPS 203) key agreement for TLS 1.3: the pure groups of draft-ietf-tls-mlkem and
the ECDHE hybrids of draft-ietf-tls-ecdhe-mlkem, over ``cryptography``'s ML-KEM.

A KEM is not a Diffie-Hellman: the client sends an encapsulation key, the server
encapsulates to it and sends the ciphertext, the client decapsulates. Layouts
(draft-ietf-tls-mlkem §4.2, draft-ietf-tls-ecdhe-mlkem §3.1 "Client share", "Server share",
"Shared secret"):

| group              | client share          | server share          | shared secret     |
|--------------------|-----------------------|-----------------------|-------------------|
| MLKEM768/1024      | ek                    | ct                    | ss                |
| X25519MLKEM768     | ek(1184) || X25519(32)| ct(1088) || X25519(32)| ss || X25519 ss   |
| SecP256r1MLKEM768  | P-256(65) || ek(1184) | P-256(65) || ct(1088) | ECDH ss || ss     |
| SecP384r1MLKEM1024 | P-384(97) || ek(1568) | P-384(97) || ct(1568) | ECDH ss || ss     |

X25519MLKEM768 puts ML-KEM first, the two NIST-curve hybrids put ECDH first (the hybrid
draft §3: so that the FIPS-approved secret comes first). Checks (same sections): the server
runs FIPS 203 §7.2's encapsulation key check (``from_public_bytes`` does) and answers a
failure with illegal_parameter; the client checks the ciphertext length (illegal_parameter);
the ECDH part gets every RFC 8446 §4.2.8.2 / §7.4.2 check (illegal_parameter). Neither
draft publishes test vectors for the TLS encoding.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from cryptography.hazmat.primitives.asymmetric import mlkem

from dtlsgate.errors import IllegalParameter, InternalError, UsageError
from dtlsgate.wire.enums import NamedGroup

__all__ = ["HYBRIDS", "KEMS", "Hybrid", "Kem", "MlkemPrivateKey", "encapsulate"]

#: A seed (d || z, FIPS 203 §7.1) is 64 bytes for every parameter set.
SEED_LENGTH = 64


@dataclass(frozen=True, slots=True)
class Kem:
    """One ML-KEM parameter set: its sizes (FIPS 203 Table 3) and ``cryptography`` classes."""

    name: str
    ek_length: int
    ct_length: int
    private_class: Any
    public_class: Any


ML_KEM_768 = Kem("ML-KEM-768", 1184, 1088, mlkem.MLKEM768PrivateKey, mlkem.MLKEM768PublicKey)
ML_KEM_1024 = Kem("ML-KEM-1024", 1568, 1568, mlkem.MLKEM1024PrivateKey, mlkem.MLKEM1024PublicKey)

#: draft-ietf-tls-mlkem §4.1: the pure ML-KEM groups we implement (ML-KEM-512 is not in
#: ``cryptography``).
KEMS: dict[NamedGroup, Kem] = {
    NamedGroup.MLKEM768: ML_KEM_768,
    NamedGroup.MLKEM1024: ML_KEM_1024,
}


@dataclass(frozen=True, slots=True)
class Hybrid:
    """One draft-ietf-tls-ecdhe-mlkem group: its ECDH group, its KEM, and which comes first
    in the shares and in the shared secret."""

    ecdh: NamedGroup
    kem: Kem
    ecdh_first: bool


HYBRIDS: dict[NamedGroup, Hybrid] = {
    NamedGroup.X25519MLKEM768: Hybrid(NamedGroup.x25519, ML_KEM_768, ecdh_first=False),
    NamedGroup.SecP256r1MLKEM768: Hybrid(NamedGroup.secp256r1, ML_KEM_768, ecdh_first=True),
    NamedGroup.SecP384r1MLKEM1024: Hybrid(NamedGroup.secp384r1, ML_KEM_1024, ecdh_first=True),
}


def kem_of(group: NamedGroup) -> Kem:
    kem = KEMS.get(group)
    if kem is not None:
        return kem
    hybrid = HYBRIDS.get(group)
    if hybrid is None:
        raise UsageError(f"{group!r} is not an ML-KEM group")
    return hybrid.kem


def split(data: bytes, first: int, ecdh_first: bool) -> tuple[bytes, bytes]:
    """(KEM part, ECDH part) of a hybrid share whose first component is ``first`` bytes."""
    head, tail = data[:first], data[first:]
    return (tail, head) if ecdh_first else (head, tail)


def join(kem_part: bytes, ecdh_part: bytes, ecdh_first: bool) -> bytes:
    """A hybrid share or shared secret in the group's order."""
    return ecdh_part + kem_part if ecdh_first else kem_part + ecdh_part


class MlkemPrivateKey:
    """A client's ephemeral ML-KEM decapsulation key; ``public_bytes`` is the encapsulation
    key sent in the key share."""

    __slots__ = ("_key", "kem", "public_bytes")

    def __init__(self, kem: Kem, key: Any) -> None:
        self.kem = kem
        self._key = key
        self.public_bytes: bytes = key.public_key().public_bytes_raw()

    @classmethod
    def generate(cls, kem: Kem) -> MlkemPrivateKey:
        return cls(kem, kem.private_class.generate())

    @classmethod
    def from_seed(cls, kem: Kem, seed: bytes) -> MlkemPrivateKey:
        """The key pair FIPS 203's ML-KEM.KeyGen_internal derives from the 64-byte seed d || z."""
        if len(seed) != SEED_LENGTH:
            raise UsageError(f"an ML-KEM seed is {SEED_LENGTH} bytes")
        return cls(kem, kem.private_class.from_seed_bytes(seed))

    def decapsulate(self, ciphertext: bytes) -> bytes:
        """The shared secret from the server's ciphertext. A ciphertext of the wrong length is
        illegal_parameter; any other failure internal_error (draft-ietf-tls-mlkem §4.2). A
        well-formed but wrong ciphertext yields an unrelated secret (FIPS 203 implicit
        rejection), so the handshake then fails at Finished."""
        kem = self.kem
        if len(ciphertext) != kem.ct_length:
            raise IllegalParameter(
                f"{kem.name} ciphertext must be {kem.ct_length} bytes, got {len(ciphertext)}"
            )
        try:
            return bytes(self._key.decapsulate(ciphertext))
        except ValueError as exc:
            raise InternalError(f"{kem.name} decapsulation failed: {exc}") from None


def encapsulate(kem: Kem, encapsulation_key: bytes) -> tuple[bytes, bytes]:
    """The server's side: (ciphertext, shared secret) for the client's encapsulation key.
    A key of the wrong length, or one that fails FIPS 203 §7.2's modulus check (coefficients
    below q, which ``from_public_bytes`` performs), is illegal_parameter (draft-ietf-tls-mlkem
    §4.2, draft-ietf-tls-ecdhe-mlkem §3.1)."""
    if len(encapsulation_key) != kem.ek_length:
        raise IllegalParameter(
            f"{kem.name} encapsulation key must be {kem.ek_length} bytes, "
            f"got {len(encapsulation_key)}"
        )
    try:
        public = kem.public_class.from_public_bytes(encapsulation_key)
    except ValueError:
        raise IllegalParameter(f"{kem.name} encapsulation key fails the key check") from None
    shared, ciphertext = public.encapsulate()
    return bytes(ciphertext), bytes(shared)
