"""Memory per DTLS 1.2 association and per pending handshake, on the server side.

Two figures, each for ``--count`` connections held at once:

- **established**: a server connection whose handshake completed (the client's Finished
  read, the server's last flight sent), kept as an application keeps an idle association;
- **pending**: a server connection just made from the gate's `Admit`, its first flight
  (ServerHello .. ServerHelloDone) sent, waiting for the client's second flight: what a
  server holds for a client that passed the cookie exchange and has not answered yet.

The handshakes are driven in-process through the sans-I/O connections (bench/in_memory.py: a
dtlsgate client per handshake, the gate in front of the server, no sockets: 10,000 UDP
associations over loopback would measure the kernel's buffers and file descriptors, not
ours), with the default provider (``cryptography``), ECDHE-ECDSA with AES-128-GCM and
extended master secret, the key exchange on X25519 (the default configuration's first group)
or P-256 (the group bench/handshake.py uses, whose private key costs OpenSSL about 2.2 KiB
against 0.5 KiB for X25519: a pending handshake holds its ECDHE key). Only the server
connections are kept; each client is dropped once its server is where the figure needs it.

Each figure is measured twice, each time in a fresh process:
- ``tracemalloc``: the Python allocations still live, per connection (what the interpreter
  allocates; not OpenSSL's own memory behind ``cryptography``'s objects);
- RSS: the process's resident set growth per connection, without tracemalloc running
  (everything: Python objects, allocator overhead, OpenSSL's contexts).

Whether the cost stays the same per connection as they add up: the figure is also taken at
every tenth of ``--count`` (``--steps``), as the growth from the baseline over the connections
made so far, with the seconds it took. A table that grows faster than the connections (a
dict resized, a cache not bounded) shows as a per-connection cost that climbs step by step.

Usage: python bench/memory.py [--count N] [--which established,pending] [--groups x25519,p256]
[--steps]
"""

from __future__ import annotations

import argparse
import gc
import multiprocessing
import os
import sys
import time
import tracemalloc
from typing import Any

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

import in_memory

from dtlsgate.config import ClientConfig, ServerConfig
from dtlsgate.connection.datagram import DtlsClientConnection, DtlsServerConnection
from dtlsgate.crypto.certs import load_identity, make_self_signed
from dtlsgate.gate.cookie import CookieJar
from dtlsgate.gate.datagram import Gate
from dtlsgate.wire.enums import CipherSuite, NamedGroup

SERVER = ("127.0.0.1", 4433)
MASTER_KEY = bytes(range(32))
CERT_PEM, KEY_PEM = make_self_signed("localhost", "ecdsa-p256")
# Handshakes made and dropped before the baseline: imports, caches and the allocator's
# first arenas are not per-connection memory.
WARMUP = 200


GROUPS = {"x25519": NamedGroup.x25519, "p256": NamedGroup.secp256r1}


def server_config(group: str) -> ServerConfig:
    identity = load_identity(CERT_PEM, KEY_PEM)
    return ServerConfig(
        cookie_jar=CookieJar(MASTER_KEY),
        certificate_chain=list(identity.chain),
        private_key=identity.private_key,
        groups=(GROUPS[group],),
    )


def client_config(group: str) -> ClientConfig:
    return ClientConfig(
        cafile=CERT_PEM.decode(),
        server_name="localhost",
        cipher_suites=(CipherSuite.TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256,),
        groups=(GROUPS[group],),
    )


def handshake(
    index: int, gate: Gate, cconfig: ClientConfig, *, complete: bool
) -> DtlsServerConnection:
    """One server connection from a fresh client at a distinct address: established
    (``complete``) or pending (its first flight sent, the client's second not fed)."""
    peer = (f"10.{index >> 16 & 255}.{index >> 8 & 255}.{index & 255}", 40000 + index % 20000)
    client = DtlsClientConnection(cconfig, SERVER)
    return in_memory.handshake(client, gate, peer, SERVER, complete=complete)


def rss_bytes() -> int:
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")


def measure(which: str, group: str, count: int, traced: bool) -> list[tuple[int, float, float]]:
    """The growth in bytes with ``count`` connections of kind ``which`` held at once: (held,
    bytes grown, seconds) at every tenth of ``count``, the last for all of them."""
    sconfig, cconfig = server_config(group), client_config(group)
    gate = Gate(sconfig)
    complete = which == "established"
    for i in range(WARMUP):
        handshake(i, gate, cconfig, complete=complete)
    gc.collect()
    if traced:
        tracemalloc.start()
        before = tracemalloc.get_traced_memory()[0]
    else:
        before = rss_bytes()
    held: list[Any] = [None] * count  # the list itself is not per-connection state
    if traced:
        before = tracemalloc.get_traced_memory()[0]
    steps = []
    start = time.perf_counter()
    for i in range(count):
        held[i] = handshake(WARMUP + i, gate, cconfig, complete=complete)
        if (i + 1) * 10 % count < 10 or i + 1 == count:  # every tenth (and the end)
            gc.collect()
            after = tracemalloc.get_traced_memory()[0] if traced else rss_bytes()
            steps.append((i + 1, after - before, time.perf_counter() - start))
    tracemalloc.stop()
    return steps


def _child(which: str, group: str, count: int, traced: bool, out: Any) -> None:
    out.send(measure(which, group, count, traced))


def in_child(which: str, group: str, count: int, traced: bool) -> list[tuple[int, float, float]]:
    mp = multiprocessing.get_context("fork")
    receive, send = mp.Pipe()
    proc = mp.Process(target=_child, args=(which, group, count, traced, send))
    proc.start()
    steps: list[tuple[int, float, float]] = receive.recv()
    proc.join()
    return steps


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--count", type=int, default=10_000)
    parser.add_argument("--which", default="established,pending")
    parser.add_argument("--groups", default="x25519,p256")
    parser.add_argument(
        "--steps", action="store_true", help="also print the figure at every tenth of --count"
    )
    args = parser.parse_args()
    print(f"DTLS 1.2 server memory, {args.count} connections held at once")
    print("(ECDHE-ECDSA, AES-128-GCM, EMS; driven in-process, sans-I/O; per connection)")
    for which in args.which.split(","):
        for group in args.groups.split(","):
            traced = in_child(which, group, args.count, traced=True)
            rss = in_child(which, group, args.count, traced=False)
            last = (0, 0.0, 0.0, 0.0)
            for (n, t, t_s), (_, r, r_s) in zip(traced, rss, strict=True):
                if args.steps:  # this tenth's connections alone: (growth) / (connections)
                    made = n - last[0]
                    print(
                        f"  {which:<12} {group:<7} {n:>7} held: tracemalloc"
                        f" {t / n / 1024:6.2f} KiB (this tenth {(t - last[1]) / made / 1024:5.2f},"
                        f" {t_s:4.0f} s)   RSS {r / n / 1024:6.2f} KiB"
                        f" (this tenth {(r - last[2]) / made / 1024:5.2f}, {r_s:4.0f} s)",
                        flush=True,
                    )
                last = (n, t, r, r_s)
            n, t, r, r_s = last
            print(
                f"  {which:<12} {group:<7} tracemalloc {t / n / 1024:6.2f} KiB"
                f"   RSS {r / n / 1024:6.2f} KiB"
                + (
                    f"   ({n} held: {t / 2**20:.1f} and {r / 2**20:.1f} MiB; {r_s:.0f} s)"
                    if args.steps
                    else ""
                ),
                flush=True,
            )


if __name__ == "__main__":
    main()
