"""Certificate compression (issue 13 item 5, RFC 8879) with zlib, both directions: the
server compresses its Certificate when the client's ClientHello asks, the client its own when
the CertificateRequest asks (in the handshake and after it), and every CompressedCertificate
is inflated within a bound: past it, or past its own uncompressed_length, is bad_certificate;
an algorithm we did not advertise is illegal_parameter."""

from __future__ import annotations

import contextlib
import zlib
from collections.abc import Iterator
from typing import Any

import pytest
from helpers import NOW, client_config, credentials, events, pair, server_config
from tls13_hostile import inject

from dtlsgate.connection.stream import ClientConnection, ServerConnection, TlsConnection
from dtlsgate.crypto.certs import load_identity
from dtlsgate.errors import BadCertificate, ProtocolError, UsageError
from dtlsgate.events import ClientCertificateReceived
from dtlsgate.handshake.tls13.common import message
from dtlsgate.record.tls13 import MAX_HANDSHAKE_MESSAGE
from dtlsgate.wire.cert_compression import (
    MAX_UNCOMPRESSED_CERTIFICATE,
    CompressedCertificate,
    available_algorithms,
    compress_certificate,
    decompress_certificate,
)
from dtlsgate.wire.enums import AlertDescription, HandshakeType
from dtlsgate.wire.messages import ClientHello

_A = AlertDescription
ZLIB = 1


def test_the_default_client_hello_does_not_offer_compression() -> None:
    client = ClientConnection(client_config())
    client.start()
    hello = ClientHello.decode(client.data_to_send()[9:], dtls=False)
    assert hello.get(27) is None
    client = ClientConnection(client_config(certificate_compression=("zlib",)))
    client.start()
    hello = ClientHello.decode(client.data_to_send()[9:], dtls=False)
    assert hello.get(27) == b"\x02\x00\x01"


@contextlib.contextmanager
def received(side: type[TlsConnection]) -> Iterator[list[tuple[int, bytes]]]:
    """The (type, body) of each handshake message connections of class ``side`` take in:
    a spy on the connection's one entry point for whole messages (records are encrypted)."""
    from dtlsgate.connection import stream

    captured: list[tuple[int, bytes]] = []
    original = stream.TlsConnection._on_message

    def spy(self: Any, msg_type: int, body: bytes, raw: bytes, now: float) -> None:
        if isinstance(self, side):
            captured.append((msg_type, body))
        original(self, msg_type, body, raw, now)

    stream.TlsConnection._on_message = spy  # type: ignore[method-assign]
    try:
        yield captured
    finally:
        stream.TlsConnection._on_message = original  # type: ignore[method-assign]


CERTIFICATE_TYPES = (HandshakeType.CERTIFICATE, HandshakeType.COMPRESSED_CERTIFICATE)


def server_certificate_message(ccfg: Any) -> tuple[int, bytes]:
    """The type and body of the certificate message our server sends to ``ccfg``'s hello."""
    with received(ClientConnection) as captured:
        client, _ = pair(server_config("rsa-2048"), ccfg)
    assert client.handshake_complete
    return next((t, b) for t, b in captured if t in CERTIFICATE_TYPES)


def test_the_server_compresses_when_the_client_asks() -> None:
    kind, body = server_certificate_message(
        client_config("rsa-2048", certificate_compression=("zlib",))
    )
    assert kind == HandshakeType.COMPRESSED_CERTIFICATE
    wrapped = CompressedCertificate.decode(body)
    assert wrapped.algorithm == ZLIB and len(wrapped.compressed) < wrapped.uncompressed_length
    kind, _ = server_certificate_message(client_config("rsa-2048"))
    assert kind == HandshakeType.CERTIFICATE


@pytest.mark.parametrize("after_handshake", [False, True])
def test_the_client_compresses_when_the_request_asks(after_handshake: bool) -> None:
    ident = load_identity(*credentials("rsa-2048"))
    ccfg = client_config(
        certificate_chain=list(ident.chain),
        private_key=ident.private_key,
        post_handshake_auth=after_handshake,
    )
    ca = credentials("rsa-2048")[0]
    extra: dict[str, Any] = {} if after_handshake else {"verify_client": "required"}
    scfg = server_config(cafile=ca, certificate_compression=("zlib",), **extra)
    with received(ServerConnection) as captured:
        client, server = pair(scfg, ccfg)
        if after_handshake:
            events(server)
            server.request_client_certificate()
            client.receive_data(server.data_to_send(), NOW)
            server.receive_data(client.data_to_send(), NOW)
            assert events(server) == [ClientCertificateReceived(ident.chain_der)]
    kinds = [t for t, _ in captured if t in CERTIFICATE_TYPES]
    assert kinds == [HandshakeType.COMPRESSED_CERTIFICATE]
    assert server.info is not None and server.info.peer_certificates == (
        () if after_handshake else ident.chain_der
    )


def certificate_body() -> bytes:
    from dtlsgate.wire.messages13 import Certificate, CertificateEntry

    chain = load_identity(*credentials("rsa-2048")).chain_der
    return Certificate(b"", tuple(CertificateEntry(d) for d in chain)).encode()


def test_round_trip_and_the_bound() -> None:
    assert MAX_UNCOMPRESSED_CERTIFICATE == MAX_HANDSHAKE_MESSAGE
    assert available_algorithms()[0] == ZLIB
    body = certificate_body()
    wrapped = compress_certificate(ZLIB, body)
    assert CompressedCertificate.decode(wrapped.encode()) == wrapped
    assert decompress_certificate(wrapped) == body


BOMB = zlib.compress(bytes(MAX_UNCOMPRESSED_CERTIFICATE * 4), 9)  # 1 MiB of zeros, ~1 KB

HOSTILE = {
    # Claims a length over our bound: refused before inflating.
    "length_over_bound": CompressedCertificate(ZLIB, MAX_UNCOMPRESSED_CERTIFICATE + 1, BOMB),
    # Claims a small length; the data inflate far past it: stopped at the claim.
    "inflates_past_length": CompressedCertificate(ZLIB, 1000, BOMB),
    # Inflates to less than claimed.
    "inflates_short": CompressedCertificate(ZLIB, 5000, zlib.compress(bytes(100))),
    "not_zlib": CompressedCertificate(ZLIB, 100, b"\x00" * 50),
    "trailing_bytes": CompressedCertificate(ZLIB, 100, zlib.compress(bytes(100)) + b"x"),
    "truncated": CompressedCertificate(ZLIB, 100, zlib.compress(bytes(100))[:-3]),
}


@pytest.mark.parametrize("name", list(HOSTILE))
def test_hostile_compressed_data_is_bad_certificate(name: str) -> None:
    with pytest.raises(BadCertificate) as info:
        decompress_certificate(HOSTILE[name])
    assert info.value.alert == _A.bad_certificate


def client_waiting_for_certificate(compression: tuple[str, ...]) -> ClientConnection:
    """A client (offering ``compression``) right after the server's EncryptedExtensions."""
    ccfg = client_config(certificate_compression=compression)
    client, server = ClientConnection(ccfg), ServerConnection(server_config())
    client.start(NOW)
    server.receive_data(client.data_to_send(), NOW)
    flight = server.data_to_send()
    # ServerHello record (and CCS) only: stop before the encrypted flight.
    records = []
    while flight:
        n = 5 + int.from_bytes(flight[3:5], "big")
        records.append(flight[:n])
        flight = flight[n:]
    for record in records:
        client.receive_data(record, NOW)
        if client.state_name == "WaitCertificateOrRequest":
            return client
    raise AssertionError(client.state_name)


@pytest.mark.parametrize("name", list(HOSTILE))
def test_a_hostile_compressed_certificate_gets_bad_certificate(name: str) -> None:
    """Through the connection: the alert sent is bad_certificate, the connection closed,
    and no more than the bound was ever inflated (the bomb is 1 MiB)."""
    client = client_waiting_for_certificate(("zlib",))
    msg = message(HandshakeType.COMPRESSED_CERTIFICATE, HOSTILE[name].encode())
    with pytest.raises(ProtocolError) as info:
        client.receive_data(inject(client, 22, msg), NOW)
    assert info.value.alert == _A.bad_certificate and client.closed


def test_an_algorithm_we_did_not_advertise_is_illegal_parameter() -> None:
    client = client_waiting_for_certificate(("zlib",))
    wrapped = CompressedCertificate(2, 10, b"x")  # brotli: not offered
    msg = message(HandshakeType.COMPRESSED_CERTIFICATE, wrapped.encode())
    with pytest.raises(ProtocolError) as info:
        client.receive_data(inject(client, 22, msg), NOW)
    assert info.value.alert == _A.illegal_parameter


def test_unknown_or_unavailable_names_are_usage_errors() -> None:
    with pytest.raises(UsageError, match="valid: zlib, brotli, zstd"):
        client_config(certificate_compression=("gzip",))
    with pytest.raises(UsageError):
        server_config(certificate_compression=("zlib", "zlib"))
