"""TLS 1.3 handshakes in memory: RFC 8448 §3 byte for byte where it applies, every suite,
group and certificate type, HRR, ALPN, SNI, KeyUpdate, close_notify, and the alerts sent
for bad input."""

from __future__ import annotations

import dataclasses

import pytest
import rfc8448 as v
from helpers import NOW, client_config, credentials, events, pair, pump, server_config

from dtlsgate.connection.stream import ClientConnection, ServerConnection
from dtlsgate.crypto.aead import Aead, AeadAlgorithm
from dtlsgate.crypto.certs import load_identity
from dtlsgate.crypto.kex import KeyShare
from dtlsgate.crypto.provider import DefaultProvider
from dtlsgate.errors import AlertReceived, ProtocolError, StateError, UsageError
from dtlsgate.events import ConnectionClosed, DataReceived, HandshakeCompleted
from dtlsgate.handshake.tls13.client import WaitServerHello
from dtlsgate.record.tls13 import RecordProtection
from dtlsgate.wire.enums import (
    AlertDescription,
    CipherSuite,
    ExtensionType,
    NamedGroup,
    ProtocolVersion,
    SignatureScheme,
)
from dtlsgate.wire.extensions import (
    Extension,
    OfferedPsks,
    PskIdentity,
    encode_pre_shared_key_ch,
)
from dtlsgate.wire.messages import ClientHello, ServerHello
from dtlsgate.wire.messages13 import EncryptedExtensions

RFC8448_TIME = 1538000000.0  # inside the trace certificate's validity (2016-2026)


def test_rfc8448_client_produces_the_trace_finished_and_application_data() -> None:
    # The client state right after sending the trace's ClientHello with the trace's key.
    cfg = client_config(insecure=True, server_name=None, middlebox_compat=False)
    client = ClientConnection(cfg)
    hello = ClientHello.decode(v.CLIENT_HELLO[4:], dtls=False)
    share = KeyShare.from_private_bytes(NamedGroup.x25519, v.CLIENT_PRIVATE)
    client._state = WaitServerHello(hello, v.CLIENT_HELLO, {NamedGroup.x25519: share})
    client.receive_data(v.SERVER_HELLO_RECORD + v.SERVER_FLIGHT_RECORD, RFC8448_TIME)
    # Byte for byte: the client Finished record of RFC 8448 §3.
    assert client.data_to_send() == v.CLIENT_FINISHED_RECORD
    (done,) = events(client)
    assert isinstance(done, HandshakeCompleted)
    assert done.cipher_suite == CipherSuite.TLS_AES_128_GCM_SHA256
    client.send(v.APPLICATION_DATA)
    assert client.data_to_send() == v.CLIENT_APP_RECORD


class TraceServerProvider(DefaultProvider):
    """Gives the server the trace's random and x25519 key."""

    def random(self, n: int) -> bytes:
        return v.SERVER_RANDOM[:n]

    def generate_key_share(self, group: NamedGroup) -> KeyShare:
        return KeyShare.from_private_bytes(group, v.SERVER_PRIVATE)


def test_rfc8448_server_hello_and_handshake_keys() -> None:
    server = ServerConnection(server_config(provider=TraceServerProvider()))
    server.receive_data(v.CLIENT_HELLO_RECORD, RFC8448_TIME)
    out = server.data_to_send()
    # Byte for byte: the ServerHello record of RFC 8448 §3 (no CCS: empty session id).
    assert out[: len(v.SERVER_HELLO_RECORD)] == v.SERVER_HELLO_RECORD
    # The rest is protected with the trace's server handshake key and IV.
    rest = out[len(v.SERVER_HELLO_RECORD) :]
    length = int.from_bytes(rest[3:5], "big")
    reader = RecordProtection(Aead(AeadAlgorithm.AES_128_GCM, v.SERVER_HS_KEY), v.SERVER_HS_IV)
    content_type, flight = reader.open(rest[:5], rest[5 : 5 + length])
    assert content_type == 22 and flight[0] == 8
    ee = EncryptedExtensions.decode(flight[4 : 4 + int.from_bytes(flight[1:4], "big")])
    assert ee.get(0) == b"" and ee.get(28) == b"\x40\x01"


@pytest.mark.parametrize("suite", list(CipherSuite)[:3])
@pytest.mark.parametrize("group", [NamedGroup.x25519, NamedGroup.secp256r1, NamedGroup.secp384r1])
def test_suites_and_groups(suite: CipherSuite, group: NamedGroup) -> None:
    client, server = pair(server_config(), client_config(cipher_suites=(suite,), groups=(group,)))
    assert client.info is not None and server.info is not None
    assert (client.info.cipher_suite, client.info.group) == (suite, group)
    assert not client.info.hello_retry
    client.send(b"ping")
    pump(client, server)
    server.send(b"pong")
    pump(client, server)
    assert [e for e in events(server) if isinstance(e, DataReceived)] == [DataReceived(b"ping")]
    assert [e for e in events(client) if isinstance(e, DataReceived)] == [DataReceived(b"pong")]


@pytest.mark.parametrize("key_type", ["ecdsa-p256", "rsa-2048", "ed25519"])
def test_certificate_types(key_type: str) -> None:
    client, _ = pair(server_config(key_type), client_config(key_type))
    assert client.info is not None
    expected = {"ecdsa-p256": 0x0403, "rsa-2048": 0x0804, "ed25519": 0x0807}[key_type]
    assert client.info.signature_scheme == expected


def test_hello_retry_request_when_the_share_is_for_a_later_group() -> None:
    cfg = client_config(groups=(NamedGroup.secp256r1, NamedGroup.x25519))
    client, server = pair(server_config(), cfg)
    assert client.info is not None and client.info.hello_retry
    assert client.info.group == NamedGroup.x25519
    assert server.info is not None and server.info.hello_retry


def test_alpn_and_sni() -> None:
    client, server = pair(
        server_config(alpn_protocols=(b"h2", b"http/1.1")),
        client_config(alpn_protocols=(b"http/1.1",)),
    )
    assert client.info is not None and server.info is not None
    assert client.info.alpn_protocol == b"http/1.1" == server.info.alpn_protocol
    assert server.info.server_name == "localhost"


def test_a_client_config_edited_after_use_takes_effect() -> None:
    # The client's context is prepared once per config (its ClientHello's extensions
    # with it): a field assigned after a connection takes effect in the next one.
    server = server_config(alpn_protocols=(b"h2", b"http/1.1"))
    config = client_config(alpn_protocols=(b"http/1.1",))
    client, _ = pair(server, config)
    assert client.info is not None and client.info.alpn_protocol == b"http/1.1"
    config.alpn_protocols = (b"h2",)
    config.groups = (NamedGroup.secp256r1,)
    client, _ = pair(server, config)
    assert client.info is not None and client.info.alpn_protocol == b"h2"
    assert client.info.group == NamedGroup.secp256r1


def test_handshake_completed_reports_every_field_as_negotiated() -> None:
    # Each field of the event against what was negotiated, with values that differ where
    # they can (a HelloRetryRequest, ALPN, SNI, the client's certificates): the event is
    # made from the engine's report field by field.
    cfg = client_config(
        groups=(NamedGroup.secp256r1, NamedGroup.x25519), alpn_protocols=(b"http/1.1",)
    )
    client, server = pair(server_config(alpn_protocols=(b"http/1.1",)), cfg)
    assert client.info is not None
    expected = HandshakeCompleted(
        version=ProtocolVersion.TLS13,
        cipher_suite=CipherSuite.TLS_AES_128_GCM_SHA256,
        alpn_protocol=b"http/1.1",
        server_name="localhost",
        peer_certificates=(),
        psk_identity=None,
        group=NamedGroup.x25519,
        signature_scheme=SignatureScheme.ecdsa_secp256r1_sha256,
        extended_master_secret=True,
        hello_retry=True,
        resumed=False,
        peer_raw_public_key=None,
    )
    assert server.info == expected
    assert client.info == dataclasses.replace(
        expected, peer_certificates=client.info.peer_certificates
    )
    assert len(client.info.peer_certificates) == 1


def test_no_common_alpn_is_no_application_protocol() -> None:
    client = ClientConnection(client_config(alpn_protocols=(b"x",)))
    server = ServerConnection(server_config(alpn_protocols=(b"h2",)))
    client.start()
    with pytest.raises(ProtocolError) as info:
        server.receive_data(client.data_to_send(), NOW)
    assert info.value.alert == AlertDescription.no_application_protocol
    with pytest.raises(AlertReceived) as got:
        client.receive_data(server.data_to_send(), NOW)
    assert got.value.description == AlertDescription.no_application_protocol


def test_key_update_both_ways_and_close_notify() -> None:
    client, server = pair()
    events(client), events(server)
    client.key_update(request_peer=True)
    pump(client, server)
    client.send(b"a")
    server.send(b"b")
    pump(client, server)
    assert events(server) == [DataReceived(b"a")]
    assert events(client) == [DataReceived(b"b")]
    client.close()
    pump(client, server)
    assert events(server) == [ConnectionClosed()]
    with pytest.raises(StateError):
        client.send(b"late")


def test_wrong_host_name_is_bad_certificate() -> None:
    client = ClientConnection(client_config(server_name="example.com"))
    server = ServerConnection(server_config())
    client.start()
    server.receive_data(client.data_to_send(), NOW)
    with pytest.raises(ProtocolError) as info:
        client.receive_data(server.data_to_send(), NOW)
    assert info.value.alert == AlertDescription.bad_certificate


def test_tampered_finished_is_decrypt_error_or_bad_record_mac() -> None:
    client = ClientConnection(client_config())
    server = ServerConnection(server_config())
    client.start()
    server.receive_data(client.data_to_send(), NOW)
    flight = bytearray(server.data_to_send())
    flight[-3] ^= 1
    with pytest.raises(ProtocolError) as info:
        client.receive_data(bytes(flight), NOW)
    assert info.value.alert == AlertDescription.bad_record_mac


def test_application_data_before_handshake_is_unexpected() -> None:
    server = ServerConnection(server_config())
    with pytest.raises(ProtocolError) as info:
        server.receive_data(bytes((23, 3, 3, 0, 1, 0)), NOW)
    assert info.value.alert == AlertDescription.unexpected_message
    # The alert went out before the error was raised, in the clear.
    assert server.data_to_send() == bytes((21, 3, 3, 0, 2, 2, 10))


def test_message_out_of_order_is_unexpected_message() -> None:
    server = ServerConnection(server_config())
    with pytest.raises(ProtocolError) as info:
        server.receive_data(bytes((22, 3, 3, 0, 5, 20, 0, 0, 1, 0)), NOW)
    assert info.value.alert == AlertDescription.unexpected_message


def test_tls12_only_client_hello_is_protocol_version() -> None:
    hello = ClientHello(0x0303, bytes(32), b"", (0xC02B,), b"\x00", ())
    record = bytes((22, 3, 1)) + (len(hello.encode()) + 4).to_bytes(2, "big")
    record += bytes((1,)) + len(hello.encode()).to_bytes(3, "big") + hello.encode()
    server = ServerConnection(server_config())
    with pytest.raises(ProtocolError) as info:
        server.receive_data(record, NOW)
    assert info.value.alert == AlertDescription.protocol_version


def _changed_client_hello(**changes: object) -> bytes:
    """Our client's ClientHello record with ``changes`` made to the ClientHello."""
    client = ClientConnection(client_config())
    client.start()
    hello = ClientHello.decode(client.data_to_send()[9:], dtls=False)
    body = dataclasses.replace(hello, **changes).encode()  # type: ignore[arg-type]
    record = bytes((22, 3, 1)) + (len(body) + 4).to_bytes(2, "big")
    return record + bytes((1,)) + len(body).to_bytes(3, "big") + body


def _with_psk_first() -> bytes:
    client = ClientConnection(client_config())
    client.start()
    hello = ClientHello.decode(client.data_to_send()[9:], dtls=False)
    assert hello.extensions is not None
    offer = OfferedPsks((PskIdentity(b"identity", 0),), (bytes(32),))
    psk = Extension(ExtensionType.pre_shared_key, encode_pre_shared_key_ch(offer))
    return _changed_client_hello(extensions=(psk, *hello.extensions))


@pytest.mark.parametrize(
    ("record", "alert"),
    [
        # RFC 8446 §4.1.2: legacy_compression_methods is exactly one null byte.
        (
            _changed_client_hello(compression_methods=b"\x01\x00"),
            AlertDescription.illegal_parameter,
        ),
        # RFC 8446 §4.2.11: pre_shared_key is the last extension.
        (_with_psk_first(), AlertDescription.illegal_parameter),
        # RFC 8446 §4.1.2, §4.2.1: no extensions block, no supported_versions: TLS 1.2 at most.
        (_changed_client_hello(extensions=None), AlertDescription.protocol_version),
    ],
    ids=["compression", "psk-not-last", "no-extensions"],
)
def test_client_hello_breaking_a_tls13_rule_is_refused(record: bytes, alert: int) -> None:
    server = ServerConnection(server_config())
    with pytest.raises(ProtocolError) as info:
        server.receive_data(record, NOW)
    assert info.value.alert == alert


def test_byte_by_byte_delivery() -> None:
    client = ClientConnection(client_config())
    server = ServerConnection(server_config())
    client.start()
    for b in client.data_to_send():
        server.receive_data(bytes((b,)), NOW)
    for b in server.data_to_send():
        client.receive_data(bytes((b,)), NOW)
    server.receive_data(client.data_to_send(), NOW)
    assert client.handshake_complete and server.handshake_complete


def test_client_certificate_required_and_given() -> None:
    ident = load_identity(*credentials("ed25519"))
    cafile = credentials("ed25519")[0]
    _, server = pair(
        server_config(verify_client="required", cafile=cafile),
        client_config(certificate_chain=list(ident.chain), private_key=ident.private_key),
    )
    assert server.info is not None and len(server.info.peer_certificates) == 1


@pytest.mark.parametrize("mode", ["required", "optional"])
def test_client_verification_without_trust_anchors_is_refused(mode: str) -> None:
    # A server that asks for client certificates but has no CA to check them against
    # would accept any certificate: the config is refused instead.
    with pytest.raises(UsageError, match="cafile"):
        server_config(verify_client=mode)


def test_client_certificate_from_an_untrusted_ca_is_refused() -> None:
    ident = load_identity(*credentials("ed25519"))
    client = ClientConnection(
        client_config(certificate_chain=list(ident.chain), private_key=ident.private_key)
    )
    # Trust anchors that did not issue the client's certificate.
    server = ServerConnection(
        server_config(verify_client="required", cafile=credentials("ecdsa-p256")[0])
    )
    client.start()
    server.receive_data(client.data_to_send(), NOW)
    client.receive_data(server.data_to_send(), NOW)
    with pytest.raises(ProtocolError) as info:
        server.receive_data(client.data_to_send(), NOW)
    assert info.value.alert in (AlertDescription.bad_certificate, AlertDescription.unknown_ca)


def test_client_certificate_required_and_missing() -> None:
    client = ClientConnection(client_config())
    cafile = credentials("ed25519")[0]
    server = ServerConnection(server_config(verify_client="required", cafile=cafile))
    client.start()
    server.receive_data(client.data_to_send(), NOW)
    client.receive_data(server.data_to_send(), NOW)
    with pytest.raises(ProtocolError) as info:
        server.receive_data(client.data_to_send(), NOW)
    assert info.value.alert == AlertDescription.certificate_required


def test_key_log_lines_match_on_both_sides() -> None:
    client_lines: list[str] = []
    server_lines: list[str] = []
    client = ClientConnection(client_config(), keylog=client_lines.append)
    server = ServerConnection(server_config(), keylog=server_lines.append)
    client.start()
    pump(client, server)
    assert client.handshake_complete and server.handshake_complete
    # NSS key log format: label, ClientHello random, secret; the same on both sides.
    assert sorted(client_lines) == sorted(server_lines)
    assert [line.split()[0] for line in client_lines] == [
        "CLIENT_HANDSHAKE_TRAFFIC_SECRET",
        "SERVER_HANDSHAKE_TRAFFIC_SECRET",
        "CLIENT_TRAFFIC_SECRET_0",
        "SERVER_TRAFFIC_SECRET_0",
        "EXPORTER_SECRET",
    ]
    assert {len(line.split()[1]) for line in client_lines} == {64}


def test_server_hellos_are_the_encoders() -> None:
    """Our ServerHellos, made from parts kept per shape and filled in per handshake, are
    byte for byte `server_hello`'s for each (version, suite, group and key share or none,
    session_id, selected PSK identity or none, connection ID or none), whichever shape
    came first; they decode to those fields."""
    from dtlsgate.handshake.tls13.common import DTLS_VERSIONS, TLS_VERSIONS
    from dtlsgate.handshake.tls13.server import ServerContext, server_hello
    from dtlsgate.wire.extensions import KeyShareEntry, decode_key_share_sh

    # (None, 32): a share without a group is not sent, as `server_hello` does not.
    shares = ((None, None), (None, 32), (NamedGroup.x25519, 32), (NamedGroup.secp256r1, 65))
    suites = (CipherSuite.TLS_AES_128_GCM_SHA256, CipherSuite.TLS_AES_256_GCM_SHA384)
    for versions in (TLS_VERSIONS, DTLS_VERSIONS):
        ctx = ServerContext(server_config(), versions=versions)
        shapes = [
            (suite, group, share_len, sid_len, psk_index, cid_len)
            for suite in suites
            for group, share_len in shares
            for sid_len in (0, 1, 32)
            for psk_index in (None, 0, 3)
            for cid_len in (None, 0, 8)
        ]
        for round_ in range(2):  # the second round reads the parts the first one made
            for n, (suite, group, share_len, sid_len, psk_index, cid_len) in enumerate(shapes):
                random = bytes([n + round_]) * 32
                sid = bytes([n + 1]) * sid_len
                share = None if share_len is None else bytes([n + 2]) * share_len
                cid = None if cid_len is None else bytes([n + 3]) * cid_len
                args = (random, sid, suite, group, share, psk_index, cid)
                got = ctx.server_hello(*args)
                assert got == server_hello(versions, *args), (round_, n)
                hello = ServerHello.decode(got[4:])
                assert (hello.random, hello.session_id, hello.cipher_suite) == (random, sid, suite)
                key_share = hello.get(ExtensionType.key_share)
                if share is None or group is None:
                    assert key_share is None
                else:
                    assert key_share is not None
                    assert decode_key_share_sh(key_share) == KeyShareEntry(group, share)
