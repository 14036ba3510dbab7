"""TLS 1.2 / DTLS 1.2 handshake messages after the hellos, as frozen dataclasses.

``decode`` takes a message body (the bytes after the handshake header) and rejects trailing
bytes; ``encode`` returns the body. The key exchange messages depend on the negotiated key
exchange (RFC 8422 §5.4 and §5.7 for ECDHE, RFC 4279 §2 for PSK, RFC 5489 §2 for ECDHE_PSK),
so their ``decode`` takes it as an argument.
"""

from __future__ import annotations

import struct
from enum import Enum

from dtlsgate._frozen import frozen
from dtlsgate.errors import DecodeError, IllegalParameter, UsageError
from dtlsgate.wire.buffer import Reader, Writer, whole_vector

# RFC 8422 §5.4: ECCurveType named_curve.
NAMED_CURVE = 3
# RFC 8422 §5.4: ECCurveType, NamedCurve, and the length of the ECPoint after them.
_CURVE_AND_POINT_LENGTH = struct.Struct(">BHB")
# RFC 8422 §5.4 / RFC 5246 §4.7: a digitally-signed's SignatureAndHashAlgorithm, then the
# length of its signature.
_SCHEME_AND_LENGTH = struct.Struct(">HH")
# RFC 5077 §3.3: uint32 ticket_lifetime_hint, then the length of opaque ticket<0..2^16-1>.
_LIFETIME_AND_LENGTH = struct.Struct(">IH")
# RFC 4279 §5.3: identities and hints up to 2^16-1 bytes; implementations should accept at
# least 128. We keep the protocol's own bound.
MAX_PSK_IDENTITY_LENGTH = 0xFFFF
# RFC 5246 §7.4.9: verify_data is 12 bytes for every suite we implement.
FINISHED_LENGTH = 12


class KeyExchangeKind(Enum):
    """How ServerKeyExchange and ClientKeyExchange are laid out."""

    ECDHE = "ecdhe"  # ECDHE_ECDSA, ECDHE_RSA
    PSK = "psk"
    ECDHE_PSK = "ecdhe_psk"


@frozen
class Certificate12:
    """RFC 5246 §7.4.2: ASN.1Cert certificate_list<0..2^24-1>, each <1..2^24-1>."""

    certificates: tuple[bytes, ...]

    @classmethod
    def decode(cls, body: bytes) -> Certificate12:
        r = Reader(body)
        certs = r.prefixed(3)
        out: list[bytes] = []
        while not certs.at_end():
            out.append(certs.vector(3, 1))
        r.finish()
        return cls(tuple(out))

    def encode(self) -> bytes:
        w = Writer()
        with w.prefixed(3):
            for cert in self.certificates:
                w.vector(3, cert, 1)
        return w.getvalue()


@frozen
class EcdhParams:
    """RFC 8422 §5.4: ServerECDHParams with a named curve and the public point."""

    group: int
    public: bytes

    @classmethod
    def read(cls, r: Reader) -> EcdhParams:
        curve_type = r.u8()
        if curve_type != NAMED_CURVE:
            # RFC 8422 §5.4: explicit curves are deprecated; we only offer named curves.
            raise IllegalParameter(f"ECCurveType {curve_type} is not named_curve")
        group = r.u16()
        public = r.vector(1, 1)
        return cls(group, public)

    def write(self, w: Writer) -> None:
        w.write(self.encode())

    def encode(self) -> bytes:
        return encode_ecdh_params(self.group, self.public)


def encode_ecdh_params(group: int, public: bytes) -> bytes:
    """RFC 8422 §5.4: ServerECDHParams (named_curve, ``group``, the point ``public``), the
    three fixed fields in one pack. A server encodes its parameters once per handshake: the
    signature covers these bytes and its ServerKeyExchange carries them
    (`ecdhe_server_key_exchange`)."""
    n = len(public)
    if not 1 <= n <= 0xFF:
        raise UsageError(f"vector of {n} bytes outside <1..255>")
    try:
        return _CURVE_AND_POINT_LENGTH.pack(NAMED_CURVE, group, n) + public
    except struct.error:
        raise UsageError(f"{group} does not fit in 2 bytes") from None


def ecdhe_server_key_exchange(params: bytes, signature_scheme: int, signature: bytes) -> bytes:
    """RFC 8422 §5.4: the body of an ECDHE ServerKeyExchange from its ServerECDHParams as
    encoded already (for the signature), the scheme and the signature<1..2^16-1>: the bytes
    ``ServerKeyExchange(KeyExchangeKind.ECDHE, ...).encode()`` makes, without decoding the
    parameters back into an object to encode them again."""
    n = len(signature)
    if not 1 <= n <= 0xFFFF:
        raise UsageError(f"vector of {n} bytes outside <1..65535>")
    try:
        return params + _SCHEME_AND_LENGTH.pack(signature_scheme, n) + signature
    except struct.error:
        raise UsageError(f"{signature_scheme} does not fit in 2 bytes") from None


@frozen
class ServerKeyExchange:
    """RFC 8422 §5.4 (ECDHE: params and a signature over the randoms and params),
    RFC 4279 §2 (PSK: identity hint), RFC 5489 §2 (ECDHE_PSK: hint, then params, unsigned)."""

    kind: KeyExchangeKind
    params: EcdhParams | None = None
    signature_scheme: int | None = None
    signature: bytes = b""
    psk_identity_hint: bytes = b""

    @classmethod
    def decode(cls, body: bytes, kind: KeyExchangeKind) -> ServerKeyExchange:
        r = Reader(body)
        if kind is KeyExchangeKind.PSK:
            hint = r.vector(2, 0, MAX_PSK_IDENTITY_LENGTH)
            r.finish()
            return cls(kind, psk_identity_hint=hint)
        if kind is KeyExchangeKind.ECDHE_PSK:
            hint = r.vector(2, 0, MAX_PSK_IDENTITY_LENGTH)
            params = EcdhParams.read(r)
            r.finish()
            return cls(kind, params, psk_identity_hint=hint)
        params = EcdhParams.read(r)
        scheme = r.u16()
        signature = r.vector(2, 1)
        r.finish()
        return cls(kind, params, scheme, signature)

    def encode(self) -> bytes:
        w = Writer()
        if self.kind is not KeyExchangeKind.ECDHE:
            w.vector(2, self.psk_identity_hint, 0, MAX_PSK_IDENTITY_LENGTH)
        if self.kind is not KeyExchangeKind.PSK:
            if self.params is None:
                raise UsageError("ServerKeyExchange needs ECDH parameters")
            if self.kind is KeyExchangeKind.ECDHE:
                if self.signature_scheme is None:
                    raise UsageError("ServerKeyExchange needs a signature")
                params = self.params.encode()
                return ecdhe_server_key_exchange(params, self.signature_scheme, self.signature)
            self.params.write(w)
        return w.getvalue()


@frozen
class ClientKeyExchange:
    """RFC 8422 §5.7 (ECDHE: the client's point<1..2^8-1>), RFC 4279 §2 (PSK: identity),
    RFC 5489 §2 (ECDHE_PSK: identity, then point)."""

    kind: KeyExchangeKind
    public: bytes = b""
    psk_identity: bytes = b""

    @classmethod
    def decode(cls, body: bytes, kind: KeyExchangeKind) -> ClientKeyExchange:
        if kind is KeyExchangeKind.ECDHE:
            return cls(kind, ecdhe_client_public(body))
        r = Reader(body)
        identity = r.vector(2, 0, MAX_PSK_IDENTITY_LENGTH)
        public = r.vector(1, 1) if kind is KeyExchangeKind.ECDHE_PSK else b""
        r.finish()
        return cls(kind, public, identity)

    def encode(self) -> bytes:
        w = Writer()
        if self.kind is not KeyExchangeKind.ECDHE:
            w.vector(2, self.psk_identity, 0, MAX_PSK_IDENTITY_LENGTH)
        if self.kind is not KeyExchangeKind.PSK:
            w.vector(1, self.public, 1)
        return w.getvalue()


@frozen
class CertificateRequest12:
    """RFC 5246 §7.4.4: certificate_types<1..2^8-1>, supported_signature_algorithms
    <2..2^16-2>, certificate_authorities<0..2^16-1> of DistinguishedName<1..2^16-1>."""

    certificate_types: bytes
    signature_schemes: tuple[int, ...]
    authorities: tuple[bytes, ...] = ()

    @classmethod
    def decode(cls, body: bytes) -> CertificateRequest12:
        r = Reader(body)
        types = r.vector(1, 1)
        schemes = r.u16_list(2, 2, 0xFFFE)
        names = r.prefixed(2)
        authorities: list[bytes] = []
        while not names.at_end():
            authorities.append(names.vector(2, 1))
        r.finish()
        return cls(types, schemes, tuple(authorities))

    def encode(self) -> bytes:
        w = Writer()
        w.vector(1, self.certificate_types, 1)
        w.u16_list(2, list(self.signature_schemes))
        with w.prefixed(2):
            for name in self.authorities:
                w.vector(2, name, 1)
        return w.getvalue()


@frozen
class CertificateVerify12:
    """RFC 5246 §7.4.8: digitally-signed struct: SignatureAndHashAlgorithm, signature."""

    signature_scheme: int
    signature: bytes

    @classmethod
    def decode(cls, body: bytes) -> CertificateVerify12:
        r = Reader(body)
        scheme = r.u16()
        signature = r.vector(2, 1)
        r.finish()
        return cls(scheme, signature)

    def encode(self) -> bytes:
        w = Writer()
        w.u16(self.signature_scheme)
        w.vector(2, self.signature, 1)
        return w.getvalue()


@frozen
class ServerHelloDone:
    """RFC 5246 §7.4.5: an empty message."""

    @classmethod
    def decode(cls, body: bytes) -> ServerHelloDone:
        if body:
            raise DecodeError("ServerHelloDone must be empty")
        return cls()

    def encode(self) -> bytes:
        return b""


@frozen
class HelloRequest:
    """RFC 5246 §7.4.1.1: an empty message (a server asking for renegotiation)."""

    @classmethod
    def decode(cls, body: bytes) -> HelloRequest:
        if body:
            raise DecodeError("HelloRequest must be empty")
        return cls()

    def encode(self) -> bytes:
        return b""


@frozen
class RawPublicKey12:
    """RFC 7250 §3, a TLS 1.2 Certificate of type RawPublicKey:
    opaque ASN.1_subjectPublicKeyInfo<1..2^24-1> (one key, not a list)."""

    subject_public_key_info: bytes

    @classmethod
    def decode(cls, body: bytes) -> RawPublicKey12:
        return cls(whole_vector(body, 3, 1))

    def encode(self) -> bytes:
        w = Writer()
        w.vector(3, self.subject_public_key_info, 1)
        return w.getvalue()


@frozen
class NewSessionTicket12:
    """RFC 5077 §3.3: uint32 ticket_lifetime_hint; opaque ticket<0..2^16-1>. An empty
    ticket is legal: the server changed its mind about issuing one (§3.3)."""

    ticket_lifetime_hint: int
    ticket: bytes

    @classmethod
    def decode(cls, body: bytes) -> NewSessionTicket12:
        r = Reader(body)
        message = cls(r.u32(), r.vector(2))
        r.finish()
        return message

    def encode(self) -> bytes:
        return encode_new_session_ticket12(self.ticket_lifetime_hint, self.ticket)


def encode_new_session_ticket12(ticket_lifetime_hint: int, ticket: bytes) -> bytes:
    """The body of `NewSessionTicket12` (RFC 5077 §3.3) in one pack, as a server sends it
    once per full handshake that issues a ticket."""
    try:
        return _LIFETIME_AND_LENGTH.pack(ticket_lifetime_hint, len(ticket)) + ticket
    except struct.error:
        raise UsageError("ticket_lifetime_hint or ticket length out of range") from None


@frozen
class Finished:
    """RFC 5246 §7.4.9: opaque verify_data[12]."""

    verify_data: bytes

    @classmethod
    def decode(cls, body: bytes) -> Finished:
        return cls(finished_verify_data(body))

    def encode(self) -> bytes:
        return self.verify_data


def finished_verify_data(body: bytes) -> bytes:
    """The verify_data of a Finished body, checked as `Finished.decode` checks it: what a
    handshake compares, without an object made to be read once."""
    if len(body) != FINISHED_LENGTH:
        raise DecodeError(f"Finished must be {FINISHED_LENGTH} bytes, got {len(body)}")
    return body


def ecdhe_client_public(body: bytes) -> bytes:
    """The client's point of an ECDHE ClientKeyExchange body (RFC 8422 §5.7: the whole body
    is ``ECPoint point<1..2^8-1>``), checked as `ClientKeyExchange.decode` checks it."""
    return whole_vector(body, 1, 1)


def ecdhe_signed_params(client_random: bytes, server_random: bytes, params: bytes) -> bytes:
    """RFC 8422 §5.4: the ServerKeyExchange signature covers ClientHello.random,
    ServerHello.random and ServerECDHParams (``params``: their encoding)."""
    return client_random + server_random + params
