"""Memory per established DTLS 1.2 association held by the asyncio server (`dtlsgate.io.aio`).

bench/memory.py counts the sans-I/O server connection alone; this counts what ``dtlsgate
serve`` holds per association: the connection, its `DtlsStream`, the handler's task waiting
in ``recv()``, and the server's tables and timers (the idle timeout's among them). The server
runs on uvloop (``--loop uvloop``, what `aio.run` picks) or asyncio's own loop, on a
loopback socket it never reads: each client is a sans-I/O `DtlsClientConnection` at an
address of its own (no sockets: ``--count`` of them would measure the kernel), its datagrams
handed to the server's ``handle`` and the server's to it (``sendto`` replaced), with
memory.py's configuration (ECDHE-ECDSA, AES-128-GCM, EMS; X25519). Once the handshake
completed the client is dropped; the association stays, idle, its handler in ``recv()``.

The figures, each in a fresh process: ``tracemalloc`` (Python allocations still live, those
of uvloop's objects and libuv's handles included: uvloop allocates them through Python's
allocator) and RSS growth, per association, after ``--warmup`` associations (by default
``memory.WARMUP``) made and held before the baseline.

Usage: python bench/aio_memory.py [--count N] [--loop uvloop,asyncio] [--warmup N]
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import importlib
import multiprocessing
import os
import sys
import time
import tracemalloc
from typing import Any

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

from memory import SERVER, WARMUP, client_config, rss_bytes, server_config

from dtlsgate.connection.datagram import DtlsClientConnection
from dtlsgate.io import aio


async def idle(stream: aio.DtlsStream) -> None:
    """The handler: waits for a record that never comes (an idle association)."""
    await stream.recv()


async def establish(server: aio.DtlsServer, outbox: dict[Any, list[bytes]], index: int) -> None:
    """One association from a fresh client at an address of its own."""
    peer = (f"10.{index >> 16 & 255}.{index >> 8 & 255}.{index & 255}", 40000 + index % 20000)
    client = DtlsClientConnection(client_config("x25519"), SERVER)
    client.connect(time.time())
    before = server.associations
    for _ in range(10):
        for datagram, _ in client.datagrams_to_send():
            server.handle(datagram, peer)
        for datagram in outbox.pop(peer, ()):
            client.receive(datagram, SERVER, time.time())
        await asyncio.sleep(0)  # the server's task for the association runs
        if server.associations > before:
            return
    raise RuntimeError("the handshake did not complete")


async def measure(count: int, traced: bool, warmup: int) -> float:
    """Bytes grown per established association, ``count`` held at once."""
    outbox: dict[Any, list[bytes]] = {}
    config = server_config("x25519")
    async with await aio.serve(idle, "127.0.0.1", 0, config) as server:
        # Not read: the clients' datagrams are handed to ``handle``, the server's kept here.
        server.sendto = lambda data, peer: outbox.setdefault(peer, []).append(data)  # type: ignore[method-assign]
        for i in range(warmup):
            await establish(server, outbox, i)
        gc.collect()
        if traced:
            tracemalloc.start()
        before = tracemalloc.get_traced_memory()[0] if traced else rss_bytes()
        for i in range(count):
            await establish(server, outbox, warmup + i)
        gc.collect()
        after = tracemalloc.get_traced_memory()[0] if traced else rss_bytes()
        tracemalloc.stop()
        if server.associations != warmup + count:
            raise RuntimeError(f"{server.associations} associations held")
    return (after - before) / count


def _child(loop: str, count: int, traced: bool, warmup: int, out: Any) -> None:
    if loop == "uvloop":
        out.send(importlib.import_module("uvloop").run(measure(count, traced, warmup)))
    else:
        out.send(asyncio.run(measure(count, traced, warmup)))


def in_child(loop: str, count: int, traced: bool, warmup: int) -> float:
    mp = multiprocessing.get_context("fork")
    receive, send = mp.Pipe()
    proc = mp.Process(target=_child, args=(loop, count, traced, warmup, send))
    proc.start()
    grown: float = receive.recv()
    proc.join()
    return grown


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--count", type=int, default=2000)
    parser.add_argument("--loop", default="uvloop,asyncio")
    parser.add_argument("--warmup", type=int, default=WARMUP)
    args = parser.parse_args()
    print(f"asyncio DTLS 1.2 server memory, {args.count} established associations held at once")
    for loop in args.loop.split(","):
        traced = in_child(loop, args.count, True, args.warmup)
        rss = in_child(loop, args.count, False, args.warmup)
        print(f"  {loop:<8} tracemalloc {traced / 1024:6.2f} KiB   RSS {rss / 1024:6.2f} KiB")


if __name__ == "__main__":
    main()
