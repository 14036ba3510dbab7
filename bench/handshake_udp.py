"""Full DTLS 1.2 handshakes per CPU-second of a server process, clients in another process.

The companion of bench/handshake.py. There, one pyOpenSSL client drives each server in the
same process, in memory, and only the server's calls are timed; but the client's OpenSSL
work runs on the same core between the server's calls, and leaves the caches holding
OpenSSL's code and data: the pyOpenSSL server shares them, ours does not. Here each server
runs alone in its own process on a UDP socket on loopback, as it would in deployment, and
a separate process runs ``--clients`` pyOpenSSL clients (memory BIOs, one UDP socket each)
that handshake over and over. The figure is the server's CPU time (``time.process_time``
in its own process: the clients' work does not count) per completed handshake, for the
same handshake (ECDHE-ECDSA P-256, AES-128-GCM, EMS, cookie exchange: ours the gate then a
connection from its Admit; pyOpenSSL ``DTLSv1_listen`` with the same HMAC cookie in Python
callbacks, then ``do_handshake``), system calls included. Rounds alternate the servers;
the ratio is the median of per-round ratios.

With ``--profile``, only our server runs, once, under cProfile in its process: the costliest
functions by their own time, and the Python and C calls per handshake (C calls: cProfile's
entries for built-in functions and methods of C types: ``cryptography``, ``hashlib``,
``struct``, ``bytes``...).

Usage: python bench/handshake_udp.py [--count N] [--rounds R] [--clients K] [--profile]
"""

from __future__ import annotations

import argparse
import contextlib
import cProfile
import multiprocessing
import os
import pstats
import select
import socket
import statistics
import sys
import time
from typing import Any

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

from handshake import client_context, our_config, pyopenssl_server_context, read_all
from OpenSSL import SSL

from dtlsgate.connection.datagram import DtlsServerConnection
from dtlsgate.gate.datagram import Admit, Gate, Reply

MAX_DATAGRAM = 65535
# A run that makes no progress for this long is broken (no loss on loopback).
STALL_SECONDS = 10.0


def serve_ours(sock: socket.socket, count: int) -> None:
    config = our_config()
    gate = Gate(config)
    conns: dict[Any, DtlsServerConnection] = {}
    done = 0
    while done < count:
        data, peer = sock.recvfrom(MAX_DATAGRAM)
        now = time.time()
        conn = conns.get(peer)
        if conn is None:
            result = gate.receive(data, peer, now)
            if type(result) is Reply:
                sock.sendto(result.data, peer)
                continue
            if type(result) is not Admit:
                continue
            conn = DtlsServerConnection(result, config, context=gate.dtls12_context)
            conns[peer] = conn
            conn.start(now)
        else:
            conn.receive(data, peer, now)
        for datagram, _ in conn.datagrams_to_send():
            sock.sendto(datagram, peer)
        if conn.handshake_complete:
            del conns[peer]
            done += 1


def serve_pyopenssl(sock: socket.socket, count: int) -> None:
    ctx = pyopenssl_server_context()
    conns: dict[Any, tuple[SSL.Connection, list[bool]]] = {}
    done = 0
    while done < count:
        data, peer = sock.recvfrom(MAX_DATAGRAM)
        entry = conns.get(peer)
        if entry is None:
            conn = SSL.Connection(ctx, None)
            conn.set_accept_state()
            entry = conns[peer] = (conn, [True])
        conn, listening = entry
        conn.bio_write(data)
        complete = False
        if listening[0]:
            try:
                conn.DTLSv1_listen()
                listening[0] = False
            except SSL.WantReadError:
                pass
        if not listening[0]:
            try:
                conn.do_handshake()
                complete = True
            except SSL.WantReadError:
                pass
        for datagram in read_all(conn):
            sock.sendto(datagram, peer)
        if complete:
            del conns[peer]
            done += 1


SERVERS = {"dtlsgate": serve_ours, "pyopenssl": serve_pyopenssl}


def server_process(name: str, count: int, ready: Any, result: Any, profile: bool = False) -> None:
    sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4 << 20)
    sock.bind(("127.0.0.1", 0))
    ready.send(sock.getsockname()[1])
    ready.recv()  # the clients are about to start
    cpu = time.process_time()
    if profile:
        profiler = cProfile.Profile()
        profiler.runcall(SERVERS[name], sock, count)
        report_profile(profiler, count)
    else:
        SERVERS[name](sock, count)
    result.send(time.process_time() - cpu)


def report_profile(profiler: cProfile.Profile, count: int, top: int = 30) -> None:
    stats = pstats.Stats(profiler)
    entries = stats.stats  # type: ignore[attr-defined]
    python_calls = c_calls = 0
    rows = []
    for (filename, line, function), (_, calls, own, total, _) in entries.items():
        if filename == "~":
            c_calls += calls
            where = function
        else:
            python_calls += calls
            where = f"{os.path.relpath(filename)}:{line}({function})"
        rows.append((own, total, calls, where))
    rows.sort(reverse=True)
    own_sum = sum(r[0] for r in rows)
    sockets = sum(r[0] for r in rows if "_socket.socket" in r[3])
    python = sum(r[0] for r in rows if ".py:" in r[3])
    print(f"per handshake: {python_calls / count:.0f} Python calls, {c_calls / count:.0f} C calls")
    print(
        f"own time per handshake: {1e6 * own_sum / count:.0f} us; system calls"
        f" {1e6 * sockets / count:.0f} us, Python code {1e6 * python / count:.0f} us,"
        f" other C calls {1e6 * (own_sum - sockets - python) / count:.0f} us"
    )
    print(f"{'own %':>6} {'own us':>7} {'cum us':>7} {'calls':>6}  function (per handshake)")
    for own, total, calls, where in rows[:top]:
        print(
            f"{100 * own / own_sum:6.1f} {1e6 * own / count:7.1f} {1e6 * total / count:7.1f}"
            f" {calls / count:6.1f}  {where}"
        )


class Client:
    """One pyOpenSSL DTLS client in memory over its own UDP socket, handshaking again and
    again (a new connection each time, from the same address)."""

    def __init__(self, ctx: SSL.Context, server: tuple[str, int]) -> None:
        self.ctx, self.server = ctx, server
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self.sock.bind(("127.0.0.1", 0))
        self.completed = 0
        self.start()

    def start(self) -> None:
        self.conn = SSL.Connection(self.ctx, None)
        self.conn.set_connect_state()
        self.step(b"")

    def step(self, datagram: bytes) -> None:
        if datagram:
            self.conn.bio_write(datagram)
        try:
            self.conn.do_handshake()
            finished = True
        except SSL.WantReadError:
            finished = False
        for out in read_all(self.conn):
            self.sock.sendto(out, self.server)
        if finished:
            self.completed += 1
            self.start()


def run_clients(port: int, count: int, clients: int) -> None:
    ctx = client_context()
    pool = [Client(ctx, ("127.0.0.1", port)) for _ in range(clients)]
    by_sock = {c.sock: c for c in pool}
    last, progress = time.monotonic(), 0
    while sum(c.completed for c in pool) < count:
        ready, _, _ = select.select(list(by_sock), [], [], 1.0)
        for s in ready:
            by_sock[s].step(s.recv(MAX_DATAGRAM))
        total = sum(c.completed for c in pool)
        if total != progress:
            last, progress = time.monotonic(), total
        elif time.monotonic() - last > STALL_SECONDS:
            sys.exit(f"stalled after {total} handshakes")
    for c in pool:
        c.sock.close()


def one_round(name: str, count: int, clients: int, profile: bool = False) -> float:
    """Handshakes per CPU-second of the server process."""
    mp = multiprocessing.get_context("fork")
    ready, ready_child = mp.Pipe()
    result, result_child = mp.Pipe()
    proc = mp.Process(target=server_process, args=(name, count, ready_child, result_child, profile))
    proc.start()
    try:
        port = ready.recv()
        ready.send(True)
        run_clients(port, count, clients)
        if not result.poll(30):
            sys.exit(f"{name}: the server did not report")
        cpu = float(result.recv())
    finally:
        proc.join(10)
        with contextlib.suppress(Exception):
            proc.kill()
    return count / cpu


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--count", type=int, default=300)
    parser.add_argument("--rounds", type=int, default=7)
    parser.add_argument("--clients", type=int, default=4)
    parser.add_argument("--profile", action="store_true")
    args = parser.parse_args()
    if args.profile:
        one_round("dtlsgate", args.count, args.clients, profile=True)
        return
    rates: dict[str, list[float]] = {name: [] for name in SERVERS}
    for _ in range(args.rounds):
        for name in SERVERS:
            rates[name].append(one_round(name, args.count, args.clients))
    ratios = [a / b for a, b in zip(rates["dtlsgate"], rates["pyopenssl"], strict=True)]
    print(
        f"DTLS 1.2 full handshakes per server CPU-second, {args.count} x {args.rounds} rounds,"
        f" {args.clients} clients in another process over UDP loopback"
    )
    print("(ECDHE-ECDSA P-256, AES-128-GCM, EMS, cookie exchange)")
    for name, values in rates.items():
        print(f"  {name:10s} median {statistics.median(values):8.0f}/s  best {max(values):8.0f}/s")
    print(f"  dtlsgate / pyopenssl = {statistics.median(ratios):.2f} (median of round ratios)")


if __name__ == "__main__":
    main()
