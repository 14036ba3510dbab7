"""Connection-ID routing in the asyncio server and the blocking listener over real UDP (RFC
9147 §9, RFC 9146 §6; both share `dtlsgate.connection.routing`): a DTLS 1.3 client whose
socket changes port mid-connection (a NAT rebinding, simulated on loopback) keeps its
association, because the server routes a datagram carrying a known connection ID to its
association from any address, and the association follows the new address once a record
from there authenticates; after the server issued a new CID in a NewConnectionId, a client
that moves to a new port and to that CID keeps it too. A datagram with an unknown CID is
dropped by the gate, and one with a known CID that does not authenticate moves nothing:
neither makes state."""

from __future__ import annotations

import asyncio
import socket
import threading
import time
from collections.abc import Callable
from contextlib import suppress
from typing import Any

import pytest
from dtls13_socket import data_of, pump
from helpers import eventually, one_cpu
from test_blocking import connected
from test_dtls13_faces import echo, server_config
from test_listener import fence

from dtlsgate.config import ClientConfig
from dtlsgate.connection.datagram13 import Dtls13ClientConnection
from dtlsgate.errors import UsageError
from dtlsgate.events import HandshakeCompleted
from dtlsgate.io import aio
from dtlsgate.io.blocking import DtlsSocket
from dtlsgate.io.listener import LISTEN_BATCH, Listener
from dtlsgate.record.dtls13 import connection_id_of
from dtlsgate.wire.enums import ConnectionIdUsage


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


# ---- CIDs issued after the handshake (RFC 9147 §9 NewConnectionId) ---------------------------


def _switching_client(
    server: tuple[str, int], usage: ConnectionIdUsage, routed: Callable[[], int]
) -> tuple[bytes, bool, int]:
    """Handshake from a first socket and wait for the server's NewConnectionId; one echo;
    then a new source port and the new CID (the next spare, or the one the server made
    immediate): a second echo. The data echoed, whether the second socket's datagrams
    carried the new CID and not the first, and ``routed()`` read after the second echo,
    before our close_notify ends the association."""
    config = ClientConfig(insecure=True, dtls_versions=(0xFEFC,), connection_id_length=2)
    conn = Dtls13ClientConnection(config, server)
    events: list[Any] = []
    first, second = _udp(), _udp()
    try:
        conn.connect(time.time())
        old = b""

        def issued(_: list[Any]) -> bool:
            nonlocal old
            old = old or conn.peer_connection_id
            if usage == ConnectionIdUsage.cid_spare:
                return bool(conn.spare_connection_ids)
            return bool(old) and conn.peer_connection_id != old

        assert pump(conn, first, issued, events)
        conn.send(b"one")
        assert pump(conn, first, lambda e: b"echo:one" in data_of(e), events, seconds=10)
        first.close()  # a new path from now on
        new = conn.use_next_connection_id() if usage == ConnectionIdUsage.cid_spare else b""
        new = new or conn.peer_connection_id
        conn.send(b"two")
        sent = conn.datagrams_to_send()
        for datagram, peer in sent:
            second.sendto(datagram, peer)
        carried = {connection_id_of(d, 4) for d, _ in sent} == {new} and new != old
        pump(conn, second, lambda e: b"echo:two" in data_of(e), events, seconds=10)
        routes = routed()
        conn.close()
        for datagram, peer in conn.datagrams_to_send():
            second.sendto(datagram, peer)
        return data_of(events), carried, routes
    finally:
        first.close()
        second.close()


@pytest.mark.parametrize("usage", list(ConnectionIdUsage), ids=lambda u: u.name)
def test_new_connection_id_and_a_new_port_keep_the_association(usage: ConnectionIdUsage) -> None:
    async def issuing_echo(stream: aio.DtlsStream) -> None:
        # DtlsStream's pass-through sends it at once (and the server routes the new CID).
        (cid,) = stream.new_connection_ids(1, usage)
        assert len(cid) == 4
        await echo(stream)

    async def main() -> tuple[bytes, bool, int, int]:
        config = server_config(connection_id_length=4)
        async with await aio.serve(issuing_echo, "127.0.0.1", 0, config) as server:
            loop = asyncio.get_running_loop()
            data, carried, routed = await loop.run_in_executor(
                None, _switching_client, server.address, usage, lambda: server.routed_connection_ids
            )
            # The client's close_notify ends the association.
            await eventually(lambda: not server.associations)
            return data, carried, routed, server.routed_connection_ids

    data, carried, routed, after = asyncio.run(asyncio.wait_for(main(), 60))
    assert data == b"echo:oneecho:two"
    assert carried  # routed by the CID issued after the handshake
    # cid_spare: both CIDs stay routable; cid_immediate: the old one was retired once the
    # client acknowledged the NewConnectionId.
    assert routed == (2 if usage == ConnectionIdUsage.cid_spare else 1)
    assert after == 0  # the association ended: its CIDs left the table


def test_asyncio_streams_ask_for_and_switch_connection_ids() -> None:
    """DtlsStream's connection ID calls on an `aio.connect` client (a
    DatagramClientConnection underneath): ask the server for a spare CID, move to it, and
    the server's association keeps answering; DTLS 1.2 has none of them."""

    async def main() -> tuple[bytes, bytes, bytes, list[str]]:
        config = server_config(connection_id_length=4)
        async with await aio.serve(echo, "127.0.0.1", 0, config) as server:
            host, port = server.address
            client = ClientConfig(insecure=True, connection_id_length=2)
            stream = await aio.connect(host, port, client, timeout=10)
            first = stream.connection.connection.peer_connection_id  # type: ignore[union-attr]
            stream.request_connection_ids(1)
            # Its NewConnectionId on loopback.
            await eventually(lambda: stream.connection.connection.spare_connection_ids)  # type: ignore[union-attr]
            new = stream.use_next_connection_id()
            stream.send(b"moved")
            reply = await asyncio.wait_for(stream.recv(), 10)
            stream.close()
            refused = []
            only12 = ClientConfig(insecure=True, dtls_versions=(0xFEFD,))
            stream12 = await aio.connect(host, port, only12, timeout=10)
            for call in (
                stream12.new_connection_ids,
                stream12.request_connection_ids,
                stream12.use_next_connection_id,
            ):
                with pytest.raises(UsageError, match=r"needs DTLS 1\.3") as error:
                    call()
                refused.append(str(error.value))
            stream12.close()
            return first, new, reply, refused

    first, new, reply, refused = asyncio.run(asyncio.wait_for(main(), 60))
    assert len(new) == 4 and new != first and reply == b"echo:moved"
    assert len(refused) == 3


# ---- the blocking listener -------------------------------------------------------------------


class _BlockingEcho:
    """A `Listener` on loopback in a thread: accepts associations one after the other and
    echoes each (on the listener's socket) until it closes, or (with ``echoes``) that many
    records of the n-th association before it listens again; bounded in time."""

    def __init__(self, cid_length: int, echoes: Callable[[int], int] | None = None) -> None:
        self.echoes = echoes
        self.sock = _udp()
        self.sock.settimeout(0.2)  # listen() returns None when idle: the loop checks done
        self.listener = Listener(self.sock, server_config(connection_id_length=cid_length))
        self.address = self.sock.getsockname()
        self.served: list[DtlsSocket] = []
        self._done = threading.Event()
        self._thread = threading.Thread(target=self._serve, daemon=True)

    def _serve(self) -> None:
        deadline = time.monotonic() + 50
        while not self._done.is_set() and time.monotonic() < deadline:
            admitted = self.listener.listen()
            if admitted is None:
                continue
            dtls = self.listener.accept(*admitted)
            self.served.append(dtls)
            left = self.echoes(len(self.served) - 1) if self.echoes else -1
            while left and not self._done.is_set() and time.monotonic() < deadline:
                try:
                    data = dtls.recv(timeout=0.2)
                except TimeoutError:
                    continue
                if not data:
                    break
                dtls.send(b"echo:" + data)
                left -= 1

    def __enter__(self) -> _BlockingEcho:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._done.set()
        self._thread.join(10)
        self.sock.close()


def test_blocking_rebinding_client_keeps_its_association_with_connection_ids() -> None:
    with _BlockingEcho(4) as server:
        events, _, port = _client(server.address, 2)
        (dtls,) = server.served
        assert data_of(events) == b"echo:oneecho:two"
        assert dtls.peer[1] == port  # type: ignore[index]  # it follows the new address
        assert server.listener.routed_connection_ids == 1


def test_blocking_without_connection_ids_the_new_port_is_a_stranger() -> None:
    with _BlockingEcho(0) as server:
        events, _, _ = _client(server.address, 0)
        assert data_of(events) == b"echo:one"  # "two" from the new port reached nobody
        assert server.listener.routed_connection_ids == 0


def _stranger_client(
    server: tuple[str, int], state: Callable[[], tuple[object, ...]]
) -> tuple[bytes, list[bytes], tuple[object, ...], tuple[object, ...]]:
    """Handshake and one echo; then, from another port, a record of ours whose CID no
    association has, and one with our CID whose authentication tag is broken; then a second
    echo from the first port. The data echoed, what the other port received, and
    ``state()`` before the two datagrams and after the second echo."""
    config = ClientConfig(insecure=True, dtls_versions=(0xFEFC,), connection_id_length=2)
    conn = Dtls13ClientConnection(config, server)
    events: list[Any] = []
    first, stranger = _udp(), _udp()
    try:
        conn.connect(time.time())
        assert pump(
            conn, first, lambda e: any(isinstance(x, HandshakeCompleted) for x in e), events
        )
        conn.send(b"one")
        assert pump(conn, first, lambda e: b"echo:one" in data_of(e), events, seconds=10)
        before = state()
        conn.send(b"forged")
        ((record, _),) = conn.datagrams_to_send()
        cid = connection_id_of(record, 4)
        assert cid is not None
        unknown = record[:1] + bytes(b ^ 0xFF for b in cid) + record[5:]
        broken = record[:-1] + bytes((record[-1] ^ 1,))
        for datagram in (unknown, broken):
            stranger.sendto(datagram, server)
        # Both servers read their one socket in order: the echo of a record sent after the
        # two shows they have been judged (no wall-clock window, which a loaded server
        # outlasts before it counts the drop), and any answer to the other port was sent
        # before the echo.
        conn.send(b"two")
        pump(conn, first, lambda e: b"echo:two" in data_of(e), events, seconds=10)
        after = state()
        stranger.setblocking(False)
        got = []
        with suppress(BlockingIOError):
            got.append(stranger.recv(65535))
        return data_of(events), got, before, after
    finally:
        first.close()
        stranger.close()


def test_unknown_or_forged_connection_ids_make_no_state_in_either_server() -> None:
    """The unknown CID is the gate's (one more drop: a DTLS 1.3 record is no ClientHello);
    the broken record reaches the association by its CID and is dropped there (RFC 9147
    §4.5.3), the association staying at its address. Nothing answers the other port."""

    def blocking() -> tuple[bytes, list[bytes], tuple[object, ...], tuple[object, ...]]:
        with _BlockingEcho(4) as server:
            listener = server.listener

            def state() -> tuple[object, ...]:
                peers = [d.peer for d in server.served]
                drops = sum(listener.gate.drops.values())
                return peers, drops, listener.routed_connection_ids, len(listener.admission)

            return _stranger_client(server.address, state)

    async def asyncio_server() -> tuple[bytes, list[bytes], tuple[object, ...], tuple[object, ...]]:
        config = server_config(connection_id_length=4)
        async with await aio.serve(echo, "127.0.0.1", 0, config) as server:

            def state() -> tuple[object, ...]:
                drops = sum(server.gate.drops.values())
                in_progress = server.handshakes_in_progress
                return list(server.peers), drops, server.routed_connection_ids, in_progress

            loop = asyncio.get_running_loop()
            return await loop.run_in_executor(None, _stranger_client, server.address, state)

    for data, got, before, after in (
        blocking(),
        asyncio.run(asyncio.wait_for(asyncio_server(), 60)),
    ):
        assert data == b"echo:oneecho:two" and got == []
        peers, drops, routed, in_progress = before
        assert len(peers) == 1 and routed == 1 and in_progress == 0  # type: ignore[arg-type]
        assert after == (peers, drops + 1, routed, in_progress)  # type: ignore[operator]


# ---- a client that restarts from the same address (RFC 6347 §4.2.8, RFC 9147 §9) --------------


def _echoed(data: bytes) -> Callable[[list[Any]], bool]:
    return lambda events: b"echo:" + data in data_of(events)


def _restarting_client(
    server: tuple[str, int], restarts: int, state: Callable[[], tuple[int, int, int, int]]
) -> list[tuple[bytes, bool, list[bytes], tuple[int, int, int, int], tuple[int, int, int, int]]]:
    """A new association from one socket (the same address and port) ``restarts + 1`` times,
    the old one abandoned without a word, as by a client that restarted. After each restart,
    a record of the abandoned association (carrying its CID) goes to the server from another
    port and from ours; then an echo on the new association, which the server answers after
    reading both (one socket, read in order). For each restart: the data echoed, whether the
    stale record carried the old association's CID and not the new one's, what the other
    port received, and ``state()`` before and after the stale records."""
    config = ClientConfig(insecure=True, dtls_versions=(0xFEFC,), connection_id_length=2)
    sock, stranger = _udp(), _udp()
    stranger.setblocking(False)
    seen = []
    previous: Dtls13ClientConnection | None = None
    try:
        for i in range(restarts + 1):
            conn = Dtls13ClientConnection(config, server)
            events: list[Any] = []
            conn.connect(time.time())
            assert pump(
                conn, sock, lambda e: any(isinstance(x, HandshakeCompleted) for x in e), events
            )
            conn.send(b"%d" % i)
            assert pump(conn, sock, _echoed(b"%d" % i), events, seconds=10)
            if previous is not None:
                before = state()
                previous.datagrams_to_send()  # whatever it still had to send: not sent
                previous.send(b"stale")
                stale = [datagram for datagram, _ in previous.datagrams_to_send()]
                old, new = previous.peer_connection_id, conn.peer_connection_id
                carried = {connection_id_of(d, 4) for d in stale} == {old} and old != new
                for datagram in stale:
                    stranger.sendto(datagram, server)
                    sock.sendto(datagram, server)
                conn.send(b"after %d" % i)
                assert pump(conn, sock, _echoed(b"after %d" % i), events, seconds=10)
                got = []
                with suppress(BlockingIOError):
                    got.append(stranger.recv(65535))
                seen.append((data_of(events), carried, got, before, state()))
            previous = conn
        return seen
    finally:
        sock.close()
        stranger.close()


@pytest.mark.parametrize("reader", ["old association", "listen"])
def test_blocking_restarted_client_replaces_its_association_and_connection_ids(
    reader: str,
) -> None:
    """A DTLS 1.3 client with connection IDs restarts from its address three times: each
    new handshake replaces the association (the listener returns it while the old one is
    still routed), works, and takes over the routing table: the old association's CID
    routes nothing any more (from another port the gate drops it, from the client's
    address the new association drops the record it cannot authenticate), and the table
    holds one association's CID however many restarts came before. The new ClientHello is
    read by the old association's ``recv()``, or by ``listen()`` once the server went back
    to listening after the records it expected (one from the first association, two from
    each after)."""
    echoes = (lambda n: 2 if n else 1) if reader == "listen" else None
    with _BlockingEcho(4, echoes) as server:
        listener = server.listener

        def state() -> tuple[int, int, int, int]:
            drops = sum(listener.gate.drops.values())
            routed, in_progress = listener.routed_connection_ids, len(listener.admission)
            return drops, routed, in_progress, len(server.served)

        seen = _restarting_client(server.address, 3, state)
    assert len(seen) == 3
    for i, (data, carried, got, before, after) in enumerate(seen, start=1):
        assert data == b"echo:%decho:after %d" % (i, i)
        assert carried and got == []
        drops, routed, in_progress, served = before
        assert (routed, in_progress, served) == (1, 0, i + 1)
        assert after == (drops + 1, 1, 0, i + 1)


@pytest.mark.parametrize("batch", [LISTEN_BATCH, 1], ids=["batched", "one-at-a-time"])
def test_listen_routes_a_known_connection_id_from_a_new_address(batch: int) -> None:
    """A server application back in ``listen()`` (not reading its association) reads a
    record from a new address carrying the association's CID: listen() gives it to that
    association, not to the gate (no drop counted) and returns None; the association's
    ``recv()`` returns it and answers at the new address. ``listen()`` reads in batches on
    a non-blocking socket, one datagram per call with ``batch=1``: both ways route."""
    config = server_config(connection_id_length=4)
    client_config = ClientConfig(insecure=True, dtls_versions=(0xFEFC,), connection_id_length=2)
    with _udp() as listening, _udp() as moved, one_cpu():
        listening.setblocking(False)
        listener = Listener(listening, config, batch=batch)
        client, server = connected(listener, client_config)
        try:
            assert listener.routed_connection_ids == 1
            drops = sum(listener.gate.drops.values())
            conn = client.connection
            conn.send(b"from a new port")  # a NAT rebinding: the record leaves from elsewhere
            for record, peer in conn.datagrams_to_send():
                moved.sendto(record, peer)
            fence(moved)  # listen() reads it, not the association's recv() below
            assert listener.listen() is None
            assert sum(listener.gate.drops.values()) == drops
            assert server.recv(timeout=10) == b"from a new port"
            assert server.peer == moved.getsockname()  # it followed its peer
            server.send(b"answered there")
            events: list[Any] = []
            assert pump(conn, moved, lambda e: b"answered there" in data_of(e), events, 10)
            assert listener.routed_connection_ids == 1
        finally:
            client.close()
            server.close()
