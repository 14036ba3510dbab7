"""Shared fixtures: captured ClientHellos from real peers and a ClientHello builder."""

from __future__ import annotations

from pathlib import Path

import pytest

DATA = Path(__file__).parent / "data"


def load_hex(name: str) -> bytes:
    return bytes.fromhex((DATA / name).read_text().strip())


@pytest.fixture
def openssl_client_hello() -> bytes:
    """The first datagram `openssl s_client -dtls1_2` sends (captured, cookie empty)."""
    return load_hex("openssl_dtls12_client_hello.hex")


@pytest.fixture
def gnutls_client_hello() -> bytes:
    """The first datagram `gnutls-cli --udp` sends (captured, cookie empty)."""
    return load_hex("gnutls_dtls12_client_hello.hex")
