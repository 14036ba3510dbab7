"""DTLS 1.3 through the faces over loopback UDP: asyncio ``serve``/``connect`` and the
blocking ``Listener``/``connect``, with the same event types as DTLS 1.2; both versions on
one port, each client getting the version it asked for."""

from __future__ import annotations

import asyncio
import socket
import threading
import weakref

import pytest
from helpers import credentials, cycle_collector_off, eventually

from dtlsgate.config import ClientConfig, ServerConfig
from dtlsgate.crypto.certs import load_certificate_chain, load_private_key
from dtlsgate.errors import DtlsgateError
from dtlsgate.events import HandshakeCompleted
from dtlsgate.gate.datagram import Dtls13Admit
from dtlsgate.io import aio
from dtlsgate.io.blocking import connect
from dtlsgate.io.listener import Listener
from dtlsgate.wire.enums import ProtocolVersion

DTLS12, DTLS13 = ProtocolVersion.DTLS12, ProtocolVersion.DTLS13


def server_config(**kwargs: object) -> ServerConfig:
    cert, key = credentials("ecdsa-p256")
    return ServerConfig(
        certificate_chain=load_certificate_chain(cert),
        private_key=load_private_key(key),
        **kwargs,  # type: ignore[arg-type]
    )


async def echo(stream: aio.DtlsStream) -> None:
    while data := await stream.recv():
        stream.send(b"echo:" + data)


@pytest.mark.parametrize(
    ("offered", "expected"),
    [((0xFEFC, 0xFEFD), DTLS13), ((0xFEFC,), DTLS13), ((0xFEFD,), DTLS12)],
)
def test_asyncio_one_port_both_versions(offered: tuple[int, ...], expected: int) -> None:
    async def main() -> tuple[HandshakeCompleted | None, bytes]:
        async with await aio.serve(echo, "127.0.0.1", 0, server_config()) as server:
            host, port = server.address
            client = ClientConfig(insecure=True, dtls_versions=offered)
            stream = await aio.connect(host, port, client, timeout=20)
            try:
                stream.send(b"ping")
                return stream.handshake_info, await asyncio.wait_for(stream.recv(), 10)
            finally:
                stream.close()

    info, reply = asyncio.run(asyncio.wait_for(main(), 60))
    assert isinstance(info, HandshakeCompleted) and info.version == expected
    assert reply == b"echo:ping"


def test_asyncio_client_falls_back_to_a_dtls12_server() -> None:
    async def main() -> tuple[HandshakeCompleted | None, bytes]:
        config = server_config(dtls_versions=(0xFEFD,))
        async with await aio.serve(echo, "127.0.0.1", 0, config) as server:
            host, port = server.address
            stream = await aio.connect(host, port, ClientConfig(insecure=True), timeout=20)
            try:
                stream.send(b"ping")
                return stream.handshake_info, await asyncio.wait_for(stream.recv(), 10)
            finally:
                stream.close()

    info, reply = asyncio.run(asyncio.wait_for(main(), 60))
    assert info is not None and info.version == DTLS12
    assert reply == b"echo:ping"


def test_blocking_listener_and_connect_dtls13() -> None:
    sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    sock.bind(("127.0.0.1", 0))
    sock.settimeout(10)
    port = sock.getsockname()[1]
    listener = Listener(sock, server_config())
    served: list[object] = []

    def serve() -> None:
        admitted = None
        for _ in range(50):
            admitted = listener.listen()
            if admitted is not None:
                break
        assert admitted is not None
        peer, admit = admitted
        served.append(admit)
        with listener.accept(peer, admit, timeout=10) as dtls:
            dtls.send(b"echo:" + dtls.recv(timeout=10))
            dtls.recv(timeout=5)  # until the client's close_notify

    thread = threading.Thread(target=serve, daemon=True)
    thread.start()
    try:
        with connect("127.0.0.1", port, ClientConfig(insecure=True), timeout=15) as conn:
            conn.send(b"ping")
            assert conn.recv(timeout=10) == b"echo:ping"
            assert conn.handshake_info is not None
            assert conn.handshake_info.version == DTLS13
        thread.join(15)
    finally:
        sock.close()
    assert isinstance(served[0], Dtls13Admit)


@pytest.mark.parametrize("version", [DTLS12, DTLS13])
def test_asyncio_finished_associations_are_freed_without_the_cycle_collector(
    version: int,
) -> None:
    """Once closed, the client's stream, and once its handler returned, the server's (each
    with its connection), are freed by reference counting alone: a reference cycle (a close
    or send callback closing over the stream) would leave every association, with its keys
    and handshake state, to the cyclic collector."""

    async def main() -> list[bool]:
        watched: list[weakref.ref[aio.DtlsStream]] = []
        ended = asyncio.Event()

        async def handler(stream: aio.DtlsStream) -> None:
            watched.append(weakref.ref(stream))
            await echo(stream)
            ended.set()

        async with await aio.serve(handler, "127.0.0.1", 0, server_config()) as server:
            host, port = server.address
            client = ClientConfig(insecure=True, dtls_versions=(version,))
            stream = await aio.connect(host, port, client, timeout=20)
            stream.send(b"ping")
            assert await asyncio.wait_for(stream.recv(), 10) == b"echo:ping"
            stream.close()
            watched.append(weakref.ref(stream))
            del stream
            await asyncio.wait_for(ended.wait(), 10)
            await eventually(lambda: not server._tasks)  # a few loop turns later
            return [w() is None for w in watched]

    with cycle_collector_off():
        assert asyncio.run(asyncio.wait_for(main(), 30)) == [True, True]


def failing_configs(version: int, failure: str) -> tuple[ServerConfig, ClientConfig]:
    """A handshake that fails: ``cert``, the client does not trust the server's certificate
    (the client fails, the server gets its alert); ``psk``, the client's PSK is not the
    server's (the server fails, the client gets its alert): in DTLS 1.2 an identity the server
    does not know, in DTLS 1.3 another key (its binder does not verify)."""
    if failure == "cert":
        return server_config(), ClientConfig(server_name="other.example", dtls_versions=(version,))
    identity, key = (b"stranger", b"k" * 16) if version == DTLS12 else (b"client", b"x" * 16)
    client = ClientConfig(psk_identity=identity, psk=key, dtls_versions=(version,))
    return ServerConfig(psk={b"client": b"k" * 16}), client


@pytest.mark.parametrize("failure", ["cert", "psk"])
@pytest.mark.parametrize("version", [DTLS12, DTLS13])
def test_asyncio_failed_handshakes_are_freed_without_the_cycle_collector(
    version: int, failure: str
) -> None:
    """A handshake that failed leaves nothing to the cyclic collector either, on the side
    that failed or on the side that got the alert: the error, kept for whoever waits on the
    handshake, must not keep frames that hold the stream (a cycle through its traceback)."""

    async def main() -> list[bool]:
        server_config, client_config = failing_configs(version, failure)
        watched: list[weakref.ref[object]] = []
        async with await aio.serve(echo, "127.0.0.1", 0, server_config) as server:
            connecting = asyncio.ensure_future(
                aio.connect(*server.address, client_config, timeout=10)
            )
            for _ in range(100_000):  # the server's stream, from its admission to its failure
                if server.peers or connecting.done():
                    break
                await asyncio.sleep(0)
            watched.extend(weakref.ref(stream) for stream in server.peers.values())
            with pytest.raises((DtlsgateError, ConnectionError)) as failed:
                await connecting
            watched.append(weakref.ref(failed.value))
            del connecting, failed
            # The server's side fails a loop turn or two later.
            await eventually(lambda: server.handshakes_failed and not server.handshakes_in_progress)
            await asyncio.sleep(0)  # the failed handshake's task ends
            assert server.handshakes_failed == 1
        return [w() is None for w in watched]

    with cycle_collector_off():
        assert asyncio.run(asyncio.wait_for(main(), 30)) == [True, True]
