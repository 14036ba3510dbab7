"""DTLS 1.2 failures: each with the alert we send, or the silent drop we expect."""

from __future__ import annotations

import dataclasses
from collections.abc import Callable

import pytest
from builders import client_hello, datagram, with_cookie
from helpers import (
    CLIENT,
    NOW,
    PSK,
    PSK_ID,
    SERVER,
    BadShareClient,
    alerts_in,
    client_config,
    credentials,
    data_events,
    make_pair,
    server_config,
)

from dtlsgate.connection.datagram import DtlsServerConnection
from dtlsgate.crypto.certs import load_certificate_chain, load_private_key
from dtlsgate.crypto.provider import DefaultProvider
from dtlsgate.errors import BadCertificate, HandshakeFailure, ProtocolError, ProtocolVersionError
from dtlsgate.events import ConnectionClosed
from dtlsgate.gate.datagram import Admit, Gate, Reply
from dtlsgate.wire.enums import (
    AlertDescription,
    CipherSuite,
    ContentType,
    ExtensionType,
    NamedGroup,
    ProtocolVersion,
    SignatureScheme,
)
from dtlsgate.wire.extensions import Extension, encode_u16_list_ext
from dtlsgate.wire.handshake import decode_dtls_handshake_fragments, encode_dtls_handshake
from dtlsgate.wire.record import encode_dtls_record, split_dtls_records


def admit(hello_kwargs: dict[str, object], config: object) -> Admit:
    gate = Gate(config)  # type: ignore[arg-type]
    first = datagram(client_hello(**hello_kwargs))  # type: ignore[arg-type]
    reply = gate.receive(first, CLIENT, NOW)
    assert isinstance(reply, Reply)
    cookie = reply.data[-21:]
    result = gate.receive(with_cookie(first, cookie), CLIENT, NOW)
    assert isinstance(result, Admit)
    return result


def test_dtls10_client_is_refused_with_protocol_version() -> None:
    config = server_config()
    conn = DtlsServerConnection(admit({"version": ProtocolVersion.DTLS10}, config), config)
    with pytest.raises(ProtocolVersionError):
        conn.start(NOW)
    assert alerts_in(conn.datagrams_to_send()) == [AlertDescription.protocol_version]
    assert conn.closed


def test_missing_extended_master_secret_is_a_handshake_failure() -> None:
    config = server_config()
    groups = Extension(ExtensionType.supported_groups, encode_u16_list_ext((29,)))
    conn = DtlsServerConnection(admit({"extensions": (groups,)}, config), config)
    with pytest.raises(HandshakeFailure):
        conn.start(NOW)
    assert alerts_in(conn.datagrams_to_send()) == [AlertDescription.handshake_failure]


def test_no_common_suite_is_a_handshake_failure() -> None:
    config = server_config()
    suites = (CipherSuite.TLS_PSK_WITH_AES_128_CCM_8,)
    conn = DtlsServerConnection(admit({"suites": suites}, config), config)
    with pytest.raises(HandshakeFailure):
        conn.start(NOW)


def test_untrusted_certificate_is_refused() -> None:
    other_ca = credentials("ed25519")[0].decode()
    pair = make_pair(server_config(), client_config(cafile=other_ca))
    with pytest.raises(BadCertificate) as info:
        pair.run()
    assert info.value.alert == AlertDescription.unknown_ca
    assert pair.client.closed


def test_wrong_host_name_is_refused() -> None:
    pair = make_pair(server_config(), client_config(server_name="example.com"))
    with pytest.raises(BadCertificate) as info:
        pair.run()
    assert info.value.alert == AlertDescription.bad_certificate


def test_wrong_psk_never_completes_and_its_records_are_dropped() -> None:
    server = server_config(None, psk={PSK_ID: PSK})
    client = client_config(psk=bytes(16), psk_identity=PSK_ID)
    pair = make_pair(server, client)
    pair.run(rounds=400)
    assert not pair.completed()
    assert pair.server is not None and pair.server.records_dropped >= 1
    # The client gives up after its last retransmission.
    assert any(isinstance(e, ConnectionClosed) and e.alert is None for e in pair.client_events)


def test_unknown_psk_identity_is_refused() -> None:
    server = server_config(None, psk={PSK_ID: PSK})
    client = client_config(psk=PSK, psk_identity=b"somebody else")
    pair = make_pair(server, client)
    with pytest.raises(Exception) as info:
        pair.run()
    assert getattr(info.value, "alert", None) == AlertDescription.unknown_psk_identity


def established() -> object:
    pair = make_pair(server_config(), client_config())
    pair.run()
    assert pair.completed()
    return pair


def test_tampered_and_replayed_records_are_dropped() -> None:
    pair = established()
    pair.client.send(b"genuine")  # type: ignore[attr-defined]
    ((record, _),) = pair.client.datagrams_to_send()  # type: ignore[attr-defined]
    server = pair.server  # type: ignore[attr-defined]
    tampered = record[:-1] + bytes([record[-1] ^ 0x80])
    server.receive(tampered, CLIENT, NOW)
    server.receive(record, CLIENT, NOW)
    server.receive(record, CLIENT, NOW)  # replay
    pair.drain()  # type: ignore[attr-defined]
    assert data_events(pair.server_events) == [b"genuine"]  # type: ignore[attr-defined]
    assert server.records_dropped == 2


def test_reordered_records_are_delivered_and_their_replays_dropped() -> None:
    pair = established()
    client, server = pair.client, pair.server  # type: ignore[attr-defined]
    records = []
    for i in range(3):
        client.send(b"%d" % i)
        ((record, _),) = client.datagrams_to_send()
        records.append(record)
    for record in [*reversed(records), *records]:
        server.receive(record, CLIENT, NOW)
    pair.drain()  # type: ignore[attr-defined]
    assert data_events(pair.server_events) == [b"2", b"1", b"0"]  # type: ignore[attr-defined]
    assert server.records_dropped == 3


def test_renegotiation_is_refused_with_a_warning() -> None:
    pair = established()
    client, server = pair.client, pair.server  # type: ignore[attr-defined]
    seq = server.reassembler.next_seq
    hello = encode_dtls_handshake(1, client_hello().encode(), seq)
    server.receive(client.record_layer.protect(22, hello, 1), CLIENT, NOW)
    assert alerts_in(server.datagrams_to_send(), client) == [AlertDescription.no_renegotiation]
    assert not server.closed
    server.send(b"still here")
    pair.run()  # type: ignore[attr-defined]
    assert data_events(pair.client_events) == [b"still here"]  # type: ignore[attr-defined]


def client_identity() -> dict[str, object]:
    cert, key = credentials("rsa-2048")
    return {
        "certificate_chain": load_certificate_chain(cert),
        "private_key": load_private_key(key),
    }


def test_client_certificate_is_requested_and_verified() -> None:
    cafile = credentials("rsa-2048")[0].decode()
    server = server_config(verify_client="required", cafile=cafile)
    pair = make_pair(server, client_config(**client_identity()))
    pair.run()
    assert pair.completed()
    assert pair.server is not None and pair.server.info is not None
    assert len(pair.server.info.peer_certificates) == 1


def test_required_client_certificate_missing_is_a_handshake_failure() -> None:
    cafile = credentials("rsa-2048")[0].decode()
    pair = make_pair(server_config(verify_client="required", cafile=cafile), client_config())
    with pytest.raises(HandshakeFailure):
        pair.run()


def test_alpn_sni_and_rsa_pkcs1() -> None:
    server = server_config(
        "rsa-2048",
        alpn_protocols=(b"coap",),
        signature_schemes=(0x0401,),  # rsa_pkcs1_sha256 only
    )
    client = client_config("rsa-2048", alpn_protocols=(b"h2", b"coap"))
    pair = make_pair(server, client)
    pair.run()
    assert pair.completed()
    assert pair.server is not None and pair.server.info is not None
    assert pair.server.info.alpn_protocol == b"coap"
    assert pair.server.info.server_name == "localhost"
    assert pair.client.info is not None and pair.client.info.alpn_protocol == b"coap"


def test_alpn_without_overlap_is_refused() -> None:
    server = server_config(alpn_protocols=(b"coap",))
    pair = make_pair(server, client_config(alpn_protocols=(b"h2",)))
    with pytest.raises(Exception) as info:
        pair.run()
    assert getattr(info.value, "alert", None) == AlertDescription.no_application_protocol


def test_send_before_handshake_is_a_state_error() -> None:
    from dtlsgate.errors import StateError

    pair = make_pair(server_config(), client_config())
    with pytest.raises(StateError):
        pair.client.send(b"too early")


def test_client_without_server_name_or_insecure_is_refused() -> None:
    from dtlsgate.connection.datagram import DtlsClientConnection
    from dtlsgate.errors import UsageError

    with pytest.raises(UsageError):
        DtlsClientConnection(dataclasses.replace(client_config(), server_name=None))


# The X.509 version field of a v3 certificate ([0] EXPLICIT INTEGER 2), and the same field
# saying v4, which no standard defines: cryptography raises x509.InvalidVersion for it, not
# a ValueError (found by fuzz/fuzz_tls13.py in a TLS 1.3 client).
X509_V3 = bytes.fromhex("a003020102")
X509_V4 = bytes.fromhex("a003020103")


@pytest.mark.parametrize("insecure", [False, True], ids=["verified", "insecure"])
def test_server_certificate_of_an_unknown_x509_version_is_bad_certificate(
    insecure: bool,
) -> None:
    client_kwargs: dict[str, object] = {"insecure": True} if insecure else {}
    pair = make_pair(server_config(), client_config(**client_kwargs))
    with pytest.raises(BadCertificate) as info:
        for _ in range(6):
            pair.to_server([d for d, _ in pair.client.datagrams_to_send()])
            for d, _ in pair.server.datagrams_to_send() if pair.server else []:
                if X509_V3 in d:
                    assert d.count(X509_V3) == 1
                    d = d.replace(X509_V3, X509_V4)
                pair.client.receive(d, None, pair.now)
    assert info.value.alert == AlertDescription.bad_certificate
    assert alerts_in(pair.client.datagrams_to_send()) == [AlertDescription.bad_certificate]


def test_client_certificate_of_an_unknown_x509_version_is_bad_certificate() -> None:
    cert, key = credentials("ecdsa-p256")
    server = server_config(verify_client="optional", cafile=cert.decode())
    client = client_config(
        certificate_chain=load_certificate_chain(cert), private_key=load_private_key(key)
    )
    pair = make_pair(server, client)
    pair.tamper = lambda d: d.replace(X509_V3, X509_V4)
    with pytest.raises(BadCertificate) as info:
        pair.run()
    assert info.value.alert == AlertDescription.bad_certificate
    assert pair.server is not None and pair.server.closed


def _certificate_verify_signed_with(scheme: int) -> Callable[[bytes], bytes]:
    """A ``DatagramPair.tamper`` that puts ``scheme`` in the CertificateVerify (a plaintext,
    epoch-0 message in DTLS 1.2) of each datagram, the signature left as it is."""

    def tamper(datagram: bytes) -> bytes:
        out = []
        for record in split_dtls_records(datagram):
            fragment = record.fragment
            if record.content_type == ContentType.HANDSHAKE and record.epoch == 0:
                # Each fragment as received, its 12-byte header first.
                fragment = b"".join(
                    part[:12] + scheme.to_bytes(2, "big") + part[14:]
                    if header.msg_type == 15 and header.fragment_offset == 0
                    else part
                    for header, part in decode_dtls_handshake_fragments(fragment)
                )
            out.append(
                encode_dtls_record(
                    record.content_type,
                    record.version,
                    record.epoch,
                    record.sequence_number,
                    fragment,
                )
            )
        return b"".join(out)

    return tamper


def test_certificate_verify_with_a_scheme_we_did_not_request_is_illegal_parameter() -> None:
    """RFC 5246 §7.4.8: the client signs its CertificateVerify with a scheme from our
    CertificateRequest (ecdsa_secp256r1_sha256 only here); another, even one its key could
    sign with (ecdsa_secp384r1_sha384), is illegal_parameter, before the signature is
    verified (which would have failed with decrypt_error)."""
    cert, key = credentials("ecdsa-p256")
    server = server_config(
        verify_client="required",
        cafile=cert.decode(),
        signature_schemes=(SignatureScheme.ecdsa_secp256r1_sha256,),
    )
    client = client_config(
        certificate_chain=load_certificate_chain(cert), private_key=load_private_key(key)
    )
    pair = make_pair(server, client)
    pair.tamper = _certificate_verify_signed_with(SignatureScheme.ecdsa_secp384r1_sha384)
    with pytest.raises(ProtocolError) as info:
        pair.run()
    assert info.value.alert == AlertDescription.illegal_parameter
    assert pair.server is not None and pair.server.closed
    assert alerts_in(pair.server.datagrams_to_send()) == [AlertDescription.illegal_parameter]


def test_malformed_handshake_record_in_an_authenticated_epoch_is_decode_error() -> None:
    """A handshake record of epoch 1 authenticated but not holding a handshake header is
    the peer's own fault (RFC 5246 §7.2.2): decode_error, where the same bytes in epoch 0
    are forgeable garbage and dropped."""
    pair = established()
    client, server = pair.client, pair.server  # type: ignore[attr-defined]
    server.receive(encode_dtls_record(22, 0xFEFD, 0, 90, b"\x14\x00\x00"), CLIENT, NOW)
    assert not server.closed and server.datagrams_to_send() == []
    with pytest.raises(ProtocolError) as info:
        server.receive(client.record_layer.protect(22, b"\x14\x00\x00", 1), CLIENT, NOW)
    assert info.value.alert == AlertDescription.decode_error
    assert server.closed
    assert alerts_in(server.datagrams_to_send(), client) == [AlertDescription.decode_error]


_P256_POINT = 1 + 2 * 32
BAD_CLIENT_POINTS = [
    (NamedGroup.secp256r1, b"\x04" + b"\x01" * 32 + b"\x02" * 32),  # not on the curve
    (NamedGroup.secp256r1, b"\x04" + bytes(_P256_POINT - 1)),  # (0, 0): not on the curve
    (NamedGroup.secp256r1, b"\x00"),  # the point at infinity (X9.62's one-byte form)
    (NamedGroup.secp256r1, b"\x03" + b"\x01" * (_P256_POINT - 1)),  # not uncompressed
    (NamedGroup.x25519, bytes(32)),  # u = 0: an all-zero shared secret (RFC 7748 §6)
    (NamedGroup.x25519, b"\x01" + bytes(31)),  # u = 1, of small order: the same
    (NamedGroup.x448, bytes(56)),
]


@pytest.mark.parametrize(("group", "value"), BAD_CLIENT_POINTS)
def test_bad_client_key_exchange_point_is_illegal_parameter(
    group: NamedGroup, value: bytes
) -> None:
    """RFC 8422 §5.11 and RFC 7748 §6: a ClientKeyExchange point off the curve, at
    infinity or giving an all-zero X25519/X448 secret ends the handshake with
    illegal_parameter, sent by a server on the default provider (its own key share made
    the way a deployed server makes it)."""
    pair = make_pair(
        server_config(groups=(group,), provider=DefaultProvider()),
        client_config(groups=(group,), provider=BadShareClient(value)),
    )
    sent: list[tuple[bytes, object]] = []
    raised: list[AlertDescription] = []
    for _ in range(8):
        try:
            pair.to_server([d for d, _ in pair.client.datagrams_to_send()])
        except ProtocolError as exc:
            raised.append(exc.alert)
        to_client = pair.server.datagrams_to_send() if pair.server is not None else []
        sent += to_client
        if raised:
            break
        for d, _ in to_client:
            pair.client.receive(d, SERVER, NOW)
    assert raised == [AlertDescription.illegal_parameter]
    assert alerts_in(sent) == [AlertDescription.illegal_parameter]


_GROUPS = Extension(ExtensionType.supported_groups, encode_u16_list_ext((NamedGroup.secp256r1,)))
_EMS = Extension(ExtensionType.extended_master_secret, b"")


@pytest.mark.parametrize(
    ("hello", "alert"),
    [
        # RFC 5246 §7.4.1.2: null compression must be offered (illegal_parameter).
        ({"compression_methods": b"\x01"}, AlertDescription.illegal_parameter),
        # RFC 5746 §3.6: renegotiated_connection empty on an initial handshake.
        (
            {
                "extensions": (
                    _GROUPS,
                    _EMS,
                    Extension(ExtensionType.renegotiation_info, b"\x01\x00"),
                )
            },
            AlertDescription.handshake_failure,
        ),
        # RFC 8422 §5.1.2: ec_point_formats must include uncompressed.
        (
            {"extensions": (_GROUPS, _EMS, Extension(ExtensionType.ec_point_formats, b"\x01\x01"))},
            AlertDescription.illegal_parameter,
        ),
        # No group of ours offered: no ECDHE suite can be chosen (RFC 8422 §5.1.1).
        (
            {
                "extensions": (
                    Extension(ExtensionType.supported_groups, encode_u16_list_ext((0x0100,))),
                    _EMS,
                )
            },
            AlertDescription.handshake_failure,
        ),
        # Only signature schemes we do not sign with (rsa_pkcs1_sha1, ecdsa_sha1).
        (
            {
                "extensions": (
                    _GROUPS,
                    _EMS,
                    Extension(
                        ExtensionType.signature_algorithms, encode_u16_list_ext((0x0201, 0x0203))
                    ),
                )
            },
            AlertDescription.handshake_failure,
        ),
    ],
    ids=["compression", "renegotiation-info", "point-formats", "no-group", "no-scheme"],
)
def test_client_hello_offers_refused_with_their_alert(
    hello: dict[str, object], alert: AlertDescription
) -> None:
    config = server_config()
    conn = DtlsServerConnection(admit(hello, config), config)
    with pytest.raises(ProtocolError) as info:
        conn.start(NOW)
    assert info.value.alert == alert
    assert alerts_in(conn.datagrams_to_send()) == [alert]
    assert conn.closed


def test_client_certificate_type_without_one_we_take_is_unsupported_certificate() -> None:
    """RFC 7250 §4.2: a server asking for X.509 client certificates and a client offering
    only raw public keys have no type in common: unsupported_certificate."""
    cafile = credentials("rsa-2048")[0].decode()
    config = server_config(verify_client="required", cafile=cafile)
    offer = Extension(ExtensionType.client_certificate_type, b"\x01\x02")  # RawPublicKey only
    conn = DtlsServerConnection(admit({"extensions": (_GROUPS, _EMS, offer)}, config), config)
    with pytest.raises(ProtocolError) as info:
        conn.start(NOW)
    assert info.value.alert == AlertDescription.unsupported_certificate
    assert alerts_in(conn.datagrams_to_send()) == [AlertDescription.unsupported_certificate]


@pytest.mark.parametrize(
    "versions", [b"\x02\xfe\xfd", b"\x03\xfe\xfd\x00"], ids=["offers-1.2-only", "malformed"]
)
def test_no_downgrade_sentinel_for_a_client_that_did_not_offer_dtls13(versions: bytes) -> None:
    """RFC 8446 §4.1.3 (RFC 9147 §5.3): a server that speaks DTLS 1.3 and negotiates 1.2
    marks its random only when the client offered 1.3; not when supported_versions offers
    1.2 only, nor when it is malformed (nothing was offered that the mark could protect)."""
    from dtlsgate.handshake.dtls12.server import DOWNGRADE_SENTINEL_12

    config = server_config()
    offer = Extension(ExtensionType.supported_versions, versions)
    conn = DtlsServerConnection(admit({"extensions": (_GROUPS, _EMS, offer)}, config), config)
    conn.start(NOW)
    first = conn.datagrams_to_send()[0][0]
    assert first[13] == 2  # a ServerHello
    random = first[13 + 12 + 2 : 13 + 12 + 34]
    assert not random.endswith(DOWNGRADE_SENTINEL_12)
