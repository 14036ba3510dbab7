"""A sans-I/O DTLS 1.3 connection driven over a UDP socket on loopback, for the interop
tests (bounded in time; the library's own faces are in ``dtlsgate.io``)."""

from __future__ import annotations

import socket
import time
from collections.abc import Callable
from typing import Any

from dtlsgate.connection.datagram13 import Dtls13Connection
from dtlsgate.events import DataReceived


def pump(
    conn: Dtls13Connection,
    sock: socket.socket,
    until: Callable[[list[Any]], bool],
    events: list[Any],
    seconds: float = 15,
    sizes: list[int] | None = None,
) -> bool:
    """Send what ``conn`` has, feed it what arrives and fire its timer, collecting its
    events (and the sizes of the datagrams sent, in ``sizes``), until ``until(events)``
    or ``seconds`` pass; whether ``until`` held."""
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        for datagram, peer in conn.datagrams_to_send():
            sock.sendto(datagram, peer)
            if sizes is not None:
                sizes.append(len(datagram))
        while (event := conn.next_event()) is not None:
            events.append(event)
        if until(events):
            return True
        timer = conn.get_timer()
        wait = 0.2 if timer is None else max(0.001, min(0.2, timer - time.time()))
        sock.settimeout(wait)
        try:
            data, peer = sock.recvfrom(65535)
        except TimeoutError:
            conn.handle_timer(time.time())
            continue
        if peer != conn.peer:
            # `receive` takes the peer's datagrams, as the library's connected sockets give
            # them. Another test's client that sent to a port probed free and then taken by
            # this socket (the suite runs in several processes) is not this peer: a stray
            # ClientHello of theirs once failed our DTLS 1.3 client's handshake here.
            continue
        conn.receive(data, peer, time.time())
    return False


def data_of(events: list[Any]) -> bytes:
    return b"".join(e.data for e in events if isinstance(e, DataReceived))


def serve_one(
    conn_for: Callable[[Any], Dtls13Connection],
    sock: socket.socket,
    events: list[Any],
    seconds: float = 20,
    reply: Callable[[bytes], bytes] = lambda data: b"echo:" + data,
    sizes: list[int] | None = None,
    gone: Callable[[], bool] = lambda: False,
) -> Dtls13Connection | None:
    """Serve the first peer that sends to ``sock`` with the connection ``conn_for(peer)``:
    answer each record of application data with ``reply(data)``, until the peer closes,
    ``gone()`` (its process ended) or ``seconds`` pass. Returns the connection (None when
    nobody came)."""
    deadline = time.monotonic() + seconds
    sock.settimeout(seconds)
    try:
        first, peer = sock.recvfrom(65535)
    except TimeoutError:
        return None
    conn = conn_for(peer)
    conn.receive(first, peer, time.time())
    answered = 0
    gone_at: float | None = None

    def done(evs: list[Any]) -> bool:
        nonlocal answered, gone_at
        received = [e.data for e in evs if isinstance(e, DataReceived)]
        for data in received[answered:]:
            conn.send(reply(data))
        answered = len(received)
        if gone_at is None and gone():
            gone_at = time.monotonic()
        # Its last datagrams may still be on their way when the peer's process ends.
        return conn.closed or (gone_at is not None and time.monotonic() - gone_at > 0.5)

    pump(conn, sock, done, events, max(0.0, deadline - time.monotonic()), sizes)
    return conn
