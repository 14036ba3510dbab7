"""TLS 1.2 handshake message codecs: round trips, no proper prefix decodes, bounds."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from dtlsgate.errors import DecodeError, IllegalParameter, ProtocolError, UsageError
from dtlsgate.wire.messages12 import (
    Certificate12,
    CertificateRequest12,
    CertificateVerify12,
    ClientKeyExchange,
    EcdhParams,
    Finished,
    HelloRequest,
    KeyExchangeKind,
    ServerHelloDone,
    ServerKeyExchange,
    ecdhe_server_key_exchange,
    encode_ecdh_params,
)

K = KeyExchangeKind
blobs = st.binary(min_size=1, max_size=80)
schemes = st.integers(0, 0xFFFF)
params = st.builds(EcdhParams, st.integers(0, 0xFFFF), st.binary(min_size=1, max_size=97))

MESSAGES = st.one_of(
    st.builds(Certificate12, st.lists(blobs, max_size=4).map(tuple)),
    st.builds(CertificateVerify12, schemes, blobs),
    st.builds(
        CertificateRequest12,
        st.binary(min_size=1, max_size=4),
        st.lists(schemes, min_size=1, max_size=5).map(tuple),
        st.lists(blobs, max_size=3).map(tuple),
    ),
    st.builds(Finished, st.binary(min_size=12, max_size=12)),
)


def decode_like(message: object, body: bytes) -> object:
    return type(message).decode(body)  # type: ignore[attr-defined]


@given(MESSAGES)
def test_round_trip_and_no_proper_prefix_decodes(message: object) -> None:
    body = message.encode()  # type: ignore[attr-defined]
    assert decode_like(message, body) == message
    for cut in range(len(body)):
        with pytest.raises(ProtocolError):
            decode_like(message, body[:cut])
    with pytest.raises(DecodeError):
        decode_like(message, body + b"\x00")


@given(params, schemes, blobs, st.binary(max_size=40))
def test_key_exchange_round_trips(p: EcdhParams, scheme: int, sig: bytes, hint: bytes) -> None:
    cases = [
        (ServerKeyExchange(K.ECDHE, p, scheme, sig), K.ECDHE),
        (ServerKeyExchange(K.PSK, psk_identity_hint=hint), K.PSK),
        (ServerKeyExchange(K.ECDHE_PSK, p, psk_identity_hint=hint), K.ECDHE_PSK),
        (ClientKeyExchange(K.ECDHE, p.public), K.ECDHE),
        (ClientKeyExchange(K.PSK, psk_identity=hint), K.PSK),
        (ClientKeyExchange(K.ECDHE_PSK, p.public, hint), K.ECDHE_PSK),
    ]
    for message, kind in cases:
        body = message.encode()
        assert type(message).decode(body, kind) == message
        with pytest.raises(DecodeError):
            type(message).decode(body + b"\x01", kind)


def test_empty_messages_reject_content() -> None:
    assert ServerHelloDone.decode(b"") == ServerHelloDone()
    assert HelloRequest.decode(b"") == HelloRequest()
    with pytest.raises(DecodeError):
        ServerHelloDone.decode(b"\x00")
    with pytest.raises(DecodeError):
        Finished.decode(bytes(11))


def test_explicit_curves_are_refused() -> None:
    body = bytes([1]) + bytes(10)
    with pytest.raises(IllegalParameter):
        ServerKeyExchange.decode(body, K.ECDHE)


def test_empty_certificate_entry_is_a_decode_error() -> None:
    # certificate_list of one ASN.1Cert<1..2^24-1> with length 0.
    with pytest.raises(DecodeError):
        Certificate12.decode(b"\x00\x00\x03\x00\x00\x00")


def test_server_key_exchange_encoder_refuses_missing_fields_as_misuse() -> None:
    # Our own encoder given an incomplete message is a programming error (UsageError), not
    # a peer's malformed message (DecodeError, which maps to a decode_error alert).
    params = EcdhParams(23, b"\x04" + b"\x11" * 64)
    for message in (
        ServerKeyExchange(K.ECDHE),
        ServerKeyExchange(K.ECDHE_PSK),
        ServerKeyExchange(K.ECDHE, params),
    ):
        with pytest.raises(UsageError):
            message.encode()
    assert ServerKeyExchange(K.ECDHE_PSK, params).encode()


def test_ecdhe_server_key_exchange_from_encoded_params() -> None:
    # The server's one encoding of its parameters, signed and then carried as they are.
    params = EcdhParams(23, b"\x04" + b"\x11" * 64)
    body = ecdhe_server_key_exchange(encode_ecdh_params(23, params.public), 0x0403, b"sig")
    assert body == bytes((3, 0, 23, 65)) + params.public + bytes((4, 3, 0, 3)) + b"sig"
    assert ServerKeyExchange.decode(body, K.ECDHE) == ServerKeyExchange(
        K.ECDHE, params, 0x0403, b"sig"
    )
    for bad in (b"", b"\x00" * 0x10000):  # RFC 8422 §5.4: signature<1..2^16-1>
        with pytest.raises(UsageError):
            ecdhe_server_key_exchange(params.encode(), 0x0403, bad)
