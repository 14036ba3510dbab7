"""The ServerConfig limits in the asyncio servers, over loopback (issue 10 part 1): the
handshake deadline, the idle timeout and the cap on established associations (DTLS 1.2),
and the same with the per-address limit for TLS 1.3 over TCP. The admission table itself is
tested in test_admission.py, the floods in test_interop_halfopen.py."""

from __future__ import annotations

import asyncio
import os
import socket
import time
from contextlib import suppress

import pytest
from builders import client_hello, datagram, with_cookie
from helpers import client_config, eventually, server_config
from test_dtls12_aio import configs, echo

from dtlsgate import Listener, connect_tls, serve_tls
from dtlsgate.connection.datagram13 import DatagramClientConnection
from dtlsgate.connection.stream import ClientConnection
from dtlsgate.errors import StateError
from dtlsgate.events import ConnectionClosed
from dtlsgate.io import aio
from dtlsgate.io.aio_tls import limits_of
from dtlsgate.wire.enums import AlertDescription

WAIT = 10.0  # bound on every wait; the limits below are a fraction of a second


async def half_open(port: int) -> socket.socket:
    """A client that passes the cookie exchange and then says nothing more."""
    loop = asyncio.get_running_loop()
    sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    sock.bind(("127.0.0.1", 0))
    sock.setblocking(False)
    first = datagram(client_hello(random=os.urandom(32)))
    await loop.sock_sendto(sock, first, ("127.0.0.1", port))
    reply = await asyncio.wait_for(loop.sock_recv(sock, 2048), WAIT)
    cookie = reply[28 : 28 + reply[27]]
    await loop.sock_sendto(sock, with_cookie(first, cookie), ("127.0.0.1", port))
    return sock


RETRANSMISSION = 1.0  # seconds: the first retransmission timeout of a DTLS 1.2 flight


async def read_up_to_hello_verify(sock: socket.socket, port: int) -> list[bytes]:
    """Send a new ClientHello (no cookie) from ``sock`` and read up to the server's
    HelloVerifyRequest: the datagrams the server sent ``sock`` before it, in order (one
    server socket, read and written in order by its loop)."""
    loop = asyncio.get_running_loop()
    await loop.sock_sendto(sock, datagram(client_hello(random=os.urandom(32))), ("127.0.0.1", port))
    before = []
    while (data := await asyncio.wait_for(loop.sock_recv(sock, 4096), WAIT))[13] != 3:
        before.append(data)
    return before


def test_dtls_handshake_past_its_deadline_is_abandoned_without_a_word() -> None:
    async def main() -> None:
        server_cfg, _ = configs()
        server_cfg.handshake_timeout = 0.4
        async with await aio.serve(echo, "127.0.0.1", 0, server_cfg) as server:
            sock = await half_open(server.address[1])
            # Admitted, then expired: waited for at the end, not seen in between (a loop held
            # 0.4 s runs the expiry before this coroutine's next look at the count of
            # handshakes in progress, which then never reads 1).
            await eventually(lambda: server.admission.expired == 1, WAIT)
            expired_at = asyncio.get_running_loop().time()
            assert server.handshakes_in_progress == 0 and not server.peers
            # The flight was sent once; its retransmission, due 1 s after it (before the
            # expiry), never comes. Shown by events, not by a wall-clock window of silence
            # (a loop stalled past both its end and the retransmission's time ran both
            # timers at once, and the read ended before the datagram was looked for): a
            # timer on the server's own loop due after the retransmission's (which runs
            # first), then a ClientHello whose HelloVerifyRequest comes after anything
            # the server sent before it.
            await asyncio.sleep(
                expired_at + RETRANSMISSION + 0.1 - asyncio.get_running_loop().time()
            )
            sent = await read_up_to_hello_verify(sock, server.address[1])
            # The flight's first datagram opens with the ServerHello; a resent flight would too.
            assert sent and sum(d[13] == 2 for d in sent) == 1 and sent[0][13] == 2, sent
            sock.close()

    asyncio.run(asyncio.wait_for(main(), 60))


class SkewedLoop(asyncio.SelectorEventLoop):
    """asyncio's loop with a clock the test moves ahead (``skew``): the timers due by then
    run at once, and a loaded machine's stalls of a second or two are nothing against the
    minutes skipped."""

    skew = 0.0

    def time(self) -> float:
        return super().time() + self.skew


async def settled(server: aio.DtlsServer) -> None:
    """Wait until every association of ``server`` has nothing outstanding (no timer: each
    flight acknowledged, no ACK of its own due), so that no datagram its client sent is
    still to be read when the test moves the clock. The client's last ACK (DTLS 1.3, of the
    server's NewSessionTicket) is sent before its echo arrives, but its loop may run the
    reader of that echo before the server's reads the ACK (Python 3.13 does): read after
    the skew, it would be the association's last datagram."""
    await eventually(
        lambda: all(stream.connection.get_timer() is None for stream in server.peers.values()),
        WAIT,
    )


def test_dtls_idle_association_is_closed() -> None:
    """On the loop's clock, moved past ``idle_timeout`` by the test (`SkewedLoop`): with a
    real 0.5 s the association could be closed before the test looked at it, on a machine
    loaded enough to hold the test that long between the echo and its check."""
    idle_timeout = 100.0

    async def main() -> None:
        loop = asyncio.get_running_loop()
        assert isinstance(loop, SkewedLoop)
        server_cfg, client_cfg = configs()
        server_cfg.idle_timeout = idle_timeout
        async with await aio.serve(echo, "127.0.0.1", 0, server_cfg) as server:
            stream = await aio.connect(*server.address, client_cfg, timeout=WAIT)
            stream.send(b"x")
            assert await asyncio.wait_for(stream.recv(), WAIT) == b"echo:x"
            assert server.associations == 1
            await settled(server)
            loop.skew += 1.2 * idle_timeout
            # Then nothing: the server closes with close_notify, which ends our recv().
            assert await asyncio.wait_for(stream.recv(), WAIT) == b""
            await eventually(lambda: server.associations == 0, WAIT)
            assert server.idle_closed == 1
            stream.close()

    with asyncio.Runner(loop_factory=SkewedLoop) as runner:
        runner.run(main())  # each wait bounded by WAIT (an outer bound would see the skew)


def test_dtls_idle_timeout_closes_the_idle_associations_and_only_them() -> None:
    idle_timeout = 100.0

    async def main() -> None:
        loop = asyncio.get_running_loop()
        assert isinstance(loop, SkewedLoop)
        server_cfg, client_cfg = configs()
        server_cfg.idle_timeout = idle_timeout
        async with await aio.serve(echo, "127.0.0.1", 0, server_cfg) as server:
            streams = [
                await aio.connect(*server.address, client_cfg, timeout=WAIT) for _ in range(12)
            ]
            active, idle = streams[::2], streams[1::2]

            async def exchange(group: list[aio.DtlsStream]) -> None:
                for stream in group:
                    stream.send(b"x")
                for stream in group:
                    assert await asyncio.wait_for(stream.recv(), WAIT) == b"echo:x"

            await exchange(streams)
            await eventually(lambda: server.associations == 12, WAIT)
            await settled(server)
            loop.skew += 0.6 * idle_timeout
            await exchange(active)
            # The idle ones heard nothing for 1.2 idle_timeout, the active ones for 0.6.
            await settled(server)
            loop.skew += 0.6 * idle_timeout
            for stream in idle:
                assert await asyncio.wait_for(stream.recv(), WAIT) == b""
            assert server.idle_closed == 6 and server.associations == 6
            await exchange(active)
            for stream in streams:
                stream.close()
            await eventually(lambda: server.associations == 0, WAIT)
            assert server.idle_closed == 6

    with asyncio.Runner(loop_factory=SkewedLoop) as runner:
        runner.run(main())  # each wait bounded by WAIT (an outer bound would see the skew)


def test_dtls_admits_are_refused_at_max_associations() -> None:
    async def main() -> None:
        server_cfg, client_cfg = configs()
        server_cfg.max_associations = 1
        async with await aio.serve(echo, "127.0.0.1", 0, server_cfg) as server:
            first = await aio.connect(*server.address, client_cfg, timeout=WAIT)
            # The second client's cookie exchange passes, its admit is refused: waited for
            # as an event (a connect given 1.5 s to fail ended before the server had read
            # its ClientHello when the loop was held that long), the connect then cancelled.
            second = asyncio.ensure_future(aio.connect(*server.address, client_cfg, timeout=WAIT))
            await eventually(lambda: server.admits_refused >= 1 or second.done(), WAIT)
            assert not second.done() and server.associations == 1
            second.cancel()
            with suppress(asyncio.CancelledError):
                await second
            first.close()
            await eventually(lambda: server.associations == 0, WAIT)
            second = await aio.connect(*server.address, client_cfg, timeout=WAIT)
            second.close()

    asyncio.run(asyncio.wait_for(main(), 60))


async def tls_echo(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    while data := await reader.read(65536):
        writer.write(b"echo:" + data)
        await writer.drain()
    writer.close()


def test_tls_per_address_limit_evicts_the_oldest_connection_in_progress() -> None:
    """Without ``stateless`` every connection not yet established counts: the third from
    one address ends the first (the server closes it), not itself."""

    async def main() -> None:
        cfg = server_config(max_handshakes=8, max_handshakes_per_address=2)
        server = await serve_tls(tls_echo, "127.0.0.1", 0, cfg)
        port = server.sockets[0].getsockname()[1]
        limits = limits_of(server)
        conns = [await asyncio.open_connection("127.0.0.1", port) for _ in range(3)]
        await eventually(lambda: limits.admission.evicted_per_address == 1, WAIT)
        assert await asyncio.wait_for(conns[0][0].read(), WAIT) == b""  # closed by the server
        assert limits.handshakes_in_progress == 2
        # The newest one still completes a handshake... as does a client arriving now.
        reader, writer = await connect_tls("127.0.0.1", port, client_config())
        writer.write(b"hi")
        assert await asyncio.wait_for(reader.read(100), WAIT) == b"echo:hi"
        writer.close()
        for _, w in conns:
            w.close()
        server.close()

    asyncio.run(asyncio.wait_for(main(), 60))


@pytest.mark.parametrize("stateless", [False, True])
def test_tls_idle_timeout_and_max_associations(stateless: bool) -> None:
    """The idle timeout on the loop's clock, moved past it by the test (`SkewedLoop`): with
    a real 0.5 s, a loaded machine could hold the test that long before the second client
    came, and the first, closed as idle by then, no longer held the one place."""
    idle_timeout = 100.0

    async def main() -> None:
        loop = asyncio.get_running_loop()
        assert isinstance(loop, SkewedLoop)
        cfg = server_config(stateless=stateless, idle_timeout=idle_timeout, max_associations=1)
        server = await serve_tls(tls_echo, "127.0.0.1", 0, cfg)
        port = server.sockets[0].getsockname()[1]
        limits = limits_of(server)
        reader, writer = await connect_tls("127.0.0.1", port, client_config())
        writer.write(b"hi")
        assert await asyncio.wait_for(reader.read(100), WAIT) == b"echo:hi"
        # At the cap, a second client is closed before its handshake completes.
        with pytest.raises((ConnectionError, OSError)):
            await connect_tls("127.0.0.1", port, client_config(), handshake_timeout=WAIT)
        assert limits.admits_refused == 1
        loop.skew += 1.2 * idle_timeout
        # The first, idle, is closed with close_notify.
        assert await asyncio.wait_for(reader.read(100), WAIT) == b""
        await eventually(lambda: limits.associations == 0, WAIT)
        assert limits.idle_closed == 1
        writer.close()
        server.close()

    with asyncio.Runner(loop_factory=SkewedLoop) as runner:
        runner.run(main())  # each wait bounded by WAIT (an outer bound would see the skew)


@pytest.mark.parametrize("stateless", [False, True])
def test_tls_close_all_closes_every_connection_so_the_server_can_stop(stateless: bool) -> None:
    """``limits_of(server).close_all()``: close_notify to the established connections (the
    client reads a clean end of stream), and a connection still in its handshake (here one
    that never sent a byte) closed and reported as failed. From Python 3.12.1 on, asyncio's
    ``wait_closed`` waits for every connection; with close_all it returns at once."""

    async def main() -> None:
        failures: list[BaseException] = []
        cfg = server_config(stateless=stateless)
        server = await serve_tls(
            tls_echo, "127.0.0.1", 0, cfg, on_handshake_failure=failures.append
        )
        port = server.sockets[0].getsockname()[1]
        limits = limits_of(server)
        reader, writer = await connect_tls("127.0.0.1", port, client_config())
        writer.write(b"hi")
        assert await asyncio.wait_for(reader.read(100), WAIT) == b"echo:hi"
        silent_reader, silent_writer = await asyncio.open_connection("127.0.0.1", port)
        await eventually(lambda: limits.connections == 2, WAIT)
        limits.close_all()
        assert await asyncio.wait_for(reader.read(100), WAIT) == b""  # close_notify
        assert await asyncio.wait_for(silent_reader.read(100), WAIT) == b""
        assert [type(exc) for exc in failures] == [ConnectionError], failures
        server.close()
        await asyncio.wait_for(server.wait_closed(), WAIT)
        assert limits.connections == limits.associations == limits.handshakes_in_progress == 0
        writer.close()
        silent_writer.close()

    asyncio.run(asyncio.wait_for(main(), 60))


def test_listener_handshakes_left_to_the_application_are_bounded_per_address() -> None:
    """``accept(..., timeout=None)`` leaves the handshake to the application; a newer one
    from the same address (at ``max_handshakes_per_address``) ends the older, whose
    ``do_handshake()`` then fails instead of waiting for a client that went silent."""
    server_cfg, _ = configs()
    server_cfg.max_handshakes_per_address = 1
    listening = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    listening.bind(("127.0.0.1", 0))
    listening.settimeout(0.5)
    listener = Listener(listening, server_cfg)
    address = listening.getsockname()
    accepted = []
    clients = []
    for _ in range(2):
        client = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        client.bind(("127.0.0.1", 0))
        client.settimeout(WAIT)
        clients.append(client)
        first = datagram(client_hello(random=os.urandom(32)))
        client.sendto(first, address)
        assert listener.listen() is None  # answered with a HelloVerifyRequest
        reply = client.recv(2048)
        client.sendto(with_cookie(first, reply[28 : 28 + reply[27]]), address)
        admitted = listener.listen()
        assert admitted is not None
        accepted.append(listener.accept(*admitted, timeout=None))
    assert len(listener.admission) == 1 and listener.admission.evicted_per_address == 1
    with pytest.raises(StateError):
        accepted[0].do_handshake(timeout=WAIT)
    for sock in (*clients, listening):
        sock.close()


def test_serve_max_handshaking_overrides_the_configs_max_handshakes() -> None:
    """``serve(..., max_handshaking=1)``: one handshake in progress in all (and so per
    address); a second admitted one evicts the first."""

    async def main() -> None:
        server_cfg, _ = configs()
        assert server_cfg.max_handshakes > 1
        async with await aio.serve(echo, "127.0.0.1", 0, server_cfg, max_handshaking=1) as server:
            socks = [await half_open(server.address[1]) for _ in range(2)]
            await eventually(lambda: server.admission.evicted_per_address == 1, WAIT)
            assert server.handshakes_in_progress == 1
            for sock in socks:
                sock.close()

    asyncio.run(asyncio.wait_for(main(), 60))


async def held_dtls13_client(
    port: int,
) -> tuple[socket.socket, DatagramClientConnection, list[bytes]]:
    """A DTLS 1.3 client driven by hand until its handshake completed, its Finished flight
    held back: to the server, a handshake still in progress."""
    loop = asyncio.get_running_loop()
    address = ("127.0.0.1", port)
    sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    sock.connect(address)
    sock.setblocking(False)
    conn = DatagramClientConnection(configs()[1], address)
    conn.connect(time.time())
    for _ in range(100):
        outgoing = [datagram for datagram, _ in conn.datagrams_to_send()]
        if conn.handshake_complete:
            return sock, conn, outgoing
        for record in outgoing:
            await loop.sock_sendall(sock, record)
        data = await asyncio.wait_for(loop.sock_recv(sock, 65536), WAIT)
        conn.receive(data, address, time.time())
    raise AssertionError("no handshake in 100 datagrams")


def test_dtls_cap_reached_while_a_handshake_was_in_progress() -> None:
    """At ``max_associations`` when a handshake admitted earlier completes: that
    association is refused (counted in ``admits_refused``) and closed with close_notify."""

    async def main() -> None:
        loop = asyncio.get_running_loop()
        server_cfg, client_cfg = configs()
        server_cfg.max_associations = 1
        async with await aio.serve(echo, "127.0.0.1", 0, server_cfg) as server:
            sock, held, finished = await held_dtls13_client(server.address[1])
            assert server.handshakes_in_progress == 1
            first = await aio.connect(*server.address, client_cfg, timeout=WAIT)
            first.send(b"x")
            assert await asyncio.wait_for(first.recv(), WAIT) == b"echo:x"
            assert server.associations == 1
            for record in finished:
                await loop.sock_sendall(sock, record)
            await eventually(lambda: server.admits_refused == 1, WAIT)
            closed = []
            for _ in range(20):
                data = await asyncio.wait_for(loop.sock_recv(sock, 65536), WAIT)
                held.receive(data, None, time.time())
                while (event := held.next_event()) is not None:
                    if isinstance(event, ConnectionClosed):
                        closed.append(event)
                if closed:
                    break
            assert closed and closed[0].alert == AlertDescription.close_notify, closed
            assert server.associations == 1 and server.handshakes_in_progress == 0
            first.send(b"y")
            assert await asyncio.wait_for(first.recv(), WAIT) == b"echo:y"
            first.close()
            sock.close()

    asyncio.run(asyncio.wait_for(main(), 60))


def test_tls_cap_reached_while_a_handshake_was_in_progress() -> None:
    """The same over TLS: the connection whose Finished comes at the cap is closed with
    close_notify and counted in ``admits_refused``."""

    async def main() -> None:
        cfg = server_config(max_associations=1)
        server = await serve_tls(tls_echo, "127.0.0.1", 0, cfg)
        port = server.sockets[0].getsockname()[1]
        limits = limits_of(server)
        held = ClientConnection(client_config())
        held.start()
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        writer.write(held.data_to_send())
        for _ in range(100):
            if held.handshake_complete:
                break
            held.receive_data(await asyncio.wait_for(reader.read(65536), WAIT), time.time())
        assert held.handshake_complete and limits.handshakes_in_progress == 1
        first_reader, first_writer = await connect_tls("127.0.0.1", port, client_config())
        first_writer.write(b"hi")
        assert await asyncio.wait_for(first_reader.read(100), WAIT) == b"echo:hi"
        assert limits.associations == 1
        writer.write(held.data_to_send())  # the held Finished
        rest = await asyncio.wait_for(reader.read(), WAIT)  # to the end: the server closed
        held.receive_data(rest, time.time())
        events = []
        while (event := held.next_event()) is not None:
            events.append(event)
        assert events[-1] == ConnectionClosed(), events
        assert limits.admits_refused == 1 and limits.associations == 1
        first_writer.write(b"again")
        assert await asyncio.wait_for(first_reader.read(100), WAIT) == b"echo:again"
        first_writer.close()
        writer.close()
        server.close()

    asyncio.run(asyncio.wait_for(main(), 60))
