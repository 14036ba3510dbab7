"""`peek_client_hello13` against the full decoders, and the gate answering from it.

Wherever `ClientHello.decode` and `client_hello_info` accept a ClientHello, the peek reads
the same fields and the same `client_hello_fixed_part`; where the peek refuses one, so do
they. A ClientHello2 whose rest the gate decoded before reads as the full decoders read it.
A ClientHello1 malformed only in an extension the HelloRetryRequest does not depend
on is answered (the gate.dtls13 docstring says why), and its ClientHello2 is decoded in
full and never admitted."""

from __future__ import annotations

import dataclasses

import pytest
from builders import client_hello
from helpers import CLIENT, NOW, SERVER, client_config, server_config
from hypothesis import given, settings
from hypothesis import strategies as st

from dtlsgate.connection.datagram13 import Dtls13ClientConnection
from dtlsgate.crypto import DeterministicProvider
from dtlsgate.crypto.suites import CipherSuite
from dtlsgate.errors import DecodeError, ProtocolError
from dtlsgate.gate.datagram import Dtls13Admit, Gate, Reply
from dtlsgate.gate.dtls13 import MAX_HELLO2_BYTES, DtlsGate13, decode_dtls13_hello
from dtlsgate.handshake.tls13.common import (
    ClientHelloInfo,
    client_hello_fixed_part,
    client_hello_info,
)
from dtlsgate.wire.client_hello13_peek import decode_offer13, peek_client_hello13
from dtlsgate.wire.enums import ExtensionType, HandshakeType, NamedGroup
from dtlsgate.wire.extensions import Extension
from dtlsgate.wire.handshake import encode_dtls_handshake
from dtlsgate.wire.messages import ClientHello
from dtlsgate.wire.record import encode_dtls_record

# The first record's body: after the record (13) and handshake (12) headers.
BODY_AT = 25


def _real_hello(**kwargs: object) -> bytes:
    client = Dtls13ClientConnection(client_config(**kwargs), SERVER)  # type: ignore[arg-type]
    client.connect(NOW)
    ((datagram, _),) = client.datagrams_to_send()
    return datagram[BODY_AT:]


REAL = [
    _real_hello(),
    _real_hello(groups=(NamedGroup.secp384r1, NamedGroup.x25519)),
    _real_hello(
        cipher_suites=(CipherSuite.TLS_AES_128_GCM_SHA256, CipherSuite.TLS_AES_256_GCM_SHA384)
    ),
    _real_hello(alpn_protocols=(b"coap", b"h2"), server_name="example.com"),
    _real_hello(psk_identity=b"id", psk=b"k" * 32),
    _real_hello(post_handshake_auth=True, certificate_compression=("zlib",)),
]


def check_against_full_decoders(body: bytes, dtls: bool = True) -> None:
    """When the full decoders accept ``body`` (a DTLS ClientHello's, or a TLS one's when
    ``dtls`` is False), the peek reads it as they do."""
    try:
        hello = ClientHello.decode(body, dtls=dtls)
        info = client_hello_info(hello) if hello.extensions is not None else None
    except ProtocolError:
        info = None
    if info is None:
        return  # the full decoders refuse it: the peek may answer or refuse
    peek = peek_client_hello13(body, (), dtls)  # they accept it, so must the peek
    assert (peek.legacy_version, peek.random, peek.session_id) == (
        hello.legacy_version,
        hello.random,
        hello.session_id,
    )
    if not dtls:
        assert hello.cookie is None  # TLS has no legacy_cookie field; the peek reads it empty
    assert (peek.legacy_cookie, peek.compression_methods) == (
        hello.cookie if dtls else b"",
        hello.compression_methods,
    )
    bodies = {e.type: e.data for e in hello.extensions or ()}
    assert peek.needs_full == (info.cookie is not None or info.psk is not None)
    assert peek.fixed == client_hello_fixed_part(hello)  # no rest known to it
    if peek.hello2 is not None:  # a ClientHello2: cut, its offer and shares not read
        assert info.cookie is not None and info.psk is None
        assert peek.share_groups is None and peek.versions is None and peek.groups is None
        assert peek.hello2.cookie == bodies[ExtensionType.cookie]
        assert peek.hello2.key_share == bodies.get(ExtensionType.key_share)
        assert client_hello_fixed_part(hello).startswith(peek.hello2.head)
        return
    # ... and the offer it leaves undecoded decodes to the same lists.
    assert decode_offer13(peek) == (
        hello.cipher_suites,
        info.versions,
        info.groups,
        info.signature_schemes,
    )
    assert peek.alpn == bodies.get(ExtensionType.application_layer_protocol_negotiation)
    shares = None if info.shares is None else tuple(e.group for e in info.shares)
    assert peek.share_groups == shares


def test_real_hellos_read_as_the_full_decoders_read_them() -> None:
    for body in REAL:
        peek = peek_client_hello13(body)
        assert decode_offer13(peek)[1] and peek.share_groups
        check_against_full_decoders(body)
    assert peek_client_hello13(REAL[4]).needs_full  # a PSK offer
    assert not peek_client_hello13(REAL[0]).needs_full


@settings(max_examples=400, deadline=None)
@given(st.sampled_from(REAL), st.integers(0, 400), st.binary(max_size=4), st.integers(0, 8))
def test_mutated_hellos_read_as_the_full_decoders_read_them(
    body: bytes, at: int, noise: bytes, cut: int
) -> None:
    data = bytearray(body)
    data[at : at + len(noise)] = noise
    check_against_full_decoders(bytes(data[: len(data) - cut]))


def test_malformed_unread_extension_answered_then_client_hello2_not_admitted() -> None:
    gate = Gate(server_config())
    client = Dtls13ClientConnection(client_config(), SERVER)
    client.connect(NOW)
    ((hello, _),) = client.datagrams_to_send()
    # server_name's list length one too long: its decoder refuses it; no framing changes.
    good, bad = b"\x00\x0c\x00\x00\x09localhost", b"\x00\x0d\x00\x00\x09localhost"
    assert hello.count(good) == 1
    malformed = hello.replace(good, bad)
    reply = gate.receive(malformed, CLIENT, NOW)
    assert isinstance(reply, Reply) and len(reply.data) <= len(malformed)
    assert reply.data[13] == HandshakeType.SERVER_HELLO  # a HelloRetryRequest
    client.receive(reply.data, SERVER, NOW)
    ((hello2, _),) = client.datagrams_to_send()
    # The client's own ClientHello2 differs in server_name: the cookie does not verify.
    assert not isinstance(gate.receive(hello2, CLIENT, NOW), Dtls13Admit)
    # With the same malformed server_name, the cookie's check passes, the full decode not.
    assert hello2.count(good) == 1
    assert not isinstance(gate.receive(hello2.replace(good, bad), CLIENT, NOW), Dtls13Admit)
    assert gate.admits == 0


def _hello2(seed: bytes = b"client", **kwargs: object) -> bytes:
    """A ClientHello2 datagram of our client (its random and key shares from ``seed``),
    after the HelloRetryRequest of a gate on `server_config` (its cookie verifies there)."""
    config = client_config(provider=DeterministicProvider(seed), **kwargs)  # type: ignore[arg-type]
    client = Dtls13ClientConnection(config, SERVER)
    client.connect(NOW)
    ((hello, _),) = client.datagrams_to_send()
    reply = Gate(server_config()).receive(hello, CLIENT, NOW)
    assert isinstance(reply, Reply)
    client.receive(reply.data, SERVER, NOW)
    ((hello2, _),) = client.datagrams_to_send()
    return hello2


HELLO2_KINDS: list[dict[str, object]] = [
    {},
    {"groups": (NamedGroup.secp384r1, NamedGroup.x25519)},
    {"alpn_protocols": (b"coap", b"h2"), "server_name": "example.com"},
    {"post_handshake_auth": True, "certificate_compression": ("zlib",)},
]
# Two ClientHello2 datagrams of each kind: one rest, their own randoms, shares and cookies.
HELLO2 = [(_hello2(b"one", **kind), _hello2(b"two", **kind)) for kind in HELLO2_KINDS]


def _judge(gate13: DtlsGate13, datagram: bytes, peer: object = CLIENT) -> object:
    """`DtlsGate13.judge_hello` for a ClientHello2 alone in its datagram."""
    return gate13.judge_hello(1, 1, datagram[BODY_AT:], datagram, peer, NOW)  # type: ignore[arg-type]


def _decoded(gate13: DtlsGate13, body: bytes) -> object:
    """`DtlsGate13.decode_hello2` (the ClientHello, its extensions, what its cookie binds),
    as `judge_hello` calls it, with the extensions by type besides (the ClientHello's
    equality leaves them out)."""
    decoded = gate13.decode_hello2(peek_client_hello13(body, gate13.hello2_rests), body)
    return None if decoded is None else (*decoded, dict(decoded[0].extension_bodies))


def _full(body: bytes) -> object:
    """The same from the full decoders."""
    decoded = decode_dtls13_hello(body)
    if decoded is None:
        return None
    hello = decoded[0]
    return (*decoded, client_hello_fixed_part(hello), dict(hello.extensions or ()))


def test_client_hello2_decoded_once_per_rest() -> None:
    """A ClientHello2 whose rest (all but random, session_id, key shares and cookie) the
    gate decoded and admitted before is that one with its own fields put in: what the full
    decoders read, without decoding the rest again. One whose cookie does not verify is
    not remembered."""
    gate13 = DtlsGate13(server_config())
    for n, (first, second) in enumerate(HELLO2, 1):
        body1, body2 = first[BODY_AT:], second[BODY_AT:]
        peek = peek_client_hello13(body2)
        split, split1 = peek.hello2, peek_client_hello13(body1).hello2
        assert split is not None and split1 is not None and split.key_share
        assert split.rest == split1.rest and first != second
        assert body1.count(split.key_share) == 0 and body1.count(split.cookie) == 0
        assert _decoded(gate13, body1) == _full(body1) and gate13.hellos2_remembered == n - 1
        # From another address the cookie does not verify: not remembered.
        assert not isinstance(_judge(gate13, first, ("192.0.2.99", 1)), Dtls13Admit)
        assert gate13.hellos2_remembered == n - 1
        assert isinstance(_judge(gate13, first), Dtls13Admit)
        assert gate13.hellos2_remembered == n
        assert _decoded(gate13, body2) == _full(body2) and gate13.hellos2_remembered == n
        # Alike to the repr: each extension's type as read (an int, not an enum member)
        # and in its place, the unchanged ones the remembered ClientHello's.
        assert repr(_decoded(gate13, body2)) == repr(_full(body2))
        assert isinstance(_judge(gate13, second), Dtls13Admit)
        decoded = gate13.decode_hello2(peek, body2)
        again = gate13.decode_hello2(peek_client_hello13(body1), body1)
        assert decoded is not None and again is not None
        assert decoded[0].cipher_suites is again[0].cipher_suites  # the remembered one's
    # The peek slices what the cookie binds unless its rest is known; known to the peek
    # and forgotten since (another thread's memo started over), it is made from the decode.
    body = HELLO2[0][1][BODY_AT:]
    split = peek_client_hello13(body).hello2
    full = decode_dtls13_hello(body)
    assert split is not None and full is not None
    assert peek_client_hello13(body, gate13.hello2_rests).fixed is None
    assert peek_client_hello13(body).fixed == client_hello_fixed_part(full[0])
    fresh = DtlsGate13(server_config())
    decoded = fresh.decode_hello2(peek_client_hello13(body, {split.rest}), body)
    assert decoded is not None and decoded[2] == client_hello_fixed_part(full[0])
    # A PSK offer has no rest: decoded in full each time, not remembered.
    psk_offer = peek_client_hello13(REAL[4])
    assert psk_offer.needs_full and psk_offer.hello2 is None
    assert _decoded(gate13, REAL[4]) == _full(REAL[4])
    # A ClientHello1 has none either.
    assert peek_client_hello13(REAL[0]).hello2 is None
    # One larger than MAX_HELLO2_BYTES is decoded and admitted, not remembered.
    names = tuple(b"protocol-%03d" % i for i in range(64))
    large = _hello2(alpn_protocols=names)
    assert len(large) - BODY_AT > MAX_HELLO2_BYTES
    assert _decoded(gate13, large[BODY_AT:]) == _full(large[BODY_AT:])
    assert isinstance(_judge(gate13, large), Dtls13Admit)
    assert gate13.hellos2_remembered == len(HELLO2)


@settings(max_examples=400, deadline=None)
@given(st.sampled_from(HELLO2), st.integers(0, 400), st.binary(max_size=4), st.integers(0, 2))
def test_mutated_client_hello2_decoded_as_the_full_decoders_decode_it(
    pair: tuple[bytes, bytes], at: int, noise: bytes, cut: int
) -> None:
    """With the rest of a kind of ClientHello2 remembered, a changed one (its random,
    session_id, key shares, cookie or anything else) decodes as the full decoders decode
    it, or is refused as they refuse it."""
    first, second = pair
    gate13 = DtlsGate13(server_config())
    assert isinstance(_judge(gate13, first), Dtls13Admit) and gate13.hellos2_remembered == 1
    data = bytearray(second[BODY_AT:])
    data[at : at + len(noise)] = noise
    body = bytes(data[: len(data) - cut])
    try:
        peek_client_hello13(body)
    except ProtocolError:
        return  # the gate judges it as DTLS 1.2 (the peek's own test pins it)
    assert _decoded(gate13, body) == _full(body)


def test_client_hello_info_with_hello2_keeps_every_other_field() -> None:
    """`ClientHelloInfo.with_hello2` replaces the key shares and cookie and keeps every other
    field, a field added later included (each given a value of its own here)."""
    fields = dataclasses.fields(ClientHelloInfo)
    values = {f.name: object() for f in fields}
    info = ClientHelloInfo(**values)  # type: ignore[arg-type]
    shares, cookie = object(), object()
    out = info.with_hello2(shares, cookie)  # type: ignore[arg-type]
    for f in fields:
        expected = {"shares": shares, "cookie": cookie}.get(f.name, values[f.name])
        assert getattr(out, f.name) is expected, f.name


def _body(
    extensions: tuple[Extension, ...] | None, cookie: bytes = b"", version: int = 0xFEFD
) -> bytes:
    """A ClientHello body of `builders.client_hello` with ``extensions``."""
    return client_hello(version=version, cookie=cookie, extensions=extensions).encode()


_DTLS13 = Extension(ExtensionType.supported_versions, b"\x02\xfe\xfc")


def _with_key_share(data: bytes) -> bytes:
    return _body((_DTLS13, Extension(ExtensionType.key_share, data)))


_SHARE = b"\x00\x1d\x00\x01\x07"  # group x25519, a key_exchange of one byte


@pytest.mark.parametrize(
    ("body", "match"),
    [
        (bytes(2 + 32 + 1), "truncated before its cookie"),  # ends after the session_id
        (bytes(2 + 32 + 1 + 1), "truncated in cipher_suites"),  # ends after the cookie
        (_body(None), "without an extensions block"),  # RFC 8446 §4.1.2
        (_with_key_share(b"\x00\x06" + _SHARE), "does not fill"),
        (_with_key_share(b"\x00\x08" + _SHARE + b"\x00\x17\x00"), "entry truncated"),
        (_with_key_share(b"\x00\x04\x00\x1d\x00\x00"), "empty or truncated"),
        (_with_key_share(b"\x00\x05\x00\x1d\x00\x02\x07"), "empty or truncated"),
        (_with_key_share(b"\x00\x0a" + _SHARE * 2), "two key shares"),  # RFC 8446 §4.2.8
    ],
)
def test_malformed_client_hello_refused_by_the_peek_and_the_full_decoders(
    body: bytes, match: str
) -> None:
    with pytest.raises(DecodeError, match=match):
        peek_client_hello13(body)
    assert decode_dtls13_hello(body) is None  # the full decoders refuse it too


def test_client_hello2_without_key_share_is_cut_around_its_cookie() -> None:
    """A ClientHello2 may carry no key_share (an HRR that asked for none is answered with
    the same shares, RFC 8446 §4.1.2; a hostile client may send none): its rest is the
    body after the head with the cookie's body cut out, as for one with shares."""
    extensions = (
        _DTLS13,
        Extension(ExtensionType.cookie, b"\x00\x03abc"),
        Extension(ExtensionType.supported_groups, b"\x00\x02\x00\x1d"),
    )
    body = _body(extensions)
    peek = peek_client_hello13(body)
    assert peek.hello2 is not None
    assert peek.hello2.key_share is None and peek.hello2.cookie == b"\x00\x03abc"
    assert b"abc" not in peek.hello2.rest and peek.hello2.rest.endswith(b"\x00\x02\x00\x1d")
    assert body.startswith(peek.hello2.head) and len(peek.hello2.head) == 2 + 32 + 1
    check_against_full_decoders(body)


def test_client_hello2_with_a_legacy_cookie_is_not_judged_as_dtls13() -> None:
    """RFC 9147 §5.3: a DTLS 1.3 ClientHello's legacy_cookie is empty. A ClientHello2 with
    one is refused by the full decode (its cookie extension verifies, not the rule) and
    judged as DTLS 1.2: a HelloVerifyRequest for its legacy_cookie, never an admit."""
    first, _ = HELLO2[0]
    hello = ClientHello.decode(first[BODY_AT:], dtls=True)
    body = dataclasses.replace(hello, cookie=b"x" * 8).encode()
    datagram = encode_dtls_record(22, 0xFEFD, 0, 1, encode_dtls_handshake(1, body, 1))
    assert _judge(DtlsGate13(server_config()), datagram) is None
    reply = Gate(server_config()).receive(datagram, CLIENT, NOW)
    assert isinstance(reply, Reply) and reply.data[13] == HandshakeType.HELLO_VERIFY_REQUEST
    assert isinstance(_judge(DtlsGate13(server_config()), first), Dtls13Admit)
