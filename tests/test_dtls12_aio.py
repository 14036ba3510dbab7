"""asyncio serve/connect over loopback UDP: many concurrent peers on one socket."""

from __future__ import annotations

import asyncio
import importlib.util
import weakref
from typing import Any

import pytest
from helpers import CLIENT, credentials, cycle_collector_off, eventually, make_pair
from helpers import client_config as helper_client_config
from helpers import server_config as helper_server_config

from dtlsgate.config import ClientConfig, ServerConfig
from dtlsgate.crypto.certs import load_certificate_chain, load_private_key
from dtlsgate.io import aio


async def echo(stream: aio.DtlsStream) -> None:
    while data := await stream.recv():
        stream.send(b"echo:" + data)


def configs() -> tuple[ServerConfig, ClientConfig]:
    cert, key = credentials("ecdsa-p256")
    server = ServerConfig(
        certificate_chain=load_certificate_chain(cert), private_key=load_private_key(key)
    )
    # The test credentials are valid from NOW - 1 day (2027): verify without a time check.
    client = ClientConfig(insecure=True)
    return server, client


def test_serve_and_connect_many_peers() -> None:
    async def main() -> list[bytes]:
        server_config, client_config = configs()
        async with await aio.serve(echo, "127.0.0.1", 0, server_config) as server:
            host, port = server.address

            async def one(i: int) -> bytes:
                stream = await aio.connect(host, port, client_config, timeout=20)
                try:
                    stream.send(b"peer %d" % i)
                    return await asyncio.wait_for(stream.recv(), 10)
                finally:
                    stream.close()

            return await asyncio.gather(*(one(i) for i in range(20)))

    replies = asyncio.run(asyncio.wait_for(main(), 60))
    assert replies == [b"echo:peer %d" % i for i in range(20)]


def test_peer_close_notify_ends_the_handler() -> None:
    done = asyncio.Event

    async def main() -> bytes:
        server_config, client_config = configs()
        finished: asyncio.Event = done()

        async def handler(stream: aio.DtlsStream) -> None:
            await echo(stream)
            finished.set()

        async with await aio.serve(handler, "127.0.0.1", 0, server_config) as server:
            stream = await aio.connect(*server.address, client_config, timeout=20)
            stream.send(b"x")
            reply = await asyncio.wait_for(stream.recv(), 10)
            stream.close()
            await asyncio.wait_for(finished.wait(), 10)
            assert not server.peers
            return reply

    assert asyncio.run(main()) == b"echo:x"


def test_many_peers_on_uvloop_through_aio_run() -> None:
    """``aio.run`` (what the CLI uses) runs on uvloop when it is installed; `make test`
    installs it (extra [fast]), so the uvloop datagram path is exercised too."""
    if importlib.util.find_spec("uvloop") is None:
        pytest.skip("uvloop is not installed (make test installs the [fast] extra)")

    async def main() -> tuple[str, list[bytes]]:
        loop_module = type(asyncio.get_running_loop()).__module__
        server_config, client_config = configs()
        async with await aio.serve(echo, "127.0.0.1", 0, server_config) as server:
            host, port = server.address

            async def one(i: int) -> bytes:
                stream = await aio.connect(host, port, client_config, timeout=20)
                try:
                    stream.send(b"uv %d" % i)
                    return await asyncio.wait_for(stream.recv(), 10)
                finally:
                    stream.close()

            return loop_module, list(await asyncio.gather(*(one(i) for i in range(8))))

    loop_module, replies = aio.run(asyncio.wait_for(main(), 60))
    assert loop_module.startswith("uvloop")
    assert replies == [b"echo:uv %d" % i for i in range(8)]


def _established_stream(loop: asyncio.AbstractEventLoop) -> tuple[aio.DtlsStream, Any]:
    """A DtlsStream around an established server connection (in memory, no socket), and
    a function that has the client send one record into it."""
    pair = make_pair(helper_server_config(), helper_client_config())
    assert pair.run() and pair.completed()
    stream = aio.DtlsStream(pair.server, CLIENT, lambda *_: None, loop)

    def deliver(data: bytes) -> None:
        pair.client.send(data)
        for datagram, _ in pair.client.datagrams_to_send():
            stream.datagram_received(datagram)

    return stream, deliver


def test_recv_cancelled_after_its_record_came_passes_the_record_on() -> None:
    """A record that woke a recv() cancelled before it ran goes to the next recv()."""

    async def main() -> bytes:
        stream, deliver = _established_stream(asyncio.get_running_loop())
        first = asyncio.create_task(stream.recv())
        second = asyncio.create_task(stream.recv())
        await asyncio.sleep(0)  # both wait, the first first
        deliver(b"one")
        first.cancel()
        return await asyncio.wait_for(second, 10)

    assert asyncio.run(main()) == b"one"


def test_records_past_the_queue_bound_dropped_then_the_close_read() -> None:
    """A handler that does not read gets MAX_QUEUED_RECORDS records, then b"" once closed."""

    async def main() -> list[bytes]:
        stream, deliver = _established_stream(asyncio.get_running_loop())
        for i in range(aio.MAX_QUEUED_RECORDS + 5):
            deliver(b"%d" % i)
        stream.close()
        return [
            await asyncio.wait_for(stream.recv(), 10) for _ in range(aio.MAX_QUEUED_RECORDS + 2)
        ]

    got = asyncio.run(main())
    assert got == [b"%d" % i for i in range(aio.MAX_QUEUED_RECORDS)] + [b"", b""]


def test_serve_echo_stops_at_a_close_that_came_with_data() -> None:
    """`dtlsgate serve`'s echo handler: a peer that sends a record and its close_notify at
    once (``echo | openssl s_client``) ends the handler cleanly, not with a StateError from
    echoing into the closed association."""
    from dtlsgate.io import cli

    async def main() -> list[BaseException]:
        server_config, client_config = configs()
        errors: list[BaseException] = []
        finished = asyncio.Event()

        async def handler(stream: aio.DtlsStream) -> None:
            try:
                await cli._echo(stream)
            except Exception as exc:  # what the server's task would have lost
                errors.append(exc)
            finished.set()

        async with await aio.serve(handler, "127.0.0.1", 0, server_config) as server:
            stream = await aio.connect(*server.address, client_config, timeout=20)
            stream.send(b"x")
            stream.close()  # both datagrams leave before the server's handler runs
            await asyncio.wait_for(finished.wait(), 10)
        return errors

    assert asyncio.run(asyncio.wait_for(main(), 30)) == []


@pytest.mark.parametrize("loop", ["asyncio", "uvloop"])
def test_a_finished_association_is_freed_without_the_cycle_collector(loop: str) -> None:
    """Once its handler returned, the server's stream (and with it the connection, its
    keys and handshake state) is freed by reference counting alone: a reference cycle
    (say a send callback closing over the stream) would leave every association to the
    cyclic collector, which at many handshakes a second costs the server CPU. The same for
    the client's once closed, on both loops (on uvloop both read through its datagram
    transport)."""
    if loop == "uvloop" and importlib.util.find_spec("uvloop") is None:
        pytest.skip("uvloop is not installed (make test installs the [fast] extra)")

    async def main() -> tuple[bool, bool, bool]:
        server_config, client_config = configs()
        ended = asyncio.Event()
        streams: list[weakref.ref[aio.DtlsStream]] = []

        async def handler(stream: aio.DtlsStream) -> None:
            streams.append(weakref.ref(stream))
            await echo(stream)
            ended.set()

        async with await aio.serve(handler, "127.0.0.1", 0, server_config) as server:
            client = await aio.connect(*server.address, client_config, timeout=20)
            client.send(b"x")
            await asyncio.wait_for(client.recv(), 10)
            client.close()
            client_freed = weakref.ref(client)
            del client
            await asyncio.wait_for(ended.wait(), 10)
            await eventually(lambda: not server._tasks)  # a few loop turns later
            return not server._tasks, streams[0]() is None, client_freed() is None

    with cycle_collector_off():
        run = aio.run if loop == "uvloop" else asyncio.run
        assert run(main()) == (True, True, True)
