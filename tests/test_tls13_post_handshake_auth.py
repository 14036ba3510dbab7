"""Post-handshake client authentication (issue 13 item 4, RFC 8446 §4.6.2): the server asks
through ``ServerConnection.request_client_certificate()``; a client that sent
post_handshake_auth answers with Certificate, CertificateVerify and Finished, and the server
reports `ClientCertificateReceived` once they verified against its CA file."""

from __future__ import annotations

from typing import Any

import pytest
from helpers import NOW, client_config, credentials, events, pair, pump, server_config
from tls13_hostile import inject

from dtlsgate.connection.stream import ClientConnection, ServerConnection
from dtlsgate.crypto.certs import load_identity
from dtlsgate.errors import ProtocolError, StateError, UsageError
from dtlsgate.events import ClientCertificateReceived, DataReceived
from dtlsgate.handshake.tls13.common import message
from dtlsgate.wire.enums import AlertDescription, ExtensionType, HandshakeType
from dtlsgate.wire.extensions import Extension, encode_u16_list_ext
from dtlsgate.wire.messages13 import Certificate, CertificateEntry, CertificateRequest, Finished

_A = AlertDescription


def connected(
    key_type: str | None = "ed25519", server_ca: str = "", **client: Any
) -> tuple[ClientConnection, ServerConnection]:
    creds: dict[str, Any] = {}
    if key_type is not None:
        ident = load_identity(*credentials(key_type))
        creds = {"certificate_chain": list(ident.chain), "private_key": ident.private_key}
    client.setdefault("post_handshake_auth", True)
    ccfg = client_config(**creds, **client)
    scfg = server_config(cafile=credentials(server_ca or key_type or "ed25519")[0])
    client_conn, server = pair(scfg, ccfg)
    assert client_conn.handshake_complete and server.handshake_complete
    events(client_conn), events(server)
    return client_conn, server


def test_the_server_asks_and_the_client_answers() -> None:
    client, server = connected()
    server.request_client_certificate()
    assert server.state_name == "WaitPostHandshakeCertificate"
    pump(server, client)
    got = events(server)
    chain = load_identity(*credentials("ed25519")).chain_der
    assert got == [ClientCertificateReceived(chain)]
    assert server.state_name == "Connected"
    # The connection goes on, both ways, and can ask again (a fresh context).
    client.send(b"ping")
    server.send(b"pong")
    pump(client, server)
    assert DataReceived(b"ping") in events(server) and DataReceived(b"pong") in events(client)
    server.request_client_certificate()
    pump(server, client)
    assert events(server) == [ClientCertificateReceived(chain)]


def test_application_data_and_key_updates_while_the_request_is_pending() -> None:
    client, server = connected()
    server.request_client_certificate()
    server.key_update()
    server.send(b"during")
    pump(server, client)
    assert DataReceived(b"during") in events(client)
    assert ClientCertificateReceived in {type(e) for e in events(server)}


def test_a_client_without_a_certificate_sends_an_empty_one() -> None:
    client, server = connected(key_type=None)
    server.request_client_certificate()
    pump(server, client)
    assert events(server) == [ClientCertificateReceived(())]


def test_no_request_without_post_handshake_auth() -> None:
    _, server = connected(post_handshake_auth=False)
    with pytest.raises(StateError, match="post_handshake_auth"):
        server.request_client_certificate()


def test_no_request_without_client_cas() -> None:
    ccfg = client_config(post_handshake_auth=True)
    _, server = pair(server_config(), ccfg)
    with pytest.raises(UsageError, match="cafile"):
        server.request_client_certificate()


def test_one_request_at_a_time() -> None:
    _, server = connected()
    server.request_client_certificate()
    with pytest.raises(StateError):
        server.request_client_certificate()


def post_handshake_request() -> bytes:
    schemes = encode_u16_list_ext([0x0807])
    cr = CertificateRequest(b"\x01" * 8, (Extension(ExtensionType.signature_algorithms, schemes),))
    return message(HandshakeType.CERTIFICATE_REQUEST, cr.encode())


def test_a_request_to_a_client_that_did_not_offer_is_unexpected_message() -> None:
    """RFC 8446 §4.6.2: a client that did not send post_handshake_auth answers a
    CertificateRequest with unexpected_message."""
    client, _ = connected(post_handshake_auth=False)
    with pytest.raises(ProtocolError) as info:
        client.receive_data(inject(client, 22, post_handshake_request()), NOW)
    assert info.value.alert == _A.unexpected_message and client.closed


def refused(server: ServerConnection, msg: bytes) -> AlertDescription | None:
    with pytest.raises(ProtocolError) as info:
        server.receive_data(inject(server, 22, msg), NOW)
    assert server.closed
    return info.value.alert


def test_a_certificate_with_another_context_is_illegal_parameter() -> None:
    _, server = connected()
    server.request_client_certificate()
    chain = load_identity(*credentials("ed25519")).chain_der
    cert = Certificate(b"not ours", tuple(CertificateEntry(d) for d in chain))
    assert (
        refused(server, message(HandshakeType.CERTIFICATE, cert.encode())) == _A.illegal_parameter
    )


def test_a_certificate_from_another_ca_is_refused() -> None:
    """A client certificate the server's CA file does not vouch for: the chain check's
    alert (RFC 8446 §6.2), before any signature is looked at."""
    client, server = connected(key_type="rsa-2048", server_ca="ed25519")
    server.request_client_certificate()
    with pytest.raises(ProtocolError) as info:
        pump(server, client)
    assert info.value.alert in (_A.bad_certificate, _A.unknown_ca)


def test_a_wrong_finished_is_decrypt_error() -> None:
    client, server = connected(key_type=None)
    server.request_client_certificate()
    # The client's empty Certificate, then a Finished that is not the right one.
    request = server.data_to_send()
    client.receive_data(request, NOW)
    answer = client.data_to_send()
    assert answer
    context = server.state.pending.context  # type: ignore[union-attr]
    empty = message(HandshakeType.CERTIFICATE, Certificate(context, ()).encode())
    server.receive_data(inject(server, 22, empty), NOW)
    bad = message(HandshakeType.FINISHED, Finished(bytes(32)).encode())
    assert refused(server, bad) == _A.decrypt_error


def test_the_client_offers_post_handshake_auth_only_when_configured() -> None:
    from dtlsgate.wire.messages import ClientHello

    for enabled in (False, True):
        client = ClientConnection(client_config(post_handshake_auth=enabled))
        client.start()
        hello = ClientHello.decode(client.data_to_send()[9:], dtls=False)
        assert (hello.get(ExtensionType.post_handshake_auth) == b"") is enabled
