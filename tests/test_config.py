"""ServerConfig / ClientConfig: loading credentials and rejecting misuse."""

from __future__ import annotations

from pathlib import Path

import pytest

from dtlsgate import ClientConfig, ServerConfig, UsageError
from dtlsgate.crypto.certs import make_self_signed


def test_load_cert_chain_from_files_and_bytes(tmp_path: Path) -> None:
    cert, key = make_self_signed("localhost", "ecdsa-p256")
    (tmp_path / "cert.pem").write_bytes(cert)
    (tmp_path / "key.pem").write_bytes(key)
    (tmp_path / "both.pem").write_bytes(cert + key)
    for args in (
        (str(tmp_path / "cert.pem"), str(tmp_path / "key.pem")),
        (cert, key),
        (str(tmp_path / "both.pem"),),
    ):
        config = ServerConfig()
        config.load_cert_chain(*args)
        assert len(config.certificate_chain) == 1
        assert config.private_key.public_key() == config.certificate_chain[0].public_key()
    client = ClientConfig(server_name="localhost")
    client.load_cert_chain(cert, key)
    assert len(client.certificate_chain) == 1


def test_mismatched_key_and_bad_files_are_usage_errors(tmp_path: Path) -> None:
    cert, _ = make_self_signed("localhost", "ecdsa-p256")
    _, other_key = make_self_signed("localhost", "ecdsa-p256")
    with pytest.raises(UsageError):
        ServerConfig().load_cert_chain(cert, other_key)
    with pytest.raises(UsageError):
        ServerConfig().load_cert_chain(str(tmp_path / "missing.pem"))
    with pytest.raises(UsageError):
        ServerConfig().load_cert_chain(b"not a certificate", b"nor a key")


@pytest.mark.parametrize(
    "kwargs",
    [
        {"cookie_generate": lambda p: b"x"},
        {"cookie_verify": lambda p, c: True},
        {"verify_client": "sometimes"},
        {"mtu": 100},
        {"handshake_timeout": 0},
        {"handshake_timeout": -1.0},
        {"idle_timeout": 0.0},
        {"idle_timeout": 86401},
        {"max_handshakes": 0},
        {"max_handshakes_per_address": 0},
        {"max_handshakes": 8, "max_handshakes_per_address": 9},
        {"ipv6_prefix_length": 0},
        {"ipv6_prefix_length": 129},
        {"max_associations": 0},
        {"connection_id_length": 21},
        {"dtls_versions": ()},
        {"dtls_versions": (0xFEFF,)},
        {"stateless_cookie_generate": lambda p: b"x"},
        {"ticket_key": bytes(16)},
        {"session_tickets": 17},
        {"ticket_lifetime": 0},
        {"ticket_lifetime": 604801},
    ],
)
def test_server_config_misuse(kwargs: dict[str, object]) -> None:
    with pytest.raises(UsageError):
        ServerConfig(**kwargs)  # type: ignore[arg-type]


def test_client_config_misuse() -> None:
    with pytest.raises(UsageError):
        ClientConfig(psk=b"k")
    with pytest.raises(UsageError):
        ClientConfig(mtu=70000)
    with pytest.raises(UsageError, match="connection_id_length must be between 0 and 20"):
        ClientConfig(connection_id_length=21)
    with pytest.raises(UsageError, match="dtls_versions takes 0xFEFC"):
        ClientConfig(dtls_versions=(0xFEFD, 0x0303))


def test_server_limits_have_defaults_and_can_be_turned_off() -> None:
    config = ServerConfig()
    assert config.handshake_timeout == 60.0
    assert (config.max_handshakes, config.max_handshakes_per_address) == (256, 64)
    assert (config.ipv6_prefix_length, config.idle_timeout, config.max_associations) == (
        64,
        300.0,
        4096,
    )
    off = ServerConfig(handshake_timeout=None, idle_timeout=None)
    assert off.handshake_timeout is None and off.idle_timeout is None


# ---- typed credentials, VerifyClient, load_verify_locations, settings that do not apply --------


def test_verify_client_is_an_enum_that_takes_strings_and_ssl_constants(tmp_path: Path) -> None:
    import ssl

    from dtlsgate import VerifyClient

    cert, _ = make_self_signed("client-ca")
    for given, expected in [
        ("none", VerifyClient.NONE),
        ("optional", VerifyClient.OPTIONAL),
        (ssl.CERT_NONE, VerifyClient.NONE),
        (ssl.CERT_OPTIONAL, VerifyClient.OPTIONAL),
        (ssl.CERT_REQUIRED, VerifyClient.REQUIRED),
        (VerifyClient.REQUIRED, VerifyClient.REQUIRED),
    ]:
        config = ServerConfig(verify_client=given, cafile=cert)
        assert config.verify_client is expected
        assert config.verify_client == expected.value  # string comparisons keep working
    for bad in ("sometimes", 3, True, None):
        with pytest.raises(UsageError, match="verify_client"):
            ServerConfig(verify_client=bad, cafile=cert)  # type: ignore[arg-type]


def test_a_client_config_loads_its_trust_store_once_per_cafile() -> None:
    one, _ = make_self_signed("ca-one")
    two, _ = make_self_signed("ca-two")
    config = ClientConfig(server_name="localhost", cafile=one)
    store = config.trust_store()
    assert [c.subject.rfc4514_string() for c in store.certificates] == ["CN=ca-one"]
    assert config.trust_store() is store  # kept: every connection of the config shares it
    config.load_verify_locations(cadata=two)  # a changed cafile is loaded again
    names = [c.subject.rfc4514_string() for c in config.trust_store().certificates]
    assert names == ["CN=ca-one", "CN=ca-two"]


def test_load_verify_locations_as_in_ssl(tmp_path: Path) -> None:
    from cryptography import x509
    from cryptography.hazmat.primitives.serialization import Encoding

    from dtlsgate.crypto.certs import load_trust_store

    one, _ = make_self_signed("ca-one")
    two, _ = make_self_signed("ca-two")
    three, _ = make_self_signed("ca-three")
    (tmp_path / "one.pem").write_bytes(one)
    der = x509.load_pem_x509_certificate(three).public_bytes(Encoding.DER)
    for config in (ServerConfig(), ClientConfig(server_name="localhost")):
        config.load_verify_locations(cafile=str(tmp_path / "one.pem"))
        config.load_verify_locations(cadata=two.decode())  # PEM as str
        config.load_verify_locations(cadata=der)  # DER bytes
        assert config.cafile is not None
        names = [c.subject.rfc4514_string() for c in load_trust_store(config.cafile).certificates]
        assert names == ["CN=ca-one", "CN=ca-two", "CN=ca-three"]
        with pytest.raises(UsageError):
            config.load_verify_locations(cafile=str(tmp_path / "missing.pem"))
        with pytest.raises(UsageError):
            config.load_verify_locations(cadata=b"\x30\x03junk")
        with pytest.raises(UsageError):
            config.load_verify_locations()
    server = ServerConfig()
    server.load_verify_locations(cadata=one)
    server.verify_client = "required"
    server.load_cert_chain(*make_self_signed("localhost"))
    server.check_can_serve()
    assert server.verify_client == "required"


def test_credentials_are_typed_and_come_in_pairs() -> None:
    from cryptography import x509

    cert, key = make_self_signed("localhost")
    leaf = x509.load_pem_x509_certificate(cert)
    with pytest.raises(UsageError, match="together"):
        ServerConfig(certificate_chain=[leaf])
    with pytest.raises(UsageError, match=r"x509\.Certificate"):
        ServerConfig(certificate_chain=[cert], private_key=object())  # type: ignore[list-item, arg-type]
    with pytest.raises(UsageError, match="not a supported key"):
        ServerConfig(certificate_chain=[leaf], private_key=key)  # type: ignore[arg-type]
    with pytest.raises(UsageError, match="private_key of type object is not a supported key"):
        ServerConfig(raw_public_key=True, private_key=object())  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("make", "words"),
    [
        (lambda: ServerConfig(psk_identity_hint=b"hint"), "psk_identity_hint"),
        (
            lambda: ClientConfig(server_name="x", insecure=True, cafile="ca.pem"),
            "cafile does not apply",
        ),
    ],
)
def test_settings_that_do_not_apply_are_refused(make: object, words: str) -> None:
    with pytest.raises(UsageError, match=words):
        make()  # type: ignore[operator]


def test_a_server_without_credentials_is_refused_at_once() -> None:
    import asyncio

    import dtlsgate

    async def handler(*args: object) -> None:
        return None

    async def attempt() -> list[str]:
        messages = []
        for start in (
            lambda: dtlsgate.serve(handler, "127.0.0.1", 0, ServerConfig()),
            lambda: dtlsgate.serve_tls(handler, "127.0.0.1", 0, ServerConfig()),
            lambda: dtlsgate.serve(handler, "127.0.0.1", 0),
        ):
            with pytest.raises(UsageError) as refused:
                await start()
            messages.append(str(refused.value))
        return messages

    for message in asyncio.run(attempt()):
        assert "certificate" in message and "PSK" in message


def test_tls13_client_contexts_share_the_configs_trust_store() -> None:
    from dtlsgate.handshake.tls13.client import ClientContext

    ca, _ = make_self_signed("ca-one")
    config = ClientConfig(server_name="localhost", cafile=ca)
    first, second = ClientContext(config), ClientContext(config)
    # One parse per config, not per connection (the system bundle takes about 20 ms).
    assert first.trust is config.trust_store()
    assert second.trust is first.trust


def test_a_gates_dtls12_and_dtls13_contexts_share_the_configs_client_cas() -> None:
    from dtlsgate.gate.datagram import Gate

    one, _ = make_self_signed("ca-one")
    two, _ = make_self_signed("ca-two")
    config = ServerConfig(verify_client="required", cafile=one)
    config.load_cert_chain(*make_self_signed("localhost", "ecdsa-p256"))
    gate = Gate(config)
    store = config.trust_store()
    assert [c.subject.rfc4514_string() for c in store.certificates] == ["CN=ca-one"]
    # One parse per config, not one per version's server context.
    assert gate.dtls12_context.trust is store
    assert gate.dtls13_context.trust is store
    assert gate.dtls13_context.client_cas is store
    config.load_verify_locations(cadata=two)  # a changed cafile is loaded again
    names = [c.subject.rfc4514_string() for c in config.trust_store().certificates]
    assert names == ["CN=ca-one", "CN=ca-two"]
    with pytest.raises(UsageError, match="client CAs"):
        ServerConfig().trust_store()  # no system default for client CAs


def test_tls13_client_and_server_contexts_read_suites_and_groups_one_way() -> None:
    """`Tls13Context`, which both sides' contexts are: a datagram config listing DTLS 1.2
    suites too keeps only its TLS 1.3 ones, in its order (the defaults when none); a
    stream (TLS) context takes the list as configured; groups the same on both sides."""
    from dtlsgate.handshake.tls13.client import ClientContext
    from dtlsgate.handshake.tls13.common import DEFAULT_SUITES, DTLS_VERSIONS, TLS_VERSIONS
    from dtlsgate.handshake.tls13.server import ServerContext
    from dtlsgate.wire.enums import CipherSuite, NamedGroup

    mixed = (
        CipherSuite.TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256,
        CipherSuite.TLS_CHACHA20_POLY1305_SHA256,
        CipherSuite.TLS_PSK_WITH_AES_128_CCM_8,
        CipherSuite.TLS_AES_128_GCM_SHA256,
    )
    dtls12_only = (CipherSuite.TLS_PSK_WITH_AES_128_CCM_8,)
    groups = (NamedGroup.secp256r1, NamedGroup.x25519)
    client = ClientConfig(server_name="localhost", cipher_suites=mixed, groups=groups)
    server = ServerConfig(cipher_suites=mixed, groups=groups)
    server.load_cert_chain(*make_self_signed("localhost", "ecdsa-p256"))
    for context in (
        ClientContext(client, versions=DTLS_VERSIONS),
        ServerContext(server, versions=DTLS_VERSIONS),
    ):
        assert context.suites == mixed[1::2] and context.groups == groups
    for context in (
        ClientContext(client, versions=TLS_VERSIONS),
        ServerContext(server, versions=TLS_VERSIONS),
    ):
        assert context.suites == mixed
    client = ClientConfig(server_name="localhost", cipher_suites=dtls12_only)
    assert ClientContext(client, versions=DTLS_VERSIONS).suites == DEFAULT_SUITES
