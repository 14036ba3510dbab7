"""Shared fixtures: captured ClientHellos from real peers and a ClientHello builder."""

from __future__ import annotations

import signal
from pathlib import Path

import pytest
from hypothesis import settings

# A suite started in the background of a non-interactive shell (`make test &`) inherits
# SIGINT ignored, and every process it starts would too (an ignored signal stays ignored
# across exec): the tests that stop a `dtlsgate` process with SIGINT, as Ctrl-C does, would
# then wait for an exit that never comes. A handler (unlike SIG_IGN) is reset to the
# default in the children.
if signal.getsignal(signal.SIGINT) is signal.SIG_IGN:
    signal.signal(signal.SIGINT, signal.default_int_handler)

# No time limit per example: Hypothesis's default deadline (200 ms) is a time asserted in a
# test, and the suite runs in several processes on two cores (`make test`), where an example
# waits for a core now and then. The tests that set their own settings inherit this.
settings.register_profile("dtlsgate", deadline=None)
settings.load_profile("dtlsgate")

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
