"""DTLS 1.2 with tinydtls (PyPI ``DTLSSocket``), the stack many CoAP devices run: our server
with a tinydtls client, PSK with TLS_PSK_WITH_AES_128_CCM_8 (RFC 7252 §9.1.3.1), application
data both ways. The client runs in its own process under ``timeout`` (tests/tinydtls_client.py).

On the wire (checked with tshark): tinydtls 0.2.3's ClientHello offers C0A8 and C0A4 and
the extended_master_secret extension, so our default (EMS required) applies unchanged.
"""

from __future__ import annotations

import importlib.util
import subprocess
import sys
import time
from pathlib import Path

import pytest
from peers import next_line, process
from test_interop_dtls12 import EchoServer

from dtlsgate.config import ServerConfig
from dtlsgate.wire.enums import CipherSuite

pytestmark = pytest.mark.interop

if importlib.util.find_spec("DTLSSocket") is None:
    pytest.skip(
        "DTLSSocket (tinydtls) is not installed: `make test` installs it from the [interop] "
        "extra; building it needs autoconf, automake and libtool (scripts/install-peers.sh)",
        allow_module_level=True,
    )

PSK_ID = "Client_identity"
PSK_HEX = "000102030405060708090a0b0c0d0e0f"
CLIENT = Path(__file__).resolve().parent / "tinydtls_client.py"


def run_tinydtls_client(port: int, psk_hex: str, lines: list[str]) -> list[str]:
    """Run the tinydtls client; return what it printed (bounded in lines and time)."""
    args = [sys.executable, str(CLIENT), str(port), PSK_ID, psk_hex, *lines]
    out: list[str] = []
    with process(args, seconds=30, stdin=subprocess.DEVNULL) as proc:
        deadline = time.monotonic() + 25
        for _ in range(len(lines) + 2):
            line = next_line(proc.stdout, deadline)
            if line is None:
                break
            out.append(line)
        proc.wait(5)
    return out


def ccm8_config(psk_hex: str = PSK_HEX) -> ServerConfig:
    return ServerConfig(
        psk={PSK_ID.encode(): bytes.fromhex(psk_hex)},
        cipher_suites=(CipherSuite.TLS_PSK_WITH_AES_128_CCM_8,),
    )


def test_tinydtls_client_psk_ccm8_with_our_server() -> None:
    with EchoServer(ccm8_config()) as server:
        out = run_tinydtls_client(server.port, PSK_HEX, ["hello from tinydtls", "second"])
    assert not server.errors, server.errors
    assert out == ["connected", "got:b'echo:hello from tinydtls'", "got:b'echo:second'"]
    assert server.received == [b"hello from tinydtls", b"second"]
    info = server.infos[0]
    assert info.cipher_suite == CipherSuite.TLS_PSK_WITH_AES_128_CCM_8
    assert info.psk_identity == PSK_ID.encode()
    assert info.extended_master_secret  # tinydtls sends extended_master_secret
