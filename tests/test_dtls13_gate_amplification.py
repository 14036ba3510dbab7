"""No reply of the gate's DTLS 1.3 path is larger than the request that caused it (DESIGN.md,
the gate contract; RFC 9147 §5.1's HelloRetryRequest is the reply): for small hand-built
DTLS 1.3 ClientHellos of every shape (session_id, suites, groups, with and without a key
share, so that the HRR asks for one or not), for real clients' ClientHellos, mutated or
not, and for fragmented ones judged once whole (the reply against the fragments' sum)."""

from __future__ import annotations

from helpers import CLIENT, NOW, SERVER, client_config, server_config
from hypothesis import given, settings
from hypothesis import strategies as st

from dtlsgate.connection.datagram13 import Dtls13ClientConnection
from dtlsgate.crypto import DeterministicProvider
from dtlsgate.gate.datagram import Drop, DropReason, Gate, Reply
from dtlsgate.wire.enums import CipherSuite, ExtensionType, NamedGroup, ProtocolVersion
from dtlsgate.wire.extensions import (
    Extension,
    KeyShareEntry,
    encode_key_share_ch,
    encode_supported_versions_ch,
    encode_u16_list_ext,
)
from dtlsgate.wire.handshake import encode_dtls_handshake
from dtlsgate.wire.messages import ClientHello
from dtlsgate.wire.record import encode_dtls_record

GATE = Gate(server_config(provider=DeterministicProvider(b"amplification")))
SUITES = [
    CipherSuite.TLS_AES_128_GCM_SHA256,
    CipherSuite.TLS_AES_256_GCM_SHA384,
    CipherSuite.TLS_CHACHA20_POLY1305_SHA256,
]
GROUPS = [NamedGroup.x25519, NamedGroup.secp256r1, NamedGroup.secp384r1]


@st.composite
def dtls13_hellos(draw: st.DrawFn) -> bytes:
    suites = draw(st.lists(st.sampled_from(SUITES), min_size=1, max_size=3, unique=True))
    groups = draw(st.lists(st.sampled_from(GROUPS), min_size=1, max_size=3, unique=True))
    shares = draw(st.lists(st.sampled_from(groups), max_size=2, unique=True))
    extensions = [
        Extension(ExtensionType.supported_versions, encode_supported_versions_ch([0xFEFC])),
        Extension(ExtensionType.supported_groups, encode_u16_list_ext(groups)),
        Extension(ExtensionType.signature_algorithms, encode_u16_list_ext([0x0403, 0x0804])),
        Extension(
            ExtensionType.key_share,
            encode_key_share_ch(
                [KeyShareEntry(g, draw(st.binary(min_size=1, max_size=4))) for g in shares]
            ),
        ),
        # padding (RFC 7685): around the size where the HelloRetryRequest starts to fit.
        Extension(ExtensionType.padding, bytes(draw(st.integers(0, 120)))),
    ]
    hello = ClientHello(
        ProtocolVersion.DTLS12,
        draw(st.binary(min_size=32, max_size=32)),
        draw(st.binary(max_size=32)),
        tuple(suites),
        b"\x00",
        tuple(extensions),
        b"",
    )
    message = encode_dtls_handshake(1, hello.encode(), 0)
    return encode_dtls_record(
        22, ProtocolVersion.DTLS12, 0, draw(st.integers(0, 2**48 - 1)), message
    )


@settings(max_examples=300, deadline=None)
@given(dtls13_hellos(), st.integers(0, 65535))
def test_no_reply_exceeds_a_hand_built_hello(hello: bytes, port: int) -> None:
    result = GATE.receive(hello, ("192.0.2.1", port), NOW)
    if isinstance(result, Reply):
        assert len(result.data) <= len(hello)
    else:
        # Too small to answer without amplifying, or nothing we negotiate: dropped.
        assert isinstance(result, Drop), result
        assert result.reason in (
            DropReason.REPLY_TOO_LARGE,
            DropReason.CLIENT_HELLO_REFUSED,
            DropReason.CLIENT_HELLO_MALFORMED,
        )


def _real_hello(**kwargs: object) -> bytes:
    client = Dtls13ClientConnection(client_config(**kwargs), SERVER)  # type: ignore[arg-type]
    client.connect(NOW)
    ((datagram, _),) = client.datagrams_to_send()
    return datagram


REAL = [
    _real_hello(),
    _real_hello(groups=(NamedGroup.secp384r1, NamedGroup.x25519)),
    _real_hello(cipher_suites=(CipherSuite.TLS_AES_128_GCM_SHA256,)),
]


@settings(max_examples=300, deadline=None)
@given(st.sampled_from(REAL), st.integers(0, 400), st.binary(max_size=8), st.integers(0, 300))
def test_no_reply_exceeds_a_mutated_real_hello(
    hello: bytes, at: int, noise: bytes, cut: int
) -> None:
    data = bytearray(hello)
    data[at : at + len(noise)] = noise
    request = bytes(data[: len(data) - cut])
    result = GATE.receive(request, CLIENT, NOW)
    if isinstance(result, Reply):
        assert len(result.data) <= len(request)


def test_fragmented_hello_reply_within_its_fragments() -> None:
    client = Dtls13ClientConnection(
        client_config(groups=(NamedGroup.X25519MLKEM768,), mtu=400), SERVER
    )
    client.connect(NOW)
    fragments = [d for d, _ in client.datagrams_to_send()]
    gate = Gate(server_config(groups=(NamedGroup.X25519MLKEM768,)))
    results = [gate.receive(d, CLIENT, NOW) for d in fragments]
    reply = results[-1]
    assert isinstance(reply, Reply)
    assert len(reply.data) <= sum(map(len, fragments))
