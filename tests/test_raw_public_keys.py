"""Raw public keys (RFC 7250), sans-I/O: the server_certificate_type and
client_certificate_type extensions, a Certificate carrying a SubjectPublicKeyInfo, and the
peer's key checked against the configured pins (bad_certificate otherwise)."""

from __future__ import annotations

from typing import Any

import pytest
from helpers import alerts_in, make_pair, server_config

from dtlsgate.config import ClientConfig, ServerConfig
from dtlsgate.crypto import DeterministicProvider
from dtlsgate.crypto.certs import load_private_key, make_self_signed, spki_of
from dtlsgate.errors import AlertReceived, BadCertificate, ProtocolError
from dtlsgate.events import HandshakeCompleted
from dtlsgate.gate.cookie import CookieJar
from dtlsgate.wire.enums import AlertDescription


def new_key(name: str = "k") -> Any:
    return load_private_key(make_self_signed(name, "ecdsa-p256", days=1)[1])


SERVER_KEY, CLIENT_KEY, OTHER_KEY = new_key("s"), new_key("c"), new_key("o")


def rpk_server(**kwargs: Any) -> ServerConfig:
    kwargs.setdefault("provider", DeterministicProvider(b"server"))
    kwargs.setdefault("cookie_jar", CookieJar(bytes(32)))
    return ServerConfig(private_key=SERVER_KEY, raw_public_key=True, **kwargs)


def rpk_client(**kwargs: Any) -> ClientConfig:
    kwargs.setdefault("provider", DeterministicProvider(b"client"))
    kwargs.setdefault("pinned_keys", (spki_of(SERVER_KEY),))
    return ClientConfig(**kwargs)


def infos(pair: Any) -> tuple[HandshakeCompleted, HandshakeCompleted]:
    def first(events: list[Any]) -> HandshakeCompleted:
        return next(e for e in events if isinstance(e, HandshakeCompleted))

    return first(pair.client_events), first(pair.server_events)


def test_dtls12_server_raw_public_key_pinned_by_the_client() -> None:
    pair = make_pair(rpk_server(), rpk_client())
    assert pair.run() and pair.completed()
    client, _ = infos(pair)
    assert client.peer_raw_public_key == spki_of(SERVER_KEY)
    assert client.peer_certificates == ()
    pair.client.send(b"hi")
    pair.run()


def test_dtls12_a_key_that_is_not_pinned_gets_bad_certificate() -> None:
    pair = make_pair(rpk_server(), rpk_client(pinned_keys=(spki_of(OTHER_KEY),)))
    with pytest.raises(BadCertificate):
        pair.run()
    assert pair.client.closed
    assert alerts_in(pair.client.datagrams_to_send()) == [AlertDescription.bad_certificate]


def test_dtls12_client_raw_public_key_pinned_by_the_server() -> None:
    server = rpk_server(verify_client="required", pinned_keys=(spki_of(CLIENT_KEY),))
    client = rpk_client(private_key=CLIENT_KEY, raw_public_key=True)
    pair = make_pair(server, client)
    assert pair.run() and pair.completed()
    _, on_server = infos(pair)
    assert on_server.peer_raw_public_key == spki_of(CLIENT_KEY)


def test_dtls12_an_unpinned_client_key_gets_bad_certificate() -> None:
    server = rpk_server(verify_client="required", pinned_keys=(spki_of(OTHER_KEY),))
    client = rpk_client(private_key=CLIENT_KEY, raw_public_key=True)
    pair = make_pair(server, client)
    with pytest.raises(AlertReceived) as raised:
        with pytest.raises(BadCertificate):
            pair.run()
        pair.run()
    assert raised.value.description == AlertDescription.bad_certificate


def test_dtls12_a_client_without_raw_public_keys_gets_the_certificate() -> None:
    # A server with both: a client that does not send server_certificate_type gets X.509.
    cfg = server_config(raw_public_key=True)
    from helpers import client_config

    pair = make_pair(cfg, client_config())
    assert pair.run() and pair.completed()
    client, _ = infos(pair)
    assert client.peer_raw_public_key is None and client.peer_certificates


def test_dtls12_no_certificate_type_in_common_is_unsupported_certificate() -> None:
    # The client takes raw public keys only; the server has a certificate only.
    pair = make_pair(server_config(), rpk_client())
    with pytest.raises(ProtocolError) as raised:
        pair.run()
    assert raised.value.alert == AlertDescription.unsupported_certificate
    assert pair.server is not None
    assert alerts_in(pair.server.datagrams_to_send()) == [AlertDescription.unsupported_certificate]


def test_dtls12_a_certificate_type_we_did_not_offer_is_illegal_parameter(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # A server that answers our [RawPublicKey] with X.509.
    from dtlsgate.handshake.dtls12 import negotiate

    monkeypatch.setattr(negotiate, "_server_certificate_type", lambda config, extensions: 0)
    pair = make_pair(server_config(), rpk_client())
    with pytest.raises(ProtocolError) as raised:
        pair.run()
    assert raised.value.alert == AlertDescription.illegal_parameter
    assert alerts_in(pair.client.datagrams_to_send()) == [AlertDescription.illegal_parameter]


def test_dtls12_x509_client_certificate_to_a_server_that_pins_raw_keys_only() -> None:
    """RFC 7250 §4.2: a server whose only client credentials are pinned raw keys (no
    cafile, no fingerprints) has nothing to check an X.509 certificate with: a client that
    sends one (it offered no client_certificate_type) gets unsupported_certificate."""
    from helpers import client_config, credentials

    from dtlsgate.crypto.certs import load_certificate_chain

    cert_pem, key_pem = credentials("ecdsa-p256", "client")
    server = server_config(verify_client="required", pinned_keys=(spki_of(CLIENT_KEY),))
    client = client_config(
        certificate_chain=load_certificate_chain(cert_pem), private_key=load_private_key(key_pem)
    )
    pair = make_pair(server, client)
    with pytest.raises(ProtocolError) as raised:
        pair.run()
    assert raised.value.alert == AlertDescription.unsupported_certificate
    assert pair.server is not None and pair.server.closed
    assert alerts_in(pair.server.datagrams_to_send()) == [AlertDescription.unsupported_certificate]


def test_dtls12_client_raw_key_that_cannot_sign_a_requested_scheme_is_handshake_failure() -> None:
    """RFC 5246 §7.4.4, RFC 7250 §3: the server asks for the client's raw key with
    signature schemes of its own (RSA-PSS only here); the client's key is ECDSA and cannot
    sign any of them: handshake_failure."""
    from helpers import credentials

    from dtlsgate.wire.enums import SignatureScheme

    rsa = load_private_key(credentials("rsa-2048")[1])
    server = ServerConfig(
        private_key=rsa,
        raw_public_key=True,
        verify_client="required",
        pinned_keys=(spki_of(CLIENT_KEY),),
        signature_schemes=(SignatureScheme.rsa_pss_rsae_sha256,),
        provider=DeterministicProvider(b"server"),
        cookie_jar=CookieJar(bytes(32)),
    )
    client = rpk_client(private_key=CLIENT_KEY, raw_public_key=True, pinned_keys=(spki_of(rsa),))
    pair = make_pair(server, client)
    with pytest.raises(ProtocolError) as raised:
        pair.run()
    assert raised.value.alert == AlertDescription.handshake_failure
    assert pair.client.closed
    assert alerts_in(pair.client.datagrams_to_send()) == [AlertDescription.handshake_failure]


# ---- TLS 1.3 (RFC 8446 §4.4.2: a CertificateEntry holding the SubjectPublicKeyInfo) ----------


def tls13_pair(server: ServerConfig, client: ClientConfig) -> tuple[Any, Any]:
    from helpers import pair

    return pair(server, client)


def tls13_server(**kwargs: Any) -> ServerConfig:
    return ServerConfig(private_key=SERVER_KEY, raw_public_key=True, **kwargs)


def test_tls13_server_raw_public_key_pinned_by_the_client() -> None:
    from helpers import events

    client, server = tls13_pair(tls13_server(), ClientConfig(pinned_keys=(spki_of(SERVER_KEY),)))
    done = [e for e in events(client) if isinstance(e, HandshakeCompleted)]
    assert done and done[0].peer_raw_public_key == spki_of(SERVER_KEY)
    assert done[0].peer_certificates == ()
    assert any(isinstance(e, HandshakeCompleted) for e in events(server))


def test_tls13_a_server_key_that_is_not_pinned_gets_bad_certificate() -> None:
    with pytest.raises(BadCertificate):
        tls13_pair(tls13_server(), ClientConfig(pinned_keys=(spki_of(OTHER_KEY),)))


def test_tls13_no_certificate_type_in_common_is_unsupported_certificate() -> None:
    from helpers import server_config as certificate_server

    with pytest.raises(ProtocolError) as raised:
        tls13_pair(certificate_server(), ClientConfig(pinned_keys=(spki_of(SERVER_KEY),)))
    assert raised.value.alert == AlertDescription.unsupported_certificate


def tls13_rpk_client(**kwargs: Any) -> ClientConfig:
    kwargs.setdefault("pinned_keys", (spki_of(SERVER_KEY),))
    return ClientConfig(private_key=CLIENT_KEY, raw_public_key=True, **kwargs)


def test_tls13_client_raw_public_key_pinned_by_the_server() -> None:
    # RFC 7250 §4.1-4.2: the client offers its raw key in client_certificate_type, the
    # server echoes RawPublicKey in EncryptedExtensions and asks; the client's Certificate
    # holds its SubjectPublicKeyInfo, its CertificateVerify signs with that key.
    from helpers import data_events, events, pump

    server = tls13_server(verify_client="required", pinned_keys=(spki_of(CLIENT_KEY),))
    client, conn = tls13_pair(server, tls13_rpk_client())
    on_server = [e for e in events(conn) if isinstance(e, HandshakeCompleted)]
    assert on_server and on_server[0].peer_raw_public_key == spki_of(CLIENT_KEY)
    assert on_server[0].peer_certificates == ()
    on_client = [e for e in events(client) if isinstance(e, HandshakeCompleted)]
    assert on_client and on_client[0].peer_raw_public_key == spki_of(SERVER_KEY)
    client.send(b"raw both ways")
    pump(client, conn)
    assert data_events(events(conn)) == [b"raw both ways"]


def test_tls13_an_unpinned_client_key_gets_bad_certificate() -> None:
    server = tls13_server(verify_client="required", pinned_keys=(spki_of(OTHER_KEY),))
    with pytest.raises(BadCertificate):
        tls13_pair(server, tls13_rpk_client())


def test_tls13_client_with_chain_and_raw_key_sends_the_chain_to_an_x509_server() -> None:
    # The server asks for X.509 only (a cafile, no pins): a client that has both answers
    # with its certificate, not its bare key (RFC 7250 §4.2: X.509 chosen).
    from helpers import credentials, events

    from dtlsgate.crypto.certs import load_certificate_chain

    cert_pem, key_pem = credentials()
    server = tls13_server(verify_client="required", cafile=cert_pem.decode())
    client = ClientConfig(
        certificate_chain=load_certificate_chain(cert_pem),
        private_key=load_private_key(key_pem),
        raw_public_key=True,
        pinned_keys=(spki_of(SERVER_KEY),),
    )
    _, conn = tls13_pair(server, client)
    done = [e for e in events(conn) if isinstance(e, HandshakeCompleted)]
    assert done and done[0].peer_raw_public_key is None and done[0].peer_certificates


def test_tls13_raw_only_client_and_x509_only_server_is_unsupported_certificate() -> None:
    # The client can only send a raw key; the server takes X.509 client certificates only.
    from helpers import credentials

    server = tls13_server(verify_client="required", cafile=credentials()[0].decode())
    with pytest.raises(ProtocolError) as raised:
        tls13_pair(server, tls13_rpk_client())
    assert raised.value.alert == AlertDescription.unsupported_certificate


# ---- DTLS 1.3: the same engine over datagrams -----------------------------------------------


@pytest.mark.parametrize("server_versions", [(0xFEFC,), (0xFEFD,)], ids=["dtls13", "dtls12"])
def test_dtls13_offering_client_raw_public_key_both_ways(server_versions: tuple[int, ...]) -> None:
    # Our DTLS client offers DTLS 1.3 and 1.2 in one ClientHello: its client_certificate_type
    # goes in once (RFC 8446 §4.2: no extension twice), and whichever version the server
    # picks, the client answers its request with its raw key.
    from helpers import NOW, SERVER, DatagramPair

    from dtlsgate.connection.datagram13 import DatagramClientConnection, Dtls13ClientConnection
    from dtlsgate.gate.datagram import Gate
    from dtlsgate.wire.enums import ExtensionType, ProtocolVersion

    server = rpk_server(
        verify_client="required", pinned_keys=(spki_of(CLIENT_KEY),), dtls_versions=server_versions
    )
    client = DatagramClientConnection(
        rpk_client(private_key=CLIENT_KEY, raw_public_key=True), SERVER
    )
    pair = DatagramPair(server, client, Gate(server))
    client.connect(NOW)
    conn = client.connection
    assert isinstance(conn, Dtls13ClientConnection) and conn.first_client_hello is not None
    types = [e.type for e in conn.first_client_hello.extensions or ()]
    assert types.count(ExtensionType.client_certificate_type) == 1
    assert pair.run() and pair.completed()
    _, on_server = infos(pair)
    assert on_server.peer_raw_public_key == spki_of(CLIENT_KEY)
    expected = ProtocolVersion.DTLS13 if server_versions == (0xFEFC,) else ProtocolVersion.DTLS12
    assert on_server.version == expected
