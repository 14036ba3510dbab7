"""`peek_client_hello13` against the full decoders, and the gate answering from it.

Wherever `ClientHello.decode` and `client_hello_info` accept a ClientHello, the peek reads
the same fields and the same `client_hello_fixed_part`; where the peek refuses one, so do
they. A ClientHello1 malformed only in an extension the HelloRetryRequest does not depend
on is answered (the gate.dtls13 docstring says why), and its ClientHello2 is decoded in
full and never admitted."""

from __future__ import annotations

from helpers import CLIENT, NOW, SERVER, client_config, server_config
from hypothesis import given, settings
from hypothesis import strategies as st

from dtlsgate.connection.datagram13 import Dtls13ClientConnection
from dtlsgate.crypto.suites import CipherSuite
from dtlsgate.errors import ProtocolError
from dtlsgate.gate.datagram import Dtls13Admit, Gate, Reply
from dtlsgate.handshake.tls13.common import client_hello_fixed_part, client_hello_info
from dtlsgate.wire.client_hello13_peek import decode_offer13, peek_client_hello13
from dtlsgate.wire.enums import ExtensionType, HandshakeType, NamedGroup
from dtlsgate.wire.messages import ClientHello

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


def _check_against_full_decoders(body: bytes) -> None:
    try:
        hello = ClientHello.decode(body, dtls=True)
        info = client_hello_info(hello) if hello.extensions is not None else None
    except ProtocolError:
        info = None
    if info is None:
        return  # the full decoders refuse it: the peek may answer or refuse
    peek = peek_client_hello13(body)  # they accept it, so must the peek
    assert (peek.legacy_version, peek.random, peek.session_id) == (
        hello.legacy_version,
        hello.random,
        hello.session_id,
    )
    assert (peek.legacy_cookie, peek.compression_methods) == (
        hello.cookie,
        hello.compression_methods,
    )
    # ... and the offer it leaves undecoded decodes to the same lists.
    assert decode_offer13(peek) == (
        hello.cipher_suites,
        info.versions,
        info.groups,
        info.signature_schemes,
    )
    shares = None if info.shares is None else tuple(e.group for e in info.shares)
    assert peek.share_groups == shares
    bodies = {e.type: e.data for e in hello.extensions or ()}
    assert peek.alpn == bodies.get(ExtensionType.application_layer_protocol_negotiation)
    assert peek.fixed == client_hello_fixed_part(hello)
    assert peek.needs_full == (info.cookie is not None or info.psk is not None)


def test_real_hellos_read_as_the_full_decoders_read_them() -> None:
    for body in REAL:
        peek = peek_client_hello13(body)
        assert decode_offer13(peek)[1] and peek.share_groups
        _check_against_full_decoders(body)
    assert peek_client_hello13(REAL[4]).needs_full  # a PSK offer
    assert not peek_client_hello13(REAL[0]).needs_full


@settings(max_examples=400, deadline=None)
@given(st.sampled_from(REAL), st.integers(0, 400), st.binary(max_size=4), st.integers(0, 8))
def test_mutated_hellos_read_as_the_full_decoders_read_them(
    body: bytes, at: int, noise: bytes, cut: int
) -> None:
    data = bytearray(body)
    data[at : at + len(noise)] = noise
    _check_against_full_decoders(bytes(data[: len(data) - cut]))


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
