"""What the cyclic garbage collector does for the asyncio faces: ``--count`` connections,
one after the other, client and server in this process over loopback, each with one echo.

- ``tls``: ``connect_tls`` to ``serve_tls`` (TLS 1.3 over TCP);
- ``dtls12`` / ``dtls13``: ``aio.connect`` to ``aio.serve`` (UDP).

``--fail``: each handshake fails instead (DTLS only): ``cert``, the client refuses the
server's certificate (a name it does not hold; the client fails, the server receives its
alert); ``psk``, the client's PSK is not the server's (the server fails, the client
receives its alert): DTLS 1.2 an identity the server does not know (a wrong key would fail
only at the client's Finished, a record the server drops unread as any that does not
authenticate), DTLS 1.3 the server's identity with another key (its binder does not verify).

Default: the collector on, as an application runs; prints the CPU time per connection and
what the collector did meanwhile (``gc.callbacks``: collections per generation, objects
collected, milliseconds in it). A connection freed by reference counting alone costs the
collector nothing. ``--leftover``: the collector off and ``gc.DEBUG_SAVEALL``; prints what
one ``gc.collect()`` then finds per connection, by type: the objects that only the collector
could free (both sides together; asyncio's own transports count too).

Compare two trees by running it alternately with ``PYTHONPATH=TREE/src`` (the import path
is printed).

Usage: python bench/aio_gc.py [tls|dtls12|dtls13] [--count N] [--leftover] [--fail cert|psk]
"""

from __future__ import annotations

import argparse
import asyncio
import collections
import contextlib
import gc
import time
from collections.abc import Awaitable, Callable
from typing import Any

import dtlsgate
from dtlsgate import connect_tls, serve_tls
from dtlsgate.config import ClientConfig, ServerConfig
from dtlsgate.crypto.certs import load_identity, make_self_signed
from dtlsgate.errors import DtlsgateError
from dtlsgate.io import aio
from dtlsgate.wire.enums import ProtocolVersion

WARM_UP = 10
DTLS12 = ProtocolVersion.DTLS12


class Collector:
    """The collector's work, from its callbacks."""

    def __init__(self) -> None:
        self.collections = [0, 0, 0]
        self.collected = 0
        self.seconds = 0.0
        self._started = 0.0

    def __call__(self, phase: str, info: dict[str, int]) -> None:
        if phase == "start":
            self._started = time.perf_counter()
        else:
            self.collections[info["generation"]] += 1
            self.collected += info["collected"]
            self.seconds += time.perf_counter() - self._started


async def tls_connections(server_config: ServerConfig) -> tuple[Any, Callable[[], Awaitable[None]]]:
    async def echo(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        writer.write(await reader.readline())
        await writer.drain()
        writer.close()

    server = await serve_tls(echo, "127.0.0.1", 0, server_config)
    port = server.sockets[0].getsockname()[1]
    client = ClientConfig(insecure=True)

    async def one() -> None:
        reader, writer = await connect_tls("127.0.0.1", port, client)
        writer.write(b"hello\n")
        await writer.drain()
        assert await reader.readline() == b"hello\n"
        await reader.read()
        writer.close()
        await writer.wait_closed()

    return server, one


async def dtls_connections(
    server_config: ServerConfig, version: int, fail: str | None
) -> tuple[Any, Callable[[], Awaitable[None]]]:
    async def echo(stream: aio.DtlsStream) -> None:
        while data := await stream.recv():
            stream.send(data)

    if fail == "psk":
        server_config = ServerConfig(psk={b"client": b"k" * 16})
        identity, key = (b"stranger", b"k" * 16) if version == DTLS12 else (b"client", b"x" * 16)
        client = ClientConfig(psk_identity=identity, psk=key, dtls_versions=(version,))
    elif fail == "cert":
        client = ClientConfig(server_name="other.example", dtls_versions=(version,))
    else:
        client = ClientConfig(insecure=True, dtls_versions=(version,))
    server = await aio.serve(echo, "127.0.0.1", 0, server_config)
    host, port = server.address

    async def one() -> None:
        if fail is not None:
            failed = server.handshakes_failed
            with contextlib.suppress(DtlsgateError, ConnectionError, TimeoutError):
                await aio.connect(host, port, client, timeout=5)
                raise AssertionError("the handshake did not fail")
            for _ in range(500):  # the server's side fails a loop turn or two later
                if server.handshakes_failed > failed and not server.handshakes_in_progress:
                    break
                await asyncio.sleep(0.001)
            return
        stream = await aio.connect(host, port, client, timeout=20)
        stream.send(b"hello")
        assert await asyncio.wait_for(stream.recv(), 10) == b"hello"
        stream.close()

    return server, one


async def run(kind: str, count: int, leftover: bool, fail: str | None) -> None:
    cert, key = make_self_signed("localhost", "ecdsa-p256")
    identity = load_identity(cert, key)
    config = ServerConfig(certificate_chain=list(identity.chain), private_key=identity.private_key)
    if kind == "tls":
        server, one = await tls_connections(config)
    else:
        version = DTLS12 if kind == "dtls12" else ProtocolVersion.DTLS13
        server, one = await dtls_connections(config, version, fail)
    for _ in range(WARM_UP):
        await one()
    gc.collect()
    if leftover:
        gc.disable()
        gc.set_debug(gc.DEBUG_SAVEALL)
        for _ in range(count):
            await one()
        found = gc.collect()
        kinds = collections.Counter(type(o).__qualname__ for o in gc.garbage)
        gc.set_debug(0)
        gc.garbage.clear()
        gc.enable()
        print(f"{kind}: {found / count:.1f} objects per connection left to the collector")
        for name, n in kinds.most_common():
            print(f"  {n / count:6.2f} {name}")
    else:
        collector = Collector()
        gc.callbacks.append(collector)
        started = time.process_time()
        for _ in range(count):
            await one()
        cpu = time.process_time() - started
        gc.callbacks.remove(collector)
        print(
            f"{kind}: {cpu / count * 1000:.3f} ms CPU per connection; collector: "
            f"{collector.collections} collections (gen 0, 1, 2), {collector.collected} "
            f"objects collected, {collector.seconds * 1000:.1f} ms"
        )
    server.close()
    await server.wait_closed()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("kind", nargs="?", choices=("tls", "dtls12", "dtls13"), default="tls")
    parser.add_argument("--count", type=int, default=1000)
    parser.add_argument("--leftover", action="store_true")
    parser.add_argument("--fail", choices=("cert", "psk"), help="DTLS: failed handshakes")
    args = parser.parse_args()
    if args.fail and args.kind == "tls":
        parser.error("--fail applies to dtls12 and dtls13")
    print(f"dtlsgate from {dtlsgate.__file__}")
    asyncio.run(run(args.kind, args.count, args.leftover, args.fail))


if __name__ == "__main__":
    main()
