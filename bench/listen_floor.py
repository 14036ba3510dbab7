"""The floor under a stateless listener: what any Python listener that answers each
ClientHello with a MAC cookie must spend, with no parsing.

Each datagram is read, the CookieJar's MAC (a keyed BLAKE2s state copied, as the jar does;
``--mac hmac``: HMAC-SHA256 from pre-keyed states of CPython's SHA-256, the jar's MAC
before format 2) is computed over 150 of its bytes and the sender's address, and a 49-byte
reply carrying the 16-byte tag is sent: the cookie and the system calls of
bench/listen.py's dtlsgate loop without the record, handshake and ClientHello checks, the
extension framing walk, the bound fields or the gate's objects. Run against the bare loop
of bench/listen.py, round by round, on the same 10,000 ClientHellos; the ratio is what is
left for everything else under the issue's 0.60 target. ``--batch N`` reads, answers and
sends as bench/listen.py's batch shape does (up to N waiting datagrams, then the replies),
against the bare loop of that shape.

Usage: python bench/listen_floor.py [--count N] [--rounds R] [--batch N] [--mac hmac]
"""

from __future__ import annotations

import argparse
import hashlib
import importlib
import os
import socket
import statistics
import sys
from collections.abc import Callable

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

from listen import MAX_DATAGRAM, bare_loop, distinct_hellos, one_round, read_batch

HEAD = b"\x16\xfe\xff"  # handshake record, DTLS 1.0, as a HelloVerifyRequest starts
TAIL = bytes(22)  # the rest of a 49-byte HelloVerifyRequest around the 16-byte tag


Mac = Callable[[bytes], bytes]


def blake2s_mac() -> Mac:
    keyed = hashlib.blake2s(key=bytes(32), digest_size=16)

    def tag(data: bytes) -> bytes:
        h = keyed.copy()
        h.update(data)
        return h.digest()

    return tag


def hmac_sha256_mac() -> Mac:
    sha256 = importlib.import_module("_sha256").sha256
    inner, outer = sha256(b"\x36" * 64), sha256(b"\x5c" * 64)

    def tag(data: bytes) -> bytes:
        h = inner.copy()
        h.update(data)
        o = outer.copy()
        o.update(h.digest())
        return o.digest()[:16]

    return tag


def floor_loop(sock: socket.socket, mac: Mac) -> int:
    recvfrom, sendto = sock.recvfrom, sock.sendto
    handled = 0
    while True:
        try:
            data, peer = recvfrom(MAX_DATAGRAM)
        except BlockingIOError:
            return handled
        tag = mac(data[25:175] + f"{peer[0]}\x00{peer[1]}".encode())
        sendto(HEAD + data[3:11] + tag + TAIL, peer)
        handled += 1


def floor_batches(sock: socket.socket, size: int, mac: Mac) -> int:
    sendto = sock.sendto
    handled = 0
    while True:
        batch = read_batch(sock, size)
        replies = []
        for data, peer in batch:
            tag = mac(data[25:175] + f"{peer[0]}\x00{peer[1]}".encode())
            replies.append((HEAD + data[3:11] + tag + TAIL, peer))
        for reply, peer in replies:
            sendto(reply, peer)
        handled += len(batch)
        if len(batch) < size:
            return handled


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--count", type=int, default=10_000)
    parser.add_argument("--rounds", type=int, default=15)
    parser.add_argument("--batch", type=int, default=1, help="datagrams read per batch")
    parser.add_argument("--mac", choices=["blake2s", "hmac"], default="blake2s")
    args = parser.parse_args()
    size = args.batch
    mac = blake2s_mac() if args.mac == "blake2s" else hmac_sha256_mac()
    hellos = distinct_hellos(args.count)
    rcvbuf = 64 << 20
    reply = bytes(len(HEAD) + 8 + 16 + len(TAIL))
    ratios = []
    for _ in range(args.rounds):
        bare = one_round("bare", lambda s: bare_loop(s, reply, size), hellos, rcvbuf)
        run = (
            (lambda s: floor_loop(s, mac)) if size == 1 else (lambda s: floor_batches(s, size, mac))
        )
        ratios.append(one_round("floor", run, hellos, rcvbuf) / bare)
    shape = "one at a time" if size == 1 else f"in batches of {size}"
    name = "keyed BLAKE2s" if args.mac == "blake2s" else "HMAC-SHA256"
    print(f"listen floor (recvfrom, {name} cookie, sendto; no parsing), {shape},")
    print(f"{args.count} ClientHellos x {args.rounds} rounds")
    print(
        f"  floor = {statistics.median(ratios):.2f} x bare"
        f" (rounds from {min(ratios):.2f} to {max(ratios):.2f})"
    )


if __name__ == "__main__":
    main()
