"""The stateless listener against real DTLS clients: `openssl s_client -dtls1_2` and
`gnutls-cli --udp` connect to `dtlsgate listen`. On the wire (tshark) each client gets our
HelloVerifyRequest, repeats its ClientHello with exactly our cookie, and the listener admits
it. (The clients then wait for a ServerHello that the bare listener never sends.)"""

from __future__ import annotations

import time

import pytest
from peers import Packet, between, capture, dtlsgate_listen, process, read_line, require

pytestmark = pytest.mark.interop

HELLO_VERIFY_REQUEST = 3
CLIENT_HELLO = 1


def run_client_against_listener(client_args: list[str]) -> tuple[list[Packet], int, bytes]:
    """Start the listener and a capture, run the client until the listener admits it;
    return the packets, the listener's port and the cookie the listener reported."""
    with dtlsgate_listen(seconds=40) as (listener, port), capture(port, seconds=40) as packets:
        args = [a.replace("{port}", str(port)) for a in client_args]
        with process(args, seconds=20):
            line = read_line(listener.stdout, time.monotonic() + 15)
        assert line.startswith("admitted 127.0.0.1:"), f"no admission: {line!r}"
        admitted_cookie = bytes.fromhex(line.split("cookie=", 1)[1])
    client_port = int(line.split()[1].rsplit(":", 1)[1])
    # Only the admitted client's packets: any other process may use the port number too.
    return between(packets, client_port, port), port, admitted_cookie


def check_cookie_exchange(packets: list[Packet], port: int, admitted_cookie: bytes) -> None:
    from_client = [p for p in packets if p.dst_port == port and CLIENT_HELLO in p.handshake_types]
    from_server = [
        p for p in packets if p.src_port == port and HELLO_VERIFY_REQUEST in p.handshake_types
    ]
    assert from_client, "no ClientHello captured"
    assert from_server, "no HelloVerifyRequest captured"
    first, hvr = from_client[0], from_server[0]
    # The first ClientHello has an empty cookie; our reply carries one.
    assert first.cookies in ((), (b"",))
    assert hvr.dst_port == first.src_port
    assert hvr.record_versions == (0xFEFF,)  # DTLS 1.0 on the HelloVerifyRequest record
    assert hvr.message_seqs == (0,)
    (cookie,) = hvr.cookies
    assert len(cookie) == 21
    # The client repeats its ClientHello with exactly our cookie, and that is admitted.
    again = [p for p in from_client[1:] if p.cookies == (cookie,)]
    assert again, f"no ClientHello with our cookie {cookie.hex()}"
    assert again[0].message_seqs == (1,)
    assert admitted_cookie == cookie


def test_openssl_s_client_is_admitted() -> None:
    require("openssl")
    args = ["openssl", "s_client", "-dtls1_2", "-connect", "127.0.0.1:{port}", "-quiet"]
    check_cookie_exchange(*run_client_against_listener(args))


def test_gnutls_cli_is_admitted() -> None:
    require("gnutls-cli")
    args = ["gnutls-cli", "--udp", "-p", "{port}", "127.0.0.1", "--insecure"]
    check_cookie_exchange(*run_client_against_listener(args))
