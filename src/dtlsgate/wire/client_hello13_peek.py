"""A (D)TLS 1.3 ClientHello read in one pass for a stateless HelloRetryRequest.

``peek_client_hello13(body)`` reads a DTLS ClientHello body (RFC 9147 §5.3)::

    legacy_version (2) | random (32) | legacy_session_id<0..32> | legacy_cookie<0..2^8-1> |
    cipher_suites<2..2^16-2> | legacy_compression_methods<1..2^8-1> |
    extensions<8..2^16-1>

and, with ``dtls=False``, a TLS one (RFC 8446 §4.1.2: the same without legacy_cookie), for
the stream gate (`dtlsgate.gate.stream`, OpenSSL's ``SSL_stateless``),

checking its framing as `ClientHello.decode` (`wire.messages`) does, the extensions block
included (each extension's header and body within it, no type twice: RFC 8446 §4.2; the
walk after the cookie is `client_hello_peek.framing_after_cookie`, the DTLS 1.2 peek's), and
decoding only key_share (its groups: which shares the client sent, RFC 8446 §4.2.8; each
entry's framing and no group twice are checked, the key bytes are not kept), the one body
that differs from client to client of one kind. The offer the server chooses from
(cipher_suites, supported_versions, supported_groups, signature_algorithms,
application_layer_protocol_negotiation) is returned as the bytes received: one kind of
client sends the same bytes every time, so the gate decodes them (`decode_offer13`, with
the full decoders) once per distinct offer and remembers its choice; every other extension
is walked, not decoded. It also returns what ClientHello2 must repeat (``fixed``: the bytes
of `client_hello_fixed_part`, sliced from the body, unless the caller has it for that
ClientHello2's rest), and whether the hello has a cookie or
a pre_shared_key extension, which need the full decoders (a ClientHello2, a PSK offer).
Of a ClientHello2 without a PSK it cuts out the fields that differ from handshake to
handshake (`ClientHello2Split`: the message without its random, session_id and the bodies of
key_share and cookie; and those two bodies), so that the gate decodes each distinct rest
once.

DecodeError when the body is malformed in what is read (`decode_offer13`: in the offer).
The gates (`dtlsgate.gate.dtls13`, `dtlsgate.gate.stream`) answer from it and decode
ClientHello2 whole (or by its rest) before admitting it; ``tests/test_client_hello13_peek.py``
pins the two to the full decoders.
"""

from __future__ import annotations

import struct
from collections.abc import Callable, Container
from functools import partial
from typing import NamedTuple, cast

from dtlsgate.errors import DecodeError
from dtlsgate.wire.client_hello_peek import framing_after_cookie
from dtlsgate.wire.enums import ExtensionType
from dtlsgate.wire.extensions import (
    CHANGEABLE_IN_CLIENT_HELLO2,
    decode_supported_versions_ch,
    decode_u16_list_ext,
)
from dtlsgate.wire.messages import MAX_SESSION_ID_LENGTH, RANDOM_LENGTH

__all__ = ["ClientHello2Split", "ClientHello13Peek", "decode_offer13", "peek_client_hello13"]

_SESSION_ID_AT = 2 + RANDOM_LENGTH
_VERSION_AND_RANDOM = struct.Struct(f">H{RANDOM_LENGTH}s")
_TYPE_AND_LENGTH = struct.Struct(">HH")


class ClientHello2Split(NamedTuple):
    """A ClientHello2 (a cookie, no pre_shared_key) cut by `peek_client_hello13` into what
    one kind of client sends alike in every handshake and what differs (with ``random``
    and ``session_id``, which `ClientHello13Peek` has):

    - ``head``: the message before its legacy_cookie (legacy_version, random, session_id),
      the start of what the cookie binds (`client_hello_fixed_part`);
    - ``rest``: the message from its legacy_cookie to its end, the bodies of key_share and
      cookie cut out (their headers kept);
    - ``key_share``: the key_share extension's body (None when it is absent);
    - ``cookie``: the cookie extension's body.
    """

    head: bytes
    rest: bytes
    key_share: bytes | None
    cookie: bytes


# (head, rest, key_share, cookie) -> ClientHello2Split, in C (tuple.__new__): no
# Python-level __new__ per ClientHello2.
_as_split = cast(
    Callable[[tuple[bytes, bytes, bytes | None, bytes]], ClientHello2Split],
    partial(tuple.__new__, ClientHello2Split),
)


class ClientHello13Peek(NamedTuple):
    """What `peek_client_hello13` reads of a ClientHello.

    - ``legacy_version``, ``random``, ``session_id``, ``legacy_cookie``,
      ``compression_methods``: as `ClientHello` has them (``legacy_cookie`` empty in a TLS
      ClientHello, which has no such field);
    - ``cipher_suites``: the cipher_suites vector's contents, undecoded (an even number of
      bytes);
    - ``versions``, ``groups``, ``signature_schemes``, ``alpn``: the bodies of
      supported_versions, supported_groups, signature_algorithms and
      application_layer_protocol_negotiation, undecoded (None: absent, or not read: in a
      ClientHello2, which the gate decodes in full or by its rest);
    - ``share_groups``: the groups of key_share's entries, in order (None when key_share is
      absent, or in a ClientHello2, whose shares are decoded in full);
    - ``fixed``: `client_hello_fixed_part` of the message, from its bytes (None for a
      ClientHello2 whose rest is ``known``: its ``hello2.head`` and the rest's part, which
      the gate keeps with the rest decoded);
    - ``needs_full``: a cookie or pre_shared_key extension is present;
    - ``hello2``: for a ClientHello with a cookie and no pre_shared_key (a ClientHello2),
      its `ClientHello2Split`; None for any other.
    """

    legacy_version: int
    random: bytes
    session_id: bytes
    legacy_cookie: bytes
    cipher_suites: bytes
    compression_methods: bytes
    versions: bytes | None
    groups: bytes | None
    signature_schemes: bytes | None
    share_groups: tuple[int, ...] | None
    alpn: bytes | None
    fixed: bytes | None
    needs_full: bool
    hello2: ClientHello2Split | None


# The fields in order -> ClientHello13Peek, in C (tuple.__new__), as `_as_split`: the
# gate peeks every DTLS 1.3 ClientHello1, and the named tuple's own ``__new__`` is a
# Python-level function taking fourteen arguments.
_as_peek = cast(
    Callable[
        [
            tuple[
                int,
                bytes,
                bytes,
                bytes,
                bytes,
                bytes,
                bytes | None,
                bytes | None,
                bytes | None,
                tuple[int, ...] | None,
                bytes | None,
                bytes | None,
                bool,
                ClientHello2Split | None,
            ]
        ],
        ClientHello13Peek,
    ],
    partial(tuple.__new__, ClientHello13Peek),
)


def peek_client_hello13(
    body: bytes, known: Container[bytes] = (), dtls: bool = True
) -> ClientHello13Peek:
    """The `ClientHello13Peek` of a whole DTLS ClientHello ``body`` (a TLS one when ``dtls``
    is False: no legacy_cookie field) (module docstring); DecodeError when it is malformed
    in what is read, or has no extensions block. ``known``: the rests
    (`ClientHello2Split.rest`) of ClientHello2s whose fixed part the caller has already (its
    part after ``head``): for one of those ``fixed`` is left None, not sliced again."""
    end = len(body)
    if end < _SESSION_ID_AT + 1:
        raise DecodeError("ClientHello truncated before its session_id")
    legacy_version, random = _VERSION_AND_RANDOM.unpack_from(body)
    session_id_length = body[_SESSION_ID_AT]
    if session_id_length > MAX_SESSION_ID_LENGTH:
        raise DecodeError(f"session_id of {session_id_length} bytes")
    # In a TLS ClientHello cipher_suites follows the session_id: ``cookie_at`` (where the
    # fields after the head start, `ClientHello2Split`) is then ``suites_at``, and the
    # legacy_cookie sliced between them empty.
    cookie_at = suites_at = _SESSION_ID_AT + 1 + session_id_length
    if dtls:
        if cookie_at >= end:
            raise DecodeError("ClientHello truncated before its cookie")
        suites_at = cookie_at + 1 + body[cookie_at]
    compression_at, extensions_at, spans = framing_after_cookie(body, suites_at, end)
    if spans is None:
        # RFC 8446 §4.1.2: a (D)TLS 1.3 ClientHello has extensions.
        raise DecodeError("ClientHello without an extensions block")
    get = spans.get
    shares = get(ExtensionType.key_share)
    cookie = get(ExtensionType.cookie)
    if cookie is not None and ExtensionType.pre_shared_key not in spans:
        # A ClientHello2: decoded in full or by its rest (the gate), its offer and shares
        # not read here.
        hello2 = _split_hello2(body, cookie_at, cookie, shares)
        versions = groups = schemes = alpn = share_groups = None
    else:
        hello2 = None
        span = get(ExtensionType.supported_versions)
        versions = None if span is None else body[span[0] + 4 : span[1]]
        span = get(ExtensionType.supported_groups)
        groups = None if span is None else body[span[0] + 4 : span[1]]
        span = get(ExtensionType.signature_algorithms)
        schemes = None if span is None else body[span[0] + 4 : span[1]]
        span = get(ExtensionType.application_layer_protocol_negotiation)
        alpn = None if span is None else body[span[0] + 4 : span[1]]
        share_groups = None if shares is None else _share_groups(body, shares[0] + 4, shares[1])
    fixed = None
    if hello2 is None or hello2.rest not in known:
        # Every extension ClientHello2 may not change (RFC 8446 §4.1.2), by type, as
        # `client_hello_fixed_part` orders them (no type is there twice). The types sorted
        # as ints and each span read by its type, in a plain loop: not the (type, span)
        # pairs sorted as tuples, nor a comprehension (a function of its own, made and
        # called per ClientHello).
        parts = [body[:cookie_at], body[suites_at:extensions_at]]
        for ext_type in sorted(spans):
            if ext_type not in CHANGEABLE_IN_CLIENT_HELLO2:
                start, stop = spans[ext_type]
                parts.append(body[start:stop])
        fixed = b"".join(parts)
    return _as_peek(
        (
            legacy_version,
            random,
            body[_SESSION_ID_AT + 1 : cookie_at],
            body[cookie_at + 1 : suites_at],  # b"" when there is none (TLS)
            body[suites_at + 2 : compression_at],
            body[compression_at + 1 : extensions_at],
            versions,
            groups,
            schemes,
            share_groups,
            alpn,
            fixed,
            cookie is not None or ExtensionType.pre_shared_key in spans,
            hello2,
        )
    )


def decode_offer13(
    peek: ClientHello13Peek,
) -> tuple[tuple[int, ...], tuple[int, ...], tuple[int, ...], tuple[int, ...]]:
    """The cipher suites, supported_versions, supported_groups and signature_algorithms of
    a `ClientHello13Peek`, decoded by the full decoders (() for an absent extension);
    DecodeError when one of them is malformed."""
    suites = peek.cipher_suites
    versions, groups, schemes = peek.versions, peek.groups, peek.signature_schemes
    return (
        struct.unpack(f">{len(suites) >> 1}H", suites),  # an even length: the peek checked
        () if versions is None else decode_supported_versions_ch(versions),
        () if groups is None else decode_u16_list_ext(groups),
        () if schemes is None else decode_u16_list_ext(schemes),
    )


def _split_hello2(
    body: bytes, cookie_at: int, cookie: tuple[int, int], key_share: tuple[int, int] | None
) -> ClientHello2Split:
    """The `ClientHello2Split` of a ClientHello2, from the spans of its cookie and
    key_share extensions (each from its header to its end)."""
    head, cookie_body = body[:cookie_at], body[cookie[0] + 4 : cookie[1]]
    if key_share is None:
        rest = body[cookie_at : cookie[0] + 4] + body[cookie[1] :]
        return _as_split((head, rest, None, cookie_body))
    (a, b), (c, d) = (cookie, key_share) if cookie[0] < key_share[0] else (key_share, cookie)
    rest = b"".join((body[cookie_at : a + 4], body[b : c + 4], body[d:]))
    return _as_split((head, rest, body[key_share[0] + 4 : key_share[1]], cookie_body))


def _share_groups(body: bytes, start: int, stop: int) -> tuple[int, ...]:
    """The groups of key_share's ``KeyShareEntry client_shares<0..2^16-1>`` in
    ``body[start:stop]``, each ``group (2) | key_exchange<1..2^16-1>`` (RFC 8446 §4.2.8): the
    vector filling the body, each entry within it, no group twice (illegal_parameter)."""
    if stop - start < 2 or start + 2 + ((body[start] << 8) | body[start + 1]) != stop:
        raise DecodeError("key_share vector does not fill its extension")
    out: list[int] = []
    pos = start + 2
    while pos < stop:
        if pos + 4 > stop:
            raise DecodeError("key_share entry truncated")
        group, length = _TYPE_AND_LENGTH.unpack_from(body, pos)
        pos += 4 + length
        if not length or pos > stop:
            raise DecodeError("key_share key_exchange empty or truncated")
        out.append(group)
    if len(set(out)) != len(out):
        raise DecodeError("two key shares for one group")
    return tuple(out)
