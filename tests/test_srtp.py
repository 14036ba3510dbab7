"""DTLS-SRTP's use_srtp extension (RFC 5764 §4.1) in DTLS 1.2 and 1.3, on our own two ends: the
server picks its most preferred profile among the client's, both report it, and the keys
come from the exporter; no profile in common, or a side without srtp_profiles, completes
without one; the client refuses a ServerHello's use_srtp that is not one profile it offered
without an MKI. Against OpenSSL: test_interop_srtp.py."""

from __future__ import annotations

import pytest
from helpers import client_config, make_pair, make_pair13, pair, server_config
from hypothesis import given, settings
from hypothesis import strategies as st

from dtlsgate.errors import DecodeError, IllegalParameter, UsageError
from dtlsgate.wire.enums import SrtpProtectionProfile
from dtlsgate.wire.extensions import chosen_srtp_profile, decode_use_srtp, encode_use_srtp

P = SrtpProtectionProfile
DTLS12 = (0xFEFD,)


def negotiated(server: tuple[int, ...], client: tuple[int, ...]) -> tuple[object, object]:
    p = make_pair(
        server_config(srtp_profiles=server, dtls_versions=DTLS12),
        client_config(srtp_profiles=client, dtls_versions=DTLS12),
    )
    assert p.run() and p.server is not None
    assert p.client.info is not None and p.server.info is not None
    return p.client.info.srtp_profile, p.server.info.srtp_profile


def test_the_server_picks_its_most_preferred_profile_the_client_offered() -> None:
    ours = (P.SRTP_AEAD_AES_128_GCM, P.SRTP_AES128_CM_HMAC_SHA1_80)
    theirs = (P.SRTP_AES128_CM_HMAC_SHA1_80, P.SRTP_AEAD_AES_128_GCM)
    assert negotiated(ours, theirs) == (P.SRTP_AEAD_AES_128_GCM, P.SRTP_AEAD_AES_128_GCM)
    assert negotiated(ours[::-1], theirs) == (P.SRTP_AES128_CM_HMAC_SHA1_80,) * 2


@pytest.mark.parametrize(
    ("server", "client"),
    [
        ((P.SRTP_AEAD_AES_256_GCM,), (P.SRTP_AES128_CM_HMAC_SHA1_80,)),  # none in common
        ((), (P.SRTP_AES128_CM_HMAC_SHA1_80,)),  # the server takes no use_srtp
        ((P.SRTP_AES128_CM_HMAC_SHA1_80,), ()),  # the client offers none
    ],
)
def test_without_a_profile_in_common_the_handshake_completes_without_srtp(
    server: tuple[int, ...], client: tuple[int, ...]
) -> None:
    """RFC 5764 §4.1.1: no shared profile, no use_srtp in the ServerHello."""
    assert negotiated(server, client) == (None, None)


def test_the_client_refuses_a_server_use_srtp_it_cannot_take() -> None:
    offered = (P.SRTP_AES128_CM_HMAC_SHA1_80, P.SRTP_AEAD_AES_128_GCM)
    assert chosen_srtp_profile(None, offered) is None
    assert chosen_srtp_profile(encode_use_srtp((7,)), offered) == 7
    for bad in (
        encode_use_srtp((8,)),  # not offered
        encode_use_srtp((1, 7)),  # two profiles
        encode_use_srtp((1,), b"mki"),  # an MKI we did not send
    ):
        with pytest.raises(IllegalParameter):
            chosen_srtp_profile(bad, offered)


def test_use_srtp_codec() -> None:
    data = encode_use_srtp((1, 7), b"\x01")
    assert data == bytes.fromhex("0004 0001 0007 01 01")
    assert decode_use_srtp(data) == ((1, 7), b"\x01")


def test_srtp_profiles_are_checked_in_the_configs() -> None:
    assert client_config(srtp_profiles=(1, 7)).srtp_profiles == (
        P.SRTP_AES128_CM_HMAC_SHA1_80,
        P.SRTP_AEAD_AES_128_GCM,
    )
    for profiles in ((3,), (1, 1), ("SRTP_AES128_CM_HMAC_SHA1_80",)):
        with pytest.raises(UsageError):
            server_config(srtp_profiles=profiles)
        with pytest.raises(UsageError):
            client_config(srtp_profiles=profiles)


def negotiated13(server: tuple[int, ...], client: tuple[int, ...]) -> tuple[object, object]:
    p = make_pair13(
        server_config(srtp_profiles=server), client_config(srtp_profiles=client), gated=True
    )
    assert p.run() and p.server is not None
    assert p.client.info is not None and p.server.info is not None
    assert p.client.info.version == p.server.info.version == 0xFEFC
    return p.client.info.srtp_profile, p.server.info.srtp_profile


def test_dtls13_negotiates_use_srtp_in_the_encrypted_extensions() -> None:
    """DTLS 1.3 (RFC 8446 §4.2: use_srtp in the ClientHello and EncryptedExtensions): the
    same rule as DTLS 1.2, through the gate's stateless HelloRetryRequest."""
    ours = (P.SRTP_AEAD_AES_128_GCM, P.SRTP_AES128_CM_HMAC_SHA1_80)
    theirs = (P.SRTP_AES128_CM_HMAC_SHA1_80, P.SRTP_AEAD_AES_128_GCM)
    assert negotiated13(ours, theirs) == (P.SRTP_AEAD_AES_128_GCM,) * 2
    assert negotiated13((P.SRTP_AEAD_AES_256_GCM,), theirs) == (None, None)
    assert negotiated13((), theirs) == (None, None)


def test_tls13_over_tcp_ignores_use_srtp() -> None:
    """SRTP needs datagrams: a TLS 1.3 client does not offer use_srtp, nor does a server
    answer one."""
    client, server = pair(
        server_config(srtp_profiles=(P.SRTP_AES128_CM_HMAC_SHA1_80,)),
        client_config(srtp_profiles=(P.SRTP_AES128_CM_HMAC_SHA1_80,)),
    )
    assert client.info is not None and server.info is not None
    assert client.info.srtp_profile is None and server.info.srtp_profile is None


@settings(max_examples=300, deadline=None)
@given(st.binary(max_size=40))
def test_a_use_srtp_from_the_network_decodes_or_is_a_decode_error(data: bytes) -> None:
    """Whatever a peer sends as use_srtp: its profiles and MKI (which encode back to the
    same bytes), or DecodeError; nothing else escapes."""
    try:
        profiles, mki = decode_use_srtp(data)
    except DecodeError:
        return
    assert encode_use_srtp(profiles, mki) == data
