"""TLS 1.3 external PSKs (issue 13 item 3; RFC 8446 §4.2.9, §4.2.11, RFC 9257): psk_dhe_ke and
psk_ke, configured like the DTLS 1.2 PSK (``psk={identity: key}`` on the server,
``psk_identity``/``psk`` on the client, ``psk_hash``), through the stateful server and the
stateless gate, and resumption in psk_ke mode when the server allows it. A binder that does
not verify is decrypt_error."""

from __future__ import annotations

from typing import Any

import pytest
from helpers import NOW, client_config, events, pair, pump, server_config

from dtlsgate.config import PSK_DHE_KE, PSK_KE, ClientConfig, ServerConfig
from dtlsgate.connection.stream import ClientConnection, ServerConnection
from dtlsgate.errors import ProtocolError, UsageError
from dtlsgate.events import SessionTicketReceived
from dtlsgate.gate.results import StreamAdmit
from dtlsgate.gate.stream import StatelessGate
from dtlsgate.wire.enums import AlertDescription, CipherSuite, ExtensionType, NamedGroup
from dtlsgate.wire.messages import ServerHello

_A = AlertDescription
ID = b"Client_identity"
KEY = bytes(range(16))


def psk_server(**kw: Any) -> ServerConfig:
    return ServerConfig(psk={ID: KEY}, **kw)


def psk_client(identity: bytes = ID, key: bytes = KEY, **kw: Any) -> ClientConfig:
    return ClientConfig(psk_identity=identity, psk=key, **kw)


def refused(client_cfg: ClientConfig, server_cfg: ServerConfig) -> AlertDescription:
    client, server = ClientConnection(client_cfg), ServerConnection(server_cfg)
    client.start(NOW)
    with pytest.raises(ProtocolError) as info:
        pump(client, server)
    assert info.value.alert is not None
    return info.value.alert


def server_hello(client: ClientConnection, server: ServerConnection) -> ServerHello:
    client.start(NOW)
    server.receive_data(client.data_to_send(), NOW)
    out = server.data_to_send()
    return ServerHello.decode(out[9 : 5 + int.from_bytes(out[3:5], "big")])


def test_psk_dhe_ke_without_certificates() -> None:
    """A server with only a PSK and a client with only the PSK (no server name to verify):
    (EC)DHE with the PSK, no Certificate, the identity reported on both sides."""
    client, server = pair(psk_server(), psk_client())
    assert client.info is not None and server.info is not None
    for info in (client.info, server.info):
        assert info.psk_identity == ID and not info.resumed
        assert info.group == NamedGroup.X25519MLKEM768 and info.signature_scheme is None
        assert info.peer_certificates == ()


def test_psk_ke_has_no_key_share() -> None:
    """RFC 8446 §4.2.9 psk_ke: the ServerHello carries no key_share, the key schedule takes
    zeros for the (EC)DHE input, and the handshake completes."""
    scfg = psk_server(psk_modes=(PSK_KE,))
    ccfg = psk_client(psk_modes=(PSK_KE,))
    sh = server_hello(ClientConnection(ccfg), ServerConnection(scfg))
    assert sh.get(ExtensionType.key_share) is None
    assert sh.get(ExtensionType.pre_shared_key) == b"\x00\x00"
    client, server = pair(scfg, ccfg)
    assert client.info is not None and server.info is not None
    assert client.info.group is None and server.info.group is None
    assert client.info.psk_identity == ID


def test_the_server_picks_its_preferred_mode() -> None:
    both = psk_client(psk_modes=(PSK_DHE_KE, PSK_KE))
    client, _ = pair(psk_server(psk_modes=(PSK_KE, PSK_DHE_KE)), both)
    assert client.info is not None and client.info.group is None
    client, _ = pair(psk_server(psk_modes=(PSK_DHE_KE, PSK_KE)), both)
    assert client.info is not None and client.info.group is not None


def test_a_psk_ke_only_client_and_a_dhe_only_server_do_not_use_the_psk() -> None:
    """No common mode: the PSK is ignored (RFC 8446 §4.2.9); with no certificate either, the
    server has nothing to authenticate with: handshake_failure."""
    assert refused(psk_client(psk_modes=(PSK_KE,)), psk_server()) == _A.handshake_failure


def test_sha384_psk_uses_a_sha384_suite() -> None:
    client, _ = pair(psk_server(psk_hash="sha384"), psk_client(psk_hash="sha384"))
    assert client.info is not None
    assert client.info.cipher_suite == CipherSuite.TLS_AES_256_GCM_SHA384


def test_a_psk_bound_to_another_hash_does_not_verify() -> None:
    """RFC 8446 §4.2.11: a PSK is bound to one hash. The server takes the identity with its
    SHA-256 binding; the client's binder, made with SHA-384, does not verify: decrypt_error."""
    assert refused(psk_client(psk_hash="sha384"), psk_server()) == _A.decrypt_error


def test_a_binder_that_does_not_verify_is_decrypt_error() -> None:
    """RFC 8446 §4.2.11: the server knows the identity but the client's key differs: the
    binder does not verify: decrypt_error, sent before anything else."""
    client = ClientConnection(psk_client(key=bytes(16)))
    server = ServerConnection(psk_server())
    client.start(NOW)
    with pytest.raises(ProtocolError) as info:
        server.receive_data(client.data_to_send(), NOW)
    assert info.value.alert == _A.decrypt_error
    assert server.data_to_send() == bytes((21, 3, 3, 0, 2, 2, _A.decrypt_error))


def test_an_unknown_identity_falls_back_to_certificates() -> None:
    """An identity the server does not know is ignored: a certificate handshake, which a
    client with a server name to verify accepts."""
    ccfg = client_config(psk_identity=b"x", psk=KEY, server_name="localhost")
    client, _ = pair(server_config(psk={ID: KEY}), ccfg)
    assert client.info is not None and client.info.psk_identity is None
    assert client.info.peer_certificates


def test_a_psk_with_no_suite_of_its_hash_on_the_server_is_not_used() -> None:
    """RFC 8446 §4.2.11: an external PSK is used only with a suite of its hash. A SHA-384
    PSK on a server that allows only TLS_AES_128_GCM_SHA256 is ignored: a certificate
    handshake, which a client with a server name to verify accepts."""
    ccfg = client_config(psk_identity=ID, psk=KEY, psk_hash="sha384", server_name="localhost")
    scfg = server_config(
        psk={ID: KEY}, psk_hash="sha384", cipher_suites=(CipherSuite.TLS_AES_128_GCM_SHA256,)
    )
    client, _ = pair(scfg, ccfg)
    assert client.info is not None and client.info.psk_identity is None
    assert client.info.cipher_suite == CipherSuite.TLS_AES_128_GCM_SHA256
    assert client.info.peer_certificates


def test_a_psk_only_client_refuses_a_certificate_handshake() -> None:
    """Without a server name to verify, the PSK is the only authentication: a server that
    does not take it gets handshake_failure."""
    ccfg = psk_client(identity=b"unknown")
    assert refused(ccfg, server_config()) == _A.handshake_failure


def test_psk_after_a_hello_retry_request() -> None:
    ccfg = psk_client(groups=(NamedGroup.secp384r1, NamedGroup.x25519))
    client, _ = pair(psk_server(groups=(NamedGroup.x25519,)), ccfg)
    assert client.info is not None and client.info.hello_retry
    assert client.info.psk_identity == ID and client.info.group == NamedGroup.x25519


def test_psk_through_the_stateless_gate() -> None:
    scfg = psk_server(stateless=True)
    gate = StatelessGate(scfg)
    client = ClientConnection(psk_client())
    client.start(NOW)
    reply = gate.receive(client.data_to_send(), "peer", NOW)
    client.receive_data(reply.data, NOW)  # type: ignore[union-attr]
    admit = gate.receive(client.data_to_send(), "peer", NOW)
    assert isinstance(admit, StreamAdmit)
    server = ServerConnection.from_admit(scfg, admit, NOW)
    pump(server, client)
    assert client.info is not None and server.info is not None
    assert server.info.psk_identity == ID


def tickets(server_cfg: ServerConfig, client_cfg: ClientConfig) -> Any:
    client, _ = pair(server_cfg, client_cfg)
    return [e.ticket for e in events(client) if isinstance(e, SessionTicketReceived)][-1]


def resume(server_cfg: ServerConfig, **kw: Any) -> ClientConnection:
    ticket = tickets(server_cfg, client_config())
    client = ClientConnection(client_config(session_ticket=ticket, **kw))
    server = ServerConnection(server_cfg)
    client.start(NOW)
    pump(client, server)
    return client


def test_resumption_in_psk_ke_mode_when_the_server_allows_it() -> None:
    client = resume(server_config(psk_modes=(PSK_KE, PSK_DHE_KE)), psk_modes=(PSK_KE,))
    assert client.info is not None and client.info.resumed and client.info.group is None


def test_no_psk_ke_resumption_when_the_server_does_not_allow_it() -> None:
    client = resume(server_config(), psk_modes=(PSK_KE,))
    assert client.info is not None and not client.info.resumed
    assert client.info.group is not None and client.info.peer_certificates


@pytest.mark.parametrize(
    "kw",
    [
        {"psk_modes": ()},
        {"psk_modes": (2,)},
        {"psk_modes": (PSK_KE, PSK_KE)},
        {"psk_hash": "md5"},
        {"psk": {b"": KEY}},
        {"psk": {ID: b""}},
    ],
)
def test_bad_psk_settings_are_usage_errors(kw: dict[str, Any]) -> None:
    with pytest.raises(UsageError):
        ServerConfig(**kw)


def test_a_client_psk_with_no_suite_of_its_hash_is_a_usage_error() -> None:
    ccfg = psk_client(psk_hash="sha384", cipher_suites=(CipherSuite.TLS_AES_128_GCM_SHA256,))
    with pytest.raises(UsageError, match="sha384"):
        ClientConnection(ccfg)
