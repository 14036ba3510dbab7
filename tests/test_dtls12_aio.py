"""asyncio serve/connect over loopback UDP: many concurrent peers on one socket."""

from __future__ import annotations

import asyncio
import importlib.util
import logging
import re
import signal
import socket
import threading
import weakref
from typing import Any

import pytest
from helpers import CLIENT, credentials, cycle_collector_off, eventually, make_pair
from helpers import client_config as helper_client_config
from helpers import server_config as helper_server_config
from peers import free_udp_port

from dtlsgate.config import ClientConfig, ServerConfig
from dtlsgate.crypto.certs import load_certificate_chain, load_private_key
from dtlsgate.errors import ProtocolError, UsageError
from dtlsgate.io import aio
from dtlsgate.io.progress import format_peer
from dtlsgate.wire.enums import AlertDescription


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


def test_each_handshake_is_logged_at_info_by_both_ends(caplog: pytest.LogCaptureFixture) -> None:
    """One INFO line per completed handshake on the ``dtlsgate`` logger (README): the peer,
    the version, the suite, full or resumed; the server names the client, the client the
    server."""

    async def main() -> tuple[str, str]:
        server_config, client_config = configs()
        clients: list[str] = []

        async def handler(stream: aio.DtlsStream) -> None:
            clients.append(format_peer(stream.peer))
            await echo(stream)

        async with await aio.serve(handler, "127.0.0.1", 0, server_config) as server:
            stream = await aio.connect(*server.address, client_config, timeout=20)
            stream.send(b"x")
            assert await asyncio.wait_for(stream.recv(), 10) == b"echo:x"
            stream.close()
            return format_peer(server.address), clients[0]

    with caplog.at_level(logging.INFO, logger="dtlsgate"):
        server, client = asyncio.run(asyncio.wait_for(main(), 30))
    lines = sorted(r.getMessage() for r in caplog.records if r.name == "dtlsgate")
    shape = r"^(127\.0\.0\.1:\d+): DTLS 1\.3 TLS_AES_128_GCM_SHA256, full handshake \d+\.\d ms$"
    peers = sorted(m.group(1) for line in lines if (m := re.match(shape, line)))
    assert len(lines) == 2 and peers == sorted([server, client]), lines


def test_connection_id_calls_on_a_dtls12_association_are_refused() -> None:
    """A server's DTLS 1.2 association has no connection IDs to issue (RFC 9147 §9 is DTLS
    1.3): each call says so, and the association goes on."""

    async def main() -> list[str]:
        server_config, client_config = configs()
        client_config.dtls_versions = (0xFEFD,)
        refused: list[str] = []

        async def handler(stream: aio.DtlsStream) -> None:
            calls = [
                stream.new_connection_ids,
                stream.request_connection_ids,
                stream.use_next_connection_id,
            ]
            for call in calls:
                with pytest.raises(UsageError) as caught:
                    call()
                refused.append(str(caught.value))
            await echo(stream)

        async with await aio.serve(handler, "127.0.0.1", 0, server_config) as server:
            stream = await aio.connect(*server.address, client_config, timeout=20)
            try:
                stream.send(b"still fine")
                assert await asyncio.wait_for(stream.recv(), 10) == b"echo:still fine"
            finally:
                stream.close()
        return refused

    refused = asyncio.run(asyncio.wait_for(main(), 30))
    names = ("new_connection_ids()", "request_connection_ids()", "use_next_connection_id()")
    assert refused == [f"{name} needs DTLS 1.3 (this association is DTLS 1.2)" for name in names]


def test_serve_on_a_socket_of_the_callers_and_with_reuse_port() -> None:
    """``serve(sock=...)`` serves on the caller's socket (host and port are not used);
    ``reuse_port=True`` lets a second server bind the same port."""

    async def main() -> None:
        server_config, client_config = configs()
        sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        sock.bind(("127.0.0.1", 0))
        async with await aio.serve(echo, "127.0.0.2", 1, server_config, sock=sock) as server:
            assert server.address == sock.getsockname()
            stream = await aio.connect(*server.address, client_config, timeout=20)
            stream.send(b"x")
            assert await asyncio.wait_for(stream.recv(), 10) == b"echo:x"
            stream.close()
        assert sock.fileno() == -1  # the server closed it
        port = free_udp_port()
        async with (
            await aio.serve(echo, "127.0.0.1", port, server_config, reuse_port=True) as first,
            await aio.serve(echo, "127.0.0.1", port, server_config, reuse_port=True) as second,
        ):
            assert first.address == second.address == ("127.0.0.1", port)

    asyncio.run(asyncio.wait_for(main(), 30))


def test_connect_without_a_config_verifies_the_server_certificate() -> None:
    """The client verifies by default (README): without a config, against the system's CAs
    and the host name given, so a self-signed server is refused."""

    async def main() -> None:
        server_config, _ = configs()
        async with await aio.serve(echo, "127.0.0.1", 0, server_config) as server:
            with pytest.raises(ProtocolError) as caught:
                await aio.connect(*server.address, timeout=20)
            assert caught.value.alert == AlertDescription.unknown_ca, caught.value

    asyncio.run(asyncio.wait_for(main(), 30))


def test_until_stopped_returns_on_sigterm_and_then_blocks_the_stop_signals() -> None:
    """``until_stopped()`` (what the servers of the CLI wait in): SIGTERM ends it, and from
    then on SIGINT and SIGTERM are blocked, so a second one cannot land in the shutdown.
    The signal is raised by ``also``, which runs once the handlers are installed."""
    if threading.current_thread() is not threading.main_thread():
        pytest.skip("the loop handles signals in the main thread only")
    before = signal.pthread_sigmask(signal.SIG_BLOCK, [])

    async def raise_sigterm() -> None:
        signal.raise_signal(signal.SIGTERM)
        await asyncio.Event().wait()  # until cancelled

    try:
        asyncio.run(asyncio.wait_for(aio.until_stopped(raise_sigterm()), 10))
        blocked = signal.pthread_sigmask(signal.SIG_BLOCK, [])
    finally:
        signal.pthread_sigmask(signal.SIG_SETMASK, before)
    assert {signal.SIGINT, signal.SIGTERM} <= blocked


def test_until_stopped_returns_when_also_completes_where_signals_cannot_be_handled() -> None:
    """In a thread the loop cannot handle signals: ``until_stopped(also)`` still returns
    when ``also`` completes."""
    done: list[str] = []

    def run() -> None:
        async def main() -> None:
            also = asyncio.Event()
            asyncio.get_running_loop().call_soon(also.set)
            await aio.until_stopped(also.wait())
            done.append("returned")

        asyncio.run(asyncio.wait_for(main(), 10))

    thread = threading.Thread(target=run)
    thread.start()
    thread.join(20)
    assert done == ["returned"]
