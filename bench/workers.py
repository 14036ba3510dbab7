"""DTLS 1.2 handshakes per second with ``dtlsgate serve --workers 1`` and ``--workers 2``.

``--workers N`` runs N server processes on one UDP port (SO_REUSEPORT; one shared cookie
master key, so each verifies the others' cookies). This bench starts the real command,
loads it from this process with a pool of pyOpenSSL DTLS 1.2 clients (memory BIOs, each
handshake from a fresh UDP socket, then close_notify so the server forgets it; OpenSSL does
the client's work in C, about a third of a server's CPU per handshake), and counts the
handshakes completed in a fixed window after a warm-up. It also reads the servers' CPU time
from /proc, so it prints handshakes per server CPU-second next to the wall-clock rate: the
first shows how many cores the workers could use, the second that each worker's cost per
handshake stays the same.

On a 2-core machine the load generator shares the cores with the servers: two workers
cannot have two whole cores, and the scaling measured is a lower bound of what they reach
with the clients elsewhere. Rounds alternate the worker counts; the ratio is the median of
per-round ratios.

Usage: python bench/workers.py [--seconds S] [--rounds R] [--clients K]
"""

from __future__ import annotations

import argparse
import contextlib
import os
import select
import signal
import socket
import statistics
import subprocess
import sys
import time
from pathlib import Path

from OpenSSL import SSL

MAX_DATAGRAM = 65535
WARMUP_SECONDS = 2.0
CIPHER = b"ECDHE-ECDSA-AES128-GCM-SHA256:ECDHE-RSA-AES128-GCM-SHA256"
# A client that got no answer for this long starts a new handshake (a lost datagram).
CLIENT_TIMEOUT = 2.0
DTLSGATE = str(Path(sys.executable).with_name("dtlsgate"))


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def read_all(conn: SSL.Connection) -> list[bytes]:
    out = []
    while True:
        try:
            out.append(conn.bio_read(MAX_DATAGRAM))
        except SSL.WantReadError:
            return out


class Client:
    """Handshakes again and again, each time from a new socket."""

    def __init__(self, ctx: SSL.Context, server: tuple[str, int]) -> None:
        self.ctx, self.server = ctx, server
        self.completed = 0
        self.sock: socket.socket | None = None
        self.start()

    def start(self) -> None:
        if self.sock is not None:
            self.sock.close()
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self.sock.bind(("127.0.0.1", 0))
        self.conn = SSL.Connection(self.ctx, None)
        self.conn.set_connect_state()
        self.started = time.monotonic()
        self.step(b"")

    def step(self, datagram: bytes) -> None:
        assert self.sock is not None
        if datagram:
            self.conn.bio_write(datagram)
        try:
            self.conn.do_handshake()
            finished = True
        except SSL.WantReadError:
            finished = False
        except SSL.Error:
            self.start()
            return
        if finished:
            with contextlib.suppress(SSL.Error):
                self.conn.shutdown()
        for out in read_all(self.conn):
            self.sock.sendto(out, self.server)
        if finished:
            self.completed += 1
            self.start()


def cpu_seconds(pgid: int) -> float:
    """User and system CPU time of every process in the group."""
    total = 0
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/stat") as f:
                fields = f.read().rsplit(")", 1)[1].split()
        except OSError:
            continue
        if int(fields[2]) == pgid:  # pgrp
            total += int(fields[11]) + int(fields[12])  # utime, stime
    return total / os.sysconf("SC_CLK_TCK")


def one_round(workers: int, seconds: float, clients: int) -> tuple[float, float, float]:
    """(handshakes per second, handshakes per server CPU-second, share of a core the load
    generator used)."""
    port = free_port()
    env = dict(os.environ, XDG_CACHE_HOME=os.environ.get("XDG_CACHE_HOME", "/tmp/dtlsgate-bench"))
    server = subprocess.Popen(
        [
            DTLSGATE,
            "serve",
            "--host",
            "127.0.0.1",
            "--port",
            str(port),
            *("--workers", str(workers)),
        ],
        stderr=subprocess.PIPE,
        start_new_session=True,
        env=env,
    )
    try:
        assert server.stderr is not None
        ready, _, _ = select.select([server.stderr], [], [], 60)
        if not ready or b"serving" not in server.stderr.readline():
            sys.exit("dtlsgate serve did not start")
        time.sleep(0.5)  # the other workers bind too
        ctx = SSL.Context(SSL.DTLS_METHOD)
        ctx.set_cipher_list(CIPHER)
        ctx.set_verify(SSL.VERIFY_NONE, lambda *a: True)
        pool = [Client(ctx, ("127.0.0.1", port)) for _ in range(clients)]
        start = time.monotonic()
        counted_from = start + WARMUP_SECONDS
        end = counted_from + seconds
        base = cpu0 = None
        own0 = 0.0
        while (now := time.monotonic()) < end:
            if base is None and now >= counted_from:
                base, cpu0 = sum(c.completed for c in pool), cpu_seconds(server.pid)
                own0 = time.process_time()
            socks = {c.sock: c for c in pool}
            ready, _, _ = select.select(list(socks), [], [], 0.2)
            for s in ready:
                assert s is not None
                socks[s].step(s.recv(MAX_DATAGRAM))
            for c in pool:
                if time.monotonic() - c.started > CLIENT_TIMEOUT:
                    c.start()
        assert base is not None and cpu0 is not None
        done = sum(c.completed for c in pool) - base
        cpu = cpu_seconds(server.pid) - cpu0
        own = (time.process_time() - own0) / seconds
        for c in pool:
            if c.sock is not None:
                c.sock.close()
        return done / seconds, done / cpu if cpu else 0.0, own
    finally:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(server.pid, signal.SIGTERM)
        server.wait(10)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--seconds", type=float, default=10.0)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--clients", type=int, default=16)
    args = parser.parse_args()
    rates: dict[int, list[tuple[float, float, float]]] = {1: [], 2: []}
    for _ in range(args.rounds):
        for workers in (1, 2):
            rates[workers].append(one_round(workers, args.seconds, args.clients))
    print(
        f"dtlsgate serve --workers N: DTLS 1.2 handshakes, {args.rounds} rounds of"
        f" {args.seconds:.0f} s, {args.clients} pyOpenSSL clients in this process"
    )
    for workers, values in rates.items():
        wall = statistics.median(v[0] for v in values)
        cpu = statistics.median(v[1] for v in values)
        own = statistics.median(v[2] for v in values)
        print(
            f"  --workers {workers}: {wall:7.0f} handshakes/s, {cpu:7.0f} per server CPU-second"
            f" (load generator: {own:.2f} of a core)"
        )
    ratios = [b[0] / a[0] for a, b in zip(rates[1], rates[2], strict=True)]
    print(f"  --workers 2 / --workers 1 = {statistics.median(ratios):.2f} (median of round ratios)")


if __name__ == "__main__":
    main()
