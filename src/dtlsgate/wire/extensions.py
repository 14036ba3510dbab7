"""Hello extensions: the raw list, the typed bodies, and where each may appear.

Messages keep their extensions as an ordered tuple of ``Extension(type, data)``: the raw
bytes are what the peer sent and nothing is lost. ``decode_extensions`` rejects a
duplicate type (RFC 8446 §4.2, RFC 5246 §7.4.1.4) and, for messages a server sends, a
type that may not appear in that message (RFC 8446 §4.2 table); for a ClientHello,
``decode_client_hello_extensions`` also returns the map of bodies by type that its duplicate
check makes, which the message keeps for the server's look-ups. Typed bodies are
decoded on demand by the ``decode_*`` functions below, each from a bounded reader over
exactly the extension's bytes; ``encode_*`` are their inverses.
"""

from __future__ import annotations

import struct
from collections.abc import Callable
from enum import Enum
from functools import partial
from typing import NamedTuple, cast

from dtlsgate._frozen import frozen
from dtlsgate.errors import (
    DecodeError,
    IllegalParameter,
    UnsupportedExtension,
    UsageError,
)
from dtlsgate.wire.buffer import Reader, Writer, encode_u16, encode_vector, whole_vector
from dtlsgate.wire.enums import ExtensionType


class Context(Enum):
    """The messages an extension can appear in (RFC 8446 §4.2: CH, SH, HRR, EE, CT, CR, NST)."""

    CLIENT_HELLO = "CH"
    SERVER_HELLO = "SH"
    HELLO_RETRY_REQUEST = "HRR"
    ENCRYPTED_EXTENSIONS = "EE"
    CERTIFICATE = "CT"
    CERTIFICATE_REQUEST = "CR"
    NEW_SESSION_TICKET = "NST"
    SERVER_HELLO_TLS12 = "SH12"


_C = Context
_E = ExtensionType
_TYPE_AND_LENGTH = struct.Struct(">HH")

# Where each extension may appear. TLS 1.3 per RFC 8446 §4.2; TLS 1.2 ServerHello per the
# extension's own RFC. Unknown types are allowed in a ClientHello only (servers ignore
# them, RFC 8446 §4.1.2); a client receiving one must abort (unsupported_extension).
ALLOWED_IN: dict[int, frozenset[Context]] = {
    _E.server_name: frozenset({_C.CLIENT_HELLO, _C.ENCRYPTED_EXTENSIONS, _C.SERVER_HELLO_TLS12}),
    _E.max_fragment_length: frozenset(
        {_C.CLIENT_HELLO, _C.ENCRYPTED_EXTENSIONS, _C.SERVER_HELLO_TLS12}
    ),
    _E.status_request: frozenset({_C.CLIENT_HELLO, _C.CERTIFICATE_REQUEST, _C.CERTIFICATE}),
    _E.supported_groups: frozenset({_C.CLIENT_HELLO, _C.ENCRYPTED_EXTENSIONS}),
    _E.ec_point_formats: frozenset({_C.CLIENT_HELLO, _C.SERVER_HELLO_TLS12}),
    _E.signature_algorithms: frozenset({_C.CLIENT_HELLO, _C.CERTIFICATE_REQUEST}),
    _E.use_srtp: frozenset({_C.CLIENT_HELLO, _C.ENCRYPTED_EXTENSIONS, _C.SERVER_HELLO_TLS12}),
    _E.heartbeat: frozenset({_C.CLIENT_HELLO, _C.ENCRYPTED_EXTENSIONS, _C.SERVER_HELLO_TLS12}),
    _E.application_layer_protocol_negotiation: frozenset(
        {_C.CLIENT_HELLO, _C.ENCRYPTED_EXTENSIONS, _C.SERVER_HELLO_TLS12}
    ),
    _E.signed_certificate_timestamp: frozenset(
        {_C.CLIENT_HELLO, _C.CERTIFICATE_REQUEST, _C.CERTIFICATE}
    ),
    _E.client_certificate_type: frozenset(
        {_C.CLIENT_HELLO, _C.ENCRYPTED_EXTENSIONS, _C.SERVER_HELLO_TLS12}
    ),
    _E.server_certificate_type: frozenset(
        {_C.CLIENT_HELLO, _C.ENCRYPTED_EXTENSIONS, _C.SERVER_HELLO_TLS12}
    ),
    _E.padding: frozenset({_C.CLIENT_HELLO}),
    _E.encrypt_then_mac: frozenset({_C.CLIENT_HELLO, _C.SERVER_HELLO_TLS12}),
    _E.extended_master_secret: frozenset({_C.CLIENT_HELLO, _C.SERVER_HELLO_TLS12}),
    _E.record_size_limit: frozenset(
        {_C.CLIENT_HELLO, _C.ENCRYPTED_EXTENSIONS, _C.SERVER_HELLO_TLS12}
    ),
    # RFC 8879 §3: the algorithms a peer can decompress, in a ClientHello or a
    # CertificateRequest.
    _E.compress_certificate: frozenset({_C.CLIENT_HELLO, _C.CERTIFICATE_REQUEST}),
    _E.session_ticket: frozenset({_C.CLIENT_HELLO, _C.SERVER_HELLO_TLS12}),
    _E.pre_shared_key: frozenset({_C.CLIENT_HELLO, _C.SERVER_HELLO}),
    _E.early_data: frozenset({_C.CLIENT_HELLO, _C.ENCRYPTED_EXTENSIONS, _C.NEW_SESSION_TICKET}),
    _E.supported_versions: frozenset({_C.CLIENT_HELLO, _C.SERVER_HELLO, _C.HELLO_RETRY_REQUEST}),
    _E.cookie: frozenset({_C.CLIENT_HELLO, _C.HELLO_RETRY_REQUEST}),
    _E.psk_key_exchange_modes: frozenset({_C.CLIENT_HELLO}),
    _E.certificate_authorities: frozenset({_C.CLIENT_HELLO, _C.CERTIFICATE_REQUEST}),
    _E.oid_filters: frozenset({_C.CERTIFICATE_REQUEST}),
    _E.post_handshake_auth: frozenset({_C.CLIENT_HELLO}),
    _E.signature_algorithms_cert: frozenset({_C.CLIENT_HELLO, _C.CERTIFICATE_REQUEST}),
    _E.key_share: frozenset({_C.CLIENT_HELLO, _C.SERVER_HELLO, _C.HELLO_RETRY_REQUEST}),
    # RFC 9146 §3 (DTLS 1.2 ServerHello); RFC 9147 §9 and its IANA entry: CH, SH in 1.3.
    _E.connection_id: frozenset({_C.CLIENT_HELLO, _C.SERVER_HELLO_TLS12, _C.SERVER_HELLO}),
    _E.renegotiation_info: frozenset({_C.CLIENT_HELLO, _C.SERVER_HELLO_TLS12}),
}


# RFC 8446 §4.1.2: after a HelloRetryRequest the client sends "the same ClientHello" except
# that it replaces key_share, removes early_data, adds cookie, updates pre_shared_key and may
# change padding. Every other extension must come back with the same body.
CHANGEABLE_IN_CLIENT_HELLO2 = frozenset(
    {_E.key_share, _E.early_data, _E.cookie, _E.pre_shared_key, _E.padding}
)


class Extension(NamedTuple):
    """One extension as it was on the wire: its type and its opaque body. A named tuple
    (immutable like the messages' dataclasses): a ClientHello carries a dozen, and
    tuples are made from the parsed (type, body) pairs without a Python-level __init__."""

    type: int
    data: bytes


# (type, data) pair -> Extension, in C (tuple.__new__): no per-extension Python call.
_as_extension = cast(Callable[[tuple[int, bytes]], Extension], partial(tuple.__new__, Extension))


def decode_extensions(r: Reader, context: Context) -> tuple[Extension, ...]:
    """Read ``Extension extensions<0..2^16-1>`` from ``r`` (the length prefix included).

    RFC 8446 §4.2: "There MUST NOT be more than one extension of the same type in a
    given extension block"; a duplicate is illegal_parameter. A type not allowed in
    ``context`` raises unsupported_extension for messages a server sends, and is kept
    for a ClientHello (the server ignores what it does not know).
    """
    if context is Context.CLIENT_HELLO:
        return decode_client_hello_extensions(r)[0]
    extensions = tuple(map(_as_extension, r.typed_vectors(2)))
    check_extensions(extensions, context)
    return extensions


#: A ClientHello's extensions as `decode_client_hello_extensions` reads them: in wire order,
#: and each one's body by its type.
DecodedExtensions = tuple[tuple[Extension, ...], dict[int, bytes]]


def decode_client_hello_extensions(r: Reader) -> DecodedExtensions:
    """`decode_extensions` for a ClientHello, with the map of each extension's body by its
    type (in wire order) that its duplicate check makes, kept for the server's look-ups
    (`ClientHello.extension_bodies`) instead of made again."""
    entries = r.typed_vectors(2)
    bodies = dict(entries)
    extensions = tuple(map(_as_extension, entries))
    if len(bodies) != len(entries):  # a type twice: found and reported in wire order
        check_extensions(extensions, Context.CLIENT_HELLO)
    return extensions, bodies


def with_bodies(decoded: DecodedExtensions, bodies: dict[int, bytes]) -> DecodedExtensions:
    """A ClientHello's extensions as `decode_client_hello_extensions` read them, with the
    bodies of ``bodies`` put in, each in its place (every type in ``bodies`` is one of
    them): what decoding the message with those bodies would read. The others are the
    very `Extension`s of ``decoded``: only the changed ones are made (a ClientHello2 from
    a remembered one changes two of a dozen), each in the place its type has in the map,
    which is wire order, with the type as read (``bodies`` may name it by an enum member)."""
    extensions = list(decoded[0])
    order = list(decoded[1])
    for ext_type, body in bodies.items():
        at = order.index(ext_type)
        extensions[at] = _as_extension((order[at], body))
    return tuple(extensions), decoded[1] | bodies


def check_extensions(extensions: tuple[Extension, ...], context: Context) -> None:
    """The rules `decode_extensions` applies to a block, in wire order (the first offending
    extension is the one reported): no type twice (illegal_parameter), and, in a message a
    server sends, only types allowed in ``context`` (unsupported_extension)."""
    client_hello = context is Context.CLIENT_HELLO
    seen: set[int] = set()
    for ext_type, _ in extensions:
        if ext_type in seen:
            raise IllegalParameter(f"duplicate extension {ext_type}")
        seen.add(ext_type)
        if not client_hello:
            allowed = ALLOWED_IN.get(ext_type)
            if allowed is None or context not in allowed:
                raise UnsupportedExtension(f"extension {ext_type} not allowed in {context.value}")


def encode_extensions(w: Writer, extensions: tuple[Extension, ...]) -> None:
    """``Extension extensions<0..2^16-1>``: each type (uint16) and opaque body<0..2^16-1>."""
    w.write(extensions_block(extensions))


def extensions_block(extensions: tuple[Extension, ...]) -> bytes:
    """What `encode_extensions` writes, as bytes: the block with its length."""
    if not extensions:
        # Its length alone, zero: every NewSessionTicket of ours (RFC 8446 §4.6.1).
        return _EMPTY_EXTENSIONS_BLOCK
    try:
        block = b"".join([_TYPE_AND_LENGTH.pack(e.type, len(e.data)) + e.data for e in extensions])
    except struct.error:
        raise UsageError("extension type or body length out of range") from None
    return encode_vector(2, block)


_EMPTY_EXTENSIONS_BLOCK = bytes(2)


def find_extension(extensions: tuple[Extension, ...] | None, ext_type: int) -> bytes | None:
    """The body of the extension of ``ext_type``, or None when absent."""
    if extensions:
        for ext in extensions:
            if ext.type == ext_type:
                return ext.data
    return None


# --- typed bodies -------------------------------------------------------------------------


def decode_server_name(data: bytes) -> str | None:
    """RFC 6066 §3: ServerNameList; returns the host_name (type 0), or None when the
    server's empty acknowledgement is given."""
    if not data:
        return None
    r = Reader(data)
    names = r.prefixed(2, 1)
    host: str | None = None
    while not names.at_end():
        name_type = names.u8()
        name = names.vector(2, 1)
        if name_type == 0:
            if host is not None:
                raise IllegalParameter("two host_name entries in server_name")
            try:
                host = name.decode("ascii")
            except UnicodeDecodeError as exc:
                raise DecodeError("server_name is not ASCII") from exc
    r.finish()
    return host


def encode_server_name(host: str) -> bytes:
    w = Writer()
    with w.prefixed(2):
        w.u8(0)
        w.vector(2, host.encode("ascii"), 1)
    return w.getvalue()


def decode_u16_list_ext(data: bytes, minimum: int = 2) -> tuple[int, ...]:
    """supported_groups (RFC 8446 §4.2.7), signature_algorithms (§4.2.3) and
    signature_algorithms_cert: a uint16 list with a 2-byte length."""
    body = whole_vector(data, 2, minimum)
    if len(body) % 2:
        raise DecodeError("uint16 vector with an odd length")
    return struct.unpack(f">{len(body) // 2}H", body)


def encode_u16_list_ext(values: tuple[int, ...] | list[int]) -> bytes:
    w = Writer()
    w.u16_list(2, list(values))
    return w.getvalue()


#: RFC 7250 §3 (IANA TLS Certificate Types): X.509 and RawPublicKey.
CERTIFICATE_TYPE_X509 = 0
CERTIFICATE_TYPE_RAW_PUBLIC_KEY = 2


def decode_certificate_types(data: bytes) -> tuple[int, ...]:
    """RFC 7250 §3, client/server_certificate_type in a ClientHello:
    CertificateType certificate_types<1..2^8-1>."""
    return tuple(whole_vector(data, 1, 1))


def encode_certificate_types(types: tuple[int, ...]) -> bytes:
    w = Writer()
    w.vector(1, bytes(types), 1)
    return w.getvalue()


def decode_certificate_type(data: bytes) -> int:
    """RFC 7250 §3, in a ServerHello (TLS 1.2) or EncryptedExtensions: one CertificateType."""
    if len(data) != 1:
        raise DecodeError("a certificate_type extension must hold one type")
    return data[0]


def decode_ec_point_formats(data: bytes) -> tuple[int, ...]:
    """RFC 8422 §5.1.2: ECPointFormat ec_point_format_list<1..2^8-1>."""
    return tuple(whole_vector(data, 1, 1))


def encode_ec_point_formats(values: tuple[int, ...] = (0,)) -> bytes:
    w = Writer()
    w.u8_list(1, list(values))
    return w.getvalue()


def decode_alpn(data: bytes) -> tuple[bytes, ...]:
    """RFC 7301 §3.1: ProtocolName protocol_name_list<2..2^16-1>, each <1..2^8-1>."""
    r = Reader(data)
    names = r.prefixed(2, 2)
    out: list[bytes] = []
    while not names.at_end():
        out.append(names.vector(1, 1))
    r.finish()
    return tuple(out)


def encode_alpn(protocols: tuple[bytes, ...] | list[bytes]) -> bytes:
    w = Writer()
    with w.prefixed(2, 2):
        for p in protocols:
            w.vector(1, p, 1)
    return w.getvalue()


def decode_use_srtp(data: bytes) -> tuple[tuple[int, ...], bytes]:
    """RFC 5764 §4.1.1: UseSRTPData { SRTPProtectionProfile profiles<2..2^16-1> (two
    bytes each); opaque srtp_mki<0..255> }: the profiles and the MKI."""
    r = Reader(data)
    profiles = r.u16_list(2, 2)
    mki = r.vector(1)
    r.finish()
    return profiles, mki


def pick_srtp_profile(ours: tuple[int, ...], offered: tuple[int, ...]) -> int | None:
    """A server's choice for use_srtp (RFC 5764 §4.1.1): its most preferred profile among
    those ``offered``; None (no use_srtp in the answer) without one in common."""
    return next((profile for profile in ours if profile in offered), None)


def chosen_srtp_profile(data: bytes | None, offered: tuple[int, ...]) -> int | None:
    """The SRTP protection profile a server's use_srtp chose (RFC 5764 §4.1.1; in a DTLS
    1.2 ServerHello or DTLS 1.3 EncryptedExtensions), None when it sent none: exactly one,
    of those we ``offered``, with no MKI (we offer none, and §4.1.1 has a client abort on
    an MKI other than its own)."""
    if data is None:
        return None
    profiles, mki = decode_use_srtp(data)
    if len(profiles) != 1 or profiles[0] not in offered or mki:
        raise IllegalParameter("server's use_srtp is not one profile we offered, without MKI")
    return profiles[0]


def encode_use_srtp(profiles: tuple[int, ...] | list[int], mki: bytes = b"") -> bytes:
    """RFC 5764 §4.1.1: UseSRTPData, in a ClientHello (the profiles offered) or a
    ServerHello (the one chosen)."""
    w = Writer()
    w.u16_list(2, profiles)
    w.vector(1, mki, 0, 255)
    return w.getvalue()


def decode_supported_versions_ch(data: bytes) -> tuple[int, ...]:
    """RFC 8446 §4.2.1: ProtocolVersion versions<2..254> in a ClientHello."""
    body = whole_vector(data, 1, 2, 254)
    if len(body) % 2:
        raise DecodeError("supported_versions with an odd length")
    return struct.unpack(f">{len(body) // 2}H", body)


def encode_supported_versions_ch(versions: tuple[int, ...] | list[int]) -> bytes:
    """RFC 8446 §4.2.1: ProtocolVersion versions<2..254> in a ClientHello, in one
    expression (a client sends one in each ClientHello, two with a HelloRetryRequest)."""
    return encode_vector(1, b"".join([encode_u16(v) for v in versions]), 2, 254)


def decode_supported_versions_sh(data: bytes) -> int:
    """RFC 8446 §4.2.1: ProtocolVersion selected_version in a ServerHello / HRR."""
    r = Reader(data)
    version = r.u16()
    r.finish()
    return version


def encode_supported_versions_sh(version: int) -> bytes:
    return version.to_bytes(2, "big")


# RFC 9146 §3: opaque cid<0..2^8-1>.
MAX_CONNECTION_ID_LENGTH = 255


def decode_connection_id(data: bytes) -> bytes:
    """RFC 9146 §3: the connection_id extension, ``opaque cid<0..2^8-1>``."""
    r = Reader(data)
    cid = r.vector(1, 0, MAX_CONNECTION_ID_LENGTH)
    r.finish()
    return cid


def encode_connection_id(cid: bytes) -> bytes:
    w = Writer()
    w.vector(1, cid, 0, MAX_CONNECTION_ID_LENGTH)
    return w.getvalue()


def decode_cookie(data: bytes) -> bytes:
    """RFC 8446 §4.2.2: opaque cookie<1..2^16-1>, filling the extension."""
    return whole_vector(data, 2, 1)


def encode_cookie(cookie: bytes) -> bytes:
    w = Writer()
    w.vector(2, cookie, 1)
    return w.getvalue()


@frozen
class KeyShareEntry:
    group: int
    key_exchange: bytes


_unpack_group_and_length = struct.Struct(">HH").unpack_from


def decode_key_share_ch(data: bytes) -> tuple[KeyShareEntry, ...]:
    """RFC 8446 §4.2.8: KeyShareEntry client_shares<0..2^16-1>; each key_exchange<1..2^16-1>.
    Clients MUST NOT offer two shares for one group (illegal_parameter)."""
    # By slices and one unpack per entry (every ClientHello has this list), no Reader: the
    # same checks in the same order (each entry in turn, then nothing after the list).
    end = len(data)
    if end < 2:
        raise DecodeError(f"truncated: need 2 bytes, {end} left")
    stop = 2 + ((data[0] << 8) | data[1])
    if stop > end:
        raise DecodeError(f"truncated: need {stop - 2} bytes, {end - 2} left")
    out: list[KeyShareEntry] = []
    groups: set[int] = set()
    pos = 2
    while pos < stop:
        if stop - pos < 4:
            raise DecodeError("truncated key share entry")
        group, n = _unpack_group_and_length(data, pos)
        start = pos + 4
        pos = start + n
        if not n or pos > stop:
            raise DecodeError(f"key_exchange length {n} outside <1..{stop - start}>")
        if group in groups:
            raise IllegalParameter(f"two key shares for group {group}")
        groups.add(group)
        out.append(KeyShareEntry(group, data[start:pos]))
    if stop != end:
        raise DecodeError(f"{end - stop} bytes after the key share list")
    return tuple(out)


def encode_key_share_ch(entries: tuple[KeyShareEntry, ...] | list[KeyShareEntry]) -> bytes:
    """RFC 8446 §4.2.8: KeyShareEntry client_shares<0..2^16-1>, in one expression (as
    `encode_supported_versions_ch`): each entry as a ServerHello's one."""
    return encode_vector(2, b"".join([encode_key_share_sh(e) for e in entries]))


def decode_key_share_sh(data: bytes) -> KeyShareEntry:
    """RFC 8446 §4.2.8: KeyShareEntry server_share in a ServerHello."""
    r = Reader(data)
    group = r.u16()
    key = r.vector(2, 1)
    r.finish()
    return KeyShareEntry(group, key)


def encode_key_share_sh(entry: KeyShareEntry) -> bytes:
    """RFC 8446 §4.2.8: KeyShareEntry server_share, in one expression (a server sends one
    per handshake)."""
    return encode_u16(entry.group) + encode_vector(2, entry.key_exchange, 1)


def decode_key_share_hrr(data: bytes) -> int:
    """RFC 8446 §4.2.8: NamedGroup selected_group in a HelloRetryRequest."""
    r = Reader(data)
    group = r.u16()
    r.finish()
    return group


def encode_key_share_hrr(group: int) -> bytes:
    return group.to_bytes(2, "big")


def decode_psk_key_exchange_modes(data: bytes) -> tuple[int, ...]:
    """RFC 8446 §4.2.9: PskKeyExchangeMode ke_modes<1..255>."""
    r = Reader(data)
    modes = r.u8_list(1, 1)
    r.finish()
    return tuple(modes)


def encode_psk_key_exchange_modes(modes: tuple[int, ...] | list[int]) -> bytes:
    w = Writer()
    w.vector(1, bytes(modes), 1)
    return w.getvalue()


@frozen
class PskIdentity:
    identity: bytes
    obfuscated_ticket_age: int


@frozen
class OfferedPsks:
    """RFC 8446 §4.2.11: identities<7..2^16-1> and binders<33..2^16-1>, same count."""

    identities: tuple[PskIdentity, ...]
    binders: tuple[bytes, ...]


def decode_pre_shared_key_ch(data: bytes) -> OfferedPsks:
    r = Reader(data)
    ids = r.prefixed(2, 7)
    identities: list[PskIdentity] = []
    while not ids.at_end():
        identity = ids.vector(2, 1)
        identities.append(PskIdentity(identity, ids.u32()))
    binders_r = r.prefixed(2, 33)
    binders: list[bytes] = []
    while not binders_r.at_end():
        binders.append(binders_r.vector(1, 32))
    r.finish()
    if len(binders) != len(identities):
        raise IllegalParameter("pre_shared_key: binders and identities differ in number")
    return OfferedPsks(tuple(identities), tuple(binders))


def encode_pre_shared_key_ch(offer: OfferedPsks) -> bytes:
    w = Writer()
    with w.prefixed(2, 7):
        for ident in offer.identities:
            w.vector(2, ident.identity, 1)
            w.u32(ident.obfuscated_ticket_age)
    with w.prefixed(2, 33):
        for binder in offer.binders:
            w.vector(1, binder, 32)
    return w.getvalue()


def binders_length(offer: OfferedPsks) -> int:
    """Bytes the binders list takes at the end of a ClientHello (RFC 8446 §4.2.11.2: the
    binder is computed over the ClientHello truncated before them)."""
    return 2 + sum(1 + len(b) for b in offer.binders)


def decode_pre_shared_key_sh(data: bytes) -> int:
    """RFC 8446 §4.2.11: uint16 selected_identity."""
    r = Reader(data)
    selected = r.u16()
    r.finish()
    return selected


def decode_record_size_limit(data: bytes) -> int:
    """RFC 8449 §4: uint16 RecordSizeLimit, at least 64."""
    r = Reader(data)
    limit = r.u16()
    r.finish()
    if limit < 64:
        raise IllegalParameter("record_size_limit below 64")
    return limit


def decode_renegotiation_info(data: bytes) -> bytes:
    """RFC 5746 §3.2: opaque renegotiated_connection<0..255>."""
    return whole_vector(data, 1)


def encode_renegotiation_info(value: bytes = b"") -> bytes:
    w = Writer()
    w.vector(1, value)
    return w.getvalue()


def require_empty(data: bytes, name: str) -> None:
    """extended_master_secret, post_handshake_auth, early_data in CH/EE: empty bodies."""
    if data:
        raise DecodeError(f"{name} extension must be empty")
