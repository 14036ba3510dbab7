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


def test_server_limits_have_defaults_and_can_be_turned_off() -> None:
    config = ServerConfig()
    assert config.handshake_timeout == 30.0
    assert (config.max_handshakes, config.max_handshakes_per_address) == (256, 64)
    assert (config.ipv6_prefix_length, config.idle_timeout, config.max_associations) == (
        64,
        300.0,
        4096,
    )
    off = ServerConfig(handshake_timeout=None, idle_timeout=None)
    assert off.handshake_timeout is None and off.idle_timeout is None
