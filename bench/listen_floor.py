"""The floor under a stateless listener, one datagram at a time: what any Python listener
that answers each ClientHello with an HMAC-SHA256 cookie must spend, with no parsing.

Each datagram is read, an HMAC-SHA256 (pre-keyed states of CPython's SHA-256 copied, as
the CookieJar does) is computed over 150 of its bytes and the sender's address, and a
49-byte reply carrying the truncated tag is sent: the cookie and the system calls of
bench/listen.py's dtlsgate loop without the record, handshake and ClientHello checks, the
extension framing walk, the bound fields or the gate's objects. Run against the bare loop
of bench/listen.py, round by round, on the same 10,000 ClientHellos; the ratio is what is
left for everything else under the issue's 0.60 target.

Usage: python bench/listen_floor.py [--count N] [--rounds R]
"""

from __future__ import annotations

import argparse
import os
import socket
import statistics
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

from listen import MAX_DATAGRAM, bare_loop, distinct_hellos, one_round

from dtlsgate.cookie import _sha256

HEAD = b"\x16\xfe\xff"  # handshake record, DTLS 1.0, as a HelloVerifyRequest starts
TAIL = bytes(22)  # the rest of a 49-byte HelloVerifyRequest around the 16-byte tag


def floor_loop(sock: socket.socket) -> int:
    recvfrom, sendto = sock.recvfrom, sock.sendto
    inner, outer = _sha256(b"\x36" * 64), _sha256(b"\x5c" * 64)
    handled = 0
    while True:
        try:
            data, peer = recvfrom(MAX_DATAGRAM)
        except BlockingIOError:
            return handled
        h = inner.copy()
        h.update(data[25:175] + f"{peer[0]}\x00{peer[1]}".encode())
        o = outer.copy()
        o.update(h.digest())
        sendto(HEAD + data[3:11] + o.digest()[:16] + TAIL, peer)
        handled += 1


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--count", type=int, default=10_000)
    parser.add_argument("--rounds", type=int, default=15)
    args = parser.parse_args()
    hellos = distinct_hellos(args.count)
    rcvbuf = 64 << 20
    reply = bytes(len(HEAD) + 8 + 16 + len(TAIL))
    ratios = []
    for _ in range(args.rounds):
        bare = one_round("bare", lambda s: bare_loop(s, reply, 1), hellos, rcvbuf)
        ratios.append(one_round("floor", floor_loop, hellos, rcvbuf) / bare)
    print("listen floor (recvfrom, HMAC-SHA256 cookie, sendto; no parsing), one at a time,")
    print(f"{args.count} ClientHellos x {args.rounds} rounds")
    print(
        f"  floor = {statistics.median(ratios):.2f} x bare"
        f" (rounds from {min(ratios):.2f} to {max(ratios):.2f})"
    )


if __name__ == "__main__":
    main()
