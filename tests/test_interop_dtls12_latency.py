"""DTLS 1.2 with real peers over a slow link: a proxy on loopback that delays every
datagram 0.7 s each way (a round trip of 1.4 s, longer than the 1 s first retransmission
timeout, as on satellite and NB-IoT links), and also drops 10%, duplicates 10% and reorders
20% of the handshake datagrams. Every flight is then retransmitted before its answer can
arrive, and the retransmissions cross the late originals.

- `openssl s_client` and `gnutls-cli` to our asyncio server, five of each at once: each
  completes and its line comes back exact;
- a tinydtls client (PSK, AES-128-CCM-8, as CoAP devices) and five of our asyncio clients
  to our servers: each completes and its lines come back exact;
- our blocking client to `openssl s_server`, `gnutls-serv` and `dtlsgate serve`: data
  crosses both ways, and once the handshake is done the client sends nothing more (the
  client before this test answered a server's retransmitted last flight, and with a server
  that answers the client's, the two went on for ever: tests/test_dtls12_latency.py).
"""

from __future__ import annotations

import asyncio
import contextlib
import importlib.util
import subprocess
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest
from peers import free_udp_port, process, require, wait_bound
from test_dtls12_cli import dtlsgate_serve
from test_interop_dtls12 import EchoServer, make_cert, openssl_s_server
from test_interop_dtls12_late_flight import handshake_after_data
from test_interop_dtls12_loss import AioEchoServer, gnutls_echo, openssl_echo
from udp_proxy import LossyProxy

from dtlsgate.config import ClientConfig, ServerConfig
from dtlsgate.crypto.certs import load_certificate_chain, load_private_key
from dtlsgate.io import aio
from dtlsgate.io.blocking import DtlsSocket, connect

pytestmark = [pytest.mark.interop, pytest.mark.slow]
LATENCY = 0.7
PEERS = 5

# These are DTLS 1.2 behaviours: the client offers DTLS 1.2 only.
DTLS12_ONLY = (0xFEFD,)


def slow_link(port: int, seed: int, *, dup_downstream: bool = True) -> LossyProxy:
    return LossyProxy(
        ("127.0.0.1", port),
        seed=seed,
        loss=0.1,
        dup=0.1,
        reorder=0.2,
        latency=LATENCY,
        dup_downstream=dup_downstream,
    )


def our_server(tmp_path: Path) -> tuple[AioEchoServer, Path]:
    cert, key = make_cert(tmp_path)
    config = ServerConfig(
        certificate_chain=load_certificate_chain(cert), private_key=load_private_key(key)
    )
    return AioEchoServer(config), cert


def test_openssl_clients_to_our_server_over_a_slow_link(tmp_path: Path) -> None:
    require("openssl")
    server, _ = our_server(tmp_path)
    with (
        server,
        # Nothing duplicated towards s_client: it stalls on duplicates (udp_proxy.py).
        slow_link(server.port, seed=11, dup_downstream=False) as proxy,
        ThreadPoolExecutor(PEERS) as pool,
    ):
        results = list(pool.map(lambda i: openssl_echo(proxy.port, i), range(PEERS)))
    assert results == ["ok"] * PEERS


def test_gnutls_clients_to_our_server_over_a_slow_link(tmp_path: Path) -> None:
    require("gnutls-cli")
    server, cert = our_server(tmp_path)
    with (
        server,
        slow_link(server.port, seed=12) as proxy,
        ThreadPoolExecutor(PEERS) as pool,
    ):
        results = list(pool.map(lambda i: gnutls_echo(proxy.port, cert, i), range(PEERS)))
    assert results == ["ok"] * PEERS


def quiet_after_handshake(conn: DtlsSocket, proxy: LossyProxy) -> int:
    """Send a line, the client's first data (its handshake has ended), and read for 4 s
    (its echo aside, nothing comes), so that the server's copies of its last flight, 0.7 s
    away, reach the client, which would answer them if it did; return how many datagrams
    with a handshake or ChangeCipherSpec record the client sent after the line. Counted by
    their order at the proxy (one client's datagrams arrive in the order sent), not by the
    time the proxy forwarded them: a copy of the client's last flight sent before the
    handshake ended and forwarded by a proxy held 0.7 s counted as an answer."""
    conn.send(b"end of the handshake\n")
    with contextlib.suppress(TimeoutError):
        while conn.recv(timeout=4.0):
            pass
    return handshake_after_data(proxy.stats.from_clients)


def test_our_client_to_openssl_s_server_over_a_slow_link(tmp_path: Path) -> None:
    require("openssl")
    cert, key = make_cert(tmp_path)
    port = free_udp_port()
    # -no_ticket: OpenSSL 3.0's s_server, once it has retransmitted a last flight holding a
    # NewSessionTicket (our client offers tickets since issue 15), sends no application data
    # over this link (seeds 11, 13, 14 here; our client received the retransmitted flight,
    # answered nothing, as RFC 6347 §4.2.4 wants, and got nothing more). Without the ticket,
    # or with main's client that did not ask for one, the line arrives. Not resolved: see
    # the issue 15 report.
    with (
        openssl_s_server(port, ["-cert", str(cert), "-key", str(key), "-no_ticket"]) as proc,
        # Nothing duplicated towards s_server either: OpenSSL's DTLS stalls on duplicates.
        slow_link(port, seed=13, dup_downstream=False) as proxy,
        connect(
            "127.0.0.1",
            proxy.port,
            ClientConfig(server_name="localhost", cafile=str(cert), dtls_versions=DTLS12_ONLY),
            timeout=40,
        ) as conn,
    ):
        assert quiet_after_handshake(conn, proxy) == 0
        assert proc.stdin is not None
        proc.stdin.write(b"from s_server\n")
        proc.stdin.flush()
        assert conn.recv(timeout=15) == b"from s_server\n"


def test_our_client_to_gnutls_serv_over_a_slow_link(tmp_path: Path) -> None:
    require("gnutls-serv")
    cert, key = make_cert(tmp_path)
    port = free_udp_port()
    args = ["gnutls-serv", "--udp", "--echo", "-p", str(port)]
    args += ["--x509certfile", str(cert), "--x509keyfile", str(key)]
    with process(args, seconds=60, stdin=subprocess.DEVNULL) as server:
        wait_bound(server, port)
        config = ClientConfig(server_name="localhost", cafile=str(cert), dtls_versions=DTLS12_ONLY)
        with (
            slow_link(port, seed=14) as proxy,
            connect("127.0.0.1", proxy.port, config, timeout=40) as conn,
        ):
            assert quiet_after_handshake(conn, proxy) == 0
            conn.send(b"ping over a slow link")
            assert conn.recv(timeout=15) == b"ping over a slow link"


def test_our_client_to_our_server_over_a_slow_link(tmp_path: Path) -> None:
    with (
        dtlsgate_serve(tmp_path) as port,
        slow_link(port, seed=15) as proxy,
        connect(
            "127.0.0.1",
            proxy.port,
            ClientConfig(insecure=True, dtls_versions=DTLS12_ONLY),
            timeout=40,
        ) as conn,
    ):
        assert quiet_after_handshake(conn, proxy) == 0
        conn.send(b"ping over a slow link")
        assert conn.recv(timeout=15) == b"ping over a slow link"


def test_our_asyncio_clients_to_our_asyncio_server_over_a_slow_link(tmp_path: Path) -> None:
    """Both ends on asyncio (timers driven by the event loop), five clients at once."""
    server, _ = our_server(tmp_path)

    async def one(port: int, i: int) -> bytes:
        stream = await aio.connect(
            "127.0.0.1", port, ClientConfig(insecure=True, dtls_versions=DTLS12_ONLY), timeout=40
        )
        try:
            stream.send(b"aio %d" % i)
            return await asyncio.wait_for(stream.recv(), 15)
        finally:
            stream.close()

    async def main(port: int) -> list[bytes]:
        return await asyncio.gather(*(one(port, i) for i in range(PEERS)))

    with server, slow_link(server.port, seed=16) as proxy:
        replies = asyncio.run(asyncio.wait_for(main(proxy.port), 60))
    assert replies == [b"echo:aio %d" % i for i in range(PEERS)]


def test_tinydtls_client_to_our_server_over_a_slow_link() -> None:
    """The CoAP case (RFC 7252 §9.1.3.1: PSK, AES-128-CCM-8) on a link slower than the first
    retransmission timeout, as NB-IoT and satellite links are."""
    if importlib.util.find_spec("DTLSSocket") is None:
        pytest.skip("DTLSSocket (tinydtls) is not installed (the [interop] extra)")
    from test_interop_tinydtls import PSK_HEX, ccm8_config, run_tinydtls_client

    with EchoServer(ccm8_config()) as server, slow_link(server.port, seed=17) as proxy:
        out = run_tinydtls_client(proxy.port, PSK_HEX, ["hello over NB-IoT", "second"])
        # The client's close_notify is still on the way: keep the link up for it.
        server.thread.join(4 * LATENCY + 2)
    assert out == ["connected", "got:b'echo:hello over NB-IoT'", "got:b'echo:second'"]
    assert not server.errors, server.errors
    assert server.received == [b"hello over NB-IoT", b"second"]
