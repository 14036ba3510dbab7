"""Connection-ID routing in the asyncio server over real UDP (RFC 9147 §9, RFC 9146 §6): a
DTLS 1.3 client whose socket changes port mid-connection (a NAT rebinding, simulated on
loopback) keeps its association, because the server routes a datagram carrying a known
connection ID to its association from any address, and the association follows the new
address once a record from there authenticates."""

from __future__ import annotations

import asyncio
import socket
import time
from typing import Any

from dtls13_socket import data_of, pump
from test_dtls13_faces import echo, server_config

from dtlsgate.config import ClientConfig
from dtlsgate.connection.datagram13 import Dtls13ClientConnection
from dtlsgate.events import HandshakeCompleted
from dtlsgate.io import aio


def _udp() -> socket.socket:
    sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    sock.bind(("127.0.0.1", 0))
    return sock


def _client(server: tuple[str, int], cid: int) -> tuple[list[Any], int, int]:
    """Handshake and one echo from a first socket, then a second from another port."""
    config = ClientConfig(insecure=True, dtls_versions=(0xFEFC,), connection_id_length=cid)
    conn = Dtls13ClientConnection(config, server)
    events: list[Any] = []
    first, second = _udp(), _udp()
    try:
        conn.connect(time.time())
        assert pump(
            conn, first, lambda e: any(isinstance(x, HandshakeCompleted) for x in e), events
        )
        conn.send(b"one")
        pump(conn, first, lambda e: b"echo:one" in data_of(e), events, seconds=10)
        first.close()  # the NAT forgets the old mapping: a new source port from now on
        conn.send(b"two")
        # Without CIDs nothing will come: a shorter bounded wait.
        pump(conn, second, lambda e: b"echo:two" in data_of(e), events, seconds=10 if cid else 3)
        return events, 0, second.getsockname()[1]
    finally:
        first.close()
        second.close()


def _run(cid: int) -> tuple[bytes, list[Any], int]:
    async def main() -> tuple[bytes, list[Any], int]:
        config = server_config(connection_id_length=4 if cid else 0)
        async with await aio.serve(echo, "127.0.0.1", 0, config) as server:
            loop = asyncio.get_running_loop()
            events, _, port = await loop.run_in_executor(None, _client, server.address, cid)
            peers = [p[1] for p in server.peers]
            return data_of(events), peers, port

    data, peers, port = asyncio.run(asyncio.wait_for(main(), 60))
    return data, peers, port


def test_rebinding_client_keeps_its_association_with_connection_ids() -> None:
    data, peers, port = _run(cid=2)
    assert data == b"echo:oneecho:two"
    assert peers == [port]  # the association now lives at the new address only


def test_without_connection_ids_the_new_port_is_a_stranger() -> None:
    data, _, _ = _run(cid=0)
    assert data == b"echo:one"  # "two" from the new port reached no association
