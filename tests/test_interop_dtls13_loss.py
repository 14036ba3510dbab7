"""DTLS 1.3 over a bad network (real UDP on loopback through tests/udp_proxy.py): 20% loss,
10% duplication, 30% reordering of every DTLS 1.3 record (the protected ones included:
their content type is encrypted), and a link whose one-way delay (1.2 s) is above the
first retransmission timeout (1 s). Our asyncio clients against our asyncio server: every handshake completes, the data
arrives exactly (the test resends its own data, which DTLS does not retransmit), and the
ends go quiet afterwards."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest
from test_interop_dtls12 import make_cert
from test_interop_dtls12_loss import AioEchoServer
from udp_proxy import LossyProxy

from dtlsgate.config import ClientConfig, ServerConfig
from dtlsgate.crypto.certs import load_certificate_chain, load_private_key
from dtlsgate.io import aio
from dtlsgate.wire.enums import ProtocolVersion

pytestmark = [pytest.mark.interop, pytest.mark.slow]
PEERS = 4


async def talk(port: int, i: int) -> tuple[int, bytes]:
    stream = await aio.connect("127.0.0.1", port, ClientConfig(insecure=True), timeout=60)
    try:
        assert stream.handshake_info is not None
        version = stream.handshake_info.version
        message = b"peer %d" % i
        for _ in range(20):  # application data is not retransmitted by DTLS
            stream.send(message)
            try:
                return version, await asyncio.wait_for(stream.recv(), 2)
            except TimeoutError:
                continue
        return version, b""
    finally:
        stream.close()


@pytest.mark.parametrize(("latency", "seed"), [(0.0, 21), (1.2, 22)])
def test_our_clients_to_our_server_over_a_lossy_link(
    tmp_path: Path, latency: float, seed: int
) -> None:
    cert, key = make_cert(tmp_path)
    config = ServerConfig(
        certificate_chain=load_certificate_chain(cert), private_key=load_private_key(key)
    )
    proxy_args = {"seed": seed, "loss": 0.2, "dup": 0.1, "reorder": 0.3, "latency": latency}

    async def main(port: int) -> list[tuple[int, bytes]]:
        return await asyncio.gather(*(talk(port, i) for i in range(PEERS)))

    with (
        AioEchoServer(config) as server,
        LossyProxy(("127.0.0.1", server.port), impair_dtls13=True, **proxy_args) as proxy,
    ):
        results = asyncio.run(asyncio.wait_for(main(proxy.port), 150))
        # Quiet afterwards: nothing more reaches the server once every client closed. (Not
        # checked towards the clients: everything is impaired here, so a client's ACK of
        # the NewSessionTicket and then its close_notify can both be lost, and the server
        # then resends the ticket to a client that is gone until its retransmissions give
        # up; test_interop_wolfssl_dtls13_loss.py checks both ways, its proxy impairing the
        # handshake only.) The clients' sockets are closed: what they sent last is in the
        # proxy (held for the latency, or in its socket) until it has been quiet towards the
        # server for 20 turns of its loop; then nothing may reach the server in 60 more turns
        # (3 s on an idle machine). Both are counted in the proxy's turns, not in seconds on
        # the wall clock, which a loaded machine takes from the proxy's thread too.
        proxy.wait_quiet(upstream_only=True)
        settled = len(proxy.stats.upstream_times)
        proxy.wait_quiet(60, upstream_only=True)
        assert len(proxy.stats.upstream_times) == settled
    assert [v for v, _ in results] == [ProtocolVersion.DTLS13] * PEERS
    # Exactly the data, once per answer (copies of a resent request may echo twice).
    assert [r for _, r in results] == [b"echo:peer %d" % i for i in range(PEERS)]
    assert proxy.stats.dropped and proxy.stats.duplicated and proxy.stats.reordered
