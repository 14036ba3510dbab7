"""Memory per DTLS 1.2 server association and per pending handshake, bounded so that a
regression fails the suite (bench/memory.py measures the same with RSS and 10,000 held).

Counted by tracemalloc (the Python allocations still live once 1,000 server connections
are held at once), never by time. The bounds are generous, about 1.5x what the code holds
today (about 2.4 KiB per established association, 2.3 KiB per pending handshake), and below
what it held before the memory work of issue 14 (4.2 and 5.0 KiB)."""

from __future__ import annotations

import gc
import tracemalloc
from collections.abc import Callable

from helpers import client_config, make_pair, server_config

from dtlsgate.config import ClientConfig, ServerConfig
from dtlsgate.connection.datagram import DtlsServerConnection
from dtlsgate.gate.datagram import Gate

COUNT = 1000
MAX_ESTABLISHED_BYTES = 3584
MAX_PENDING_BYTES = 3584


def established(sconfig: ServerConfig, cconfig: ClientConfig, gate: Gate) -> DtlsServerConnection:
    pair = make_pair(sconfig, cconfig, gate=gate)
    assert pair.run() and pair.completed() and pair.server is not None
    return pair.server


def pending(sconfig: ServerConfig, cconfig: ClientConfig, gate: Gate) -> DtlsServerConnection:
    """A server connection made from the gate's Admit, its first flight sent, before the
    client's second flight."""
    pair = make_pair(sconfig, cconfig, gate=gate)
    pair.to_server([d for d, _ in pair.client.datagrams_to_send()])  # -> HelloVerifyRequest
    pair.to_server([d for d, _ in pair.client.datagrams_to_send()])  # the cookie -> Admit
    assert pair.server is not None and pair.server.datagrams_to_send()
    assert not pair.server.handshake_complete
    return pair.server


def bytes_each(make: Callable[[ServerConfig, ClientConfig, Gate], DtlsServerConnection]) -> float:
    sconfig, cconfig = server_config(), client_config()
    # One gate, whose prepared context the connections share, as a server's do.
    gate = Gate(sconfig)
    for _ in range(20):  # first allocations are not per-connection memory
        make(sconfig, cconfig, gate)
    held: list[DtlsServerConnection | None] = [None] * COUNT
    gc.collect()
    tracemalloc.start()
    try:
        before = tracemalloc.get_traced_memory()[0]
        for i in range(COUNT):
            held[i] = make(sconfig, cconfig, gate)
        gc.collect()
        return (tracemalloc.get_traced_memory()[0] - before) / COUNT
    finally:
        tracemalloc.stop()


def test_an_established_association_holds_at_most_3_5_kib() -> None:
    assert bytes_each(established) <= MAX_ESTABLISHED_BYTES


def test_a_pending_handshake_holds_at_most_3_5_kib() -> None:
    assert bytes_each(pending) <= MAX_PENDING_BYTES
