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

``--servers`` names the servers compared (the first against each other one):
``dtlsgate``, the bare loop above (the core: the gate and the connections, nothing else);
``aio``, what ``dtlsgate serve`` runs (`dtlsgate.io.aio`'s server on uvloop, with the echo
handler; ``aio-asyncio``: the same on asyncio's own loop); ``pyopenssl``. So
``--servers dtlsgate,aio`` measures what the asyncio adapter adds per handshake.

``--echo``: instead of handshakes, echoed records. Each client handshakes once, then sends a
record of ``--record`` bytes, waits for it to come back, and sends the next; the figure is
echoed records per server CPU-second, counted from the first record the server received
(the handshakes before it not counted). The bare loop answers each ``DataReceived`` with
``send``; the ``aio`` servers run the echo handler of ``dtlsgate serve``.

With ``--profile``, only the first of ``--servers`` runs, once, under cProfile in its process:
the costliest functions by their own time, and the Python and C calls per handshake (or
record) (C calls: cProfile's entries for built-in functions and methods of C types:
``cryptography``, ``hashlib``, ``struct``, ``bytes``...).

``--in-process``: the first of ``--servers`` runs once in this process and the clients in a
child process started anew (not forked), so that ``valgrind --tool=callgrind``, which follows
no child, counts the server alone. With one client (``--clients 1``) the exchange is in
lockstep, the same datagrams each run; start-up is not a handshake, so run with two counts
and take the difference::

    for n in 20 120; do
        PYTHONHASHSEED=0 valgrind --tool=callgrind --callgrind-out-file=cg.$n \
            .venv/bin/python bench/handshake_udp.py --in-process --servers aio --clients 1 \
            --count $n
    done
    # (total of cg.120 - total of cg.20) / 100 = instructions per handshake (--echo: record)

``--rusage``: also each server's ``getrusage`` per handshake (or record), the median over the
rounds: user and system CPU time, voluntary and involuntary context switches, minor page
faults (the system calls' own cost is in the system time, which callgrind does not see).

Usage: python bench/handshake_udp.py [--count N] [--rounds R] [--clients K] [--profile]
[--servers dtlsgate,pyopenssl] [--echo] [--record BYTES] [--in-process] [--rusage]
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import cProfile
import multiprocessing
import os
import pstats
import resource
import select
import socket
import statistics
import subprocess
import sys
import threading
import time
from typing import Any

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

from handshake import client_context, our_config, pyopenssl_server_context, read_all
from OpenSSL import SSL

from dtlsgate.connection.datagram import DtlsServerConnection
from dtlsgate.events import DataReceived
from dtlsgate.gate.datagram import Admit, Gate, Reply
from dtlsgate.io import aio

MAX_DATAGRAM = 65535
# A run that makes no progress for this long is broken (no loss on loopback).
STALL_SECONDS = 10.0


def serve_ours(sock: socket.socket, count: int) -> None:
    """The core alone: the gate, then a connection per admitted peer until it completes."""
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
            conn = DtlsServerConnection(result, config, gate.dtls12_context)
            conns[peer] = conn
            conn.start(now)
        else:
            conn.receive(data, peer, now)
        for datagram, _ in conn.datagrams_to_send():
            sock.sendto(datagram, peer)
        if conn.handshake_complete:
            del conns[peer]
            done += 1


def echo_ours(sock: socket.socket, count: int) -> float:
    """The core alone, echoing ``count`` records; returns the CPU time at the first."""
    config = our_config()
    gate = Gate(config)
    conns: dict[Any, DtlsServerConnection] = {}
    echoed, started = 0, 0.0
    while echoed < count:
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
            conn = DtlsServerConnection(result, config, gate.dtls12_context)
            conns[peer] = conn
            conn.start(now)
        else:
            conn.receive(data, peer, now)
            while (event := conn.next_event()) is not None:
                if type(event) is DataReceived:
                    if not echoed:
                        started = time.process_time()
                    conn.send(event.data)
                    echoed += 1
        for datagram, _ in conn.datagrams_to_send():
            sock.sendto(datagram, peer)
    return started


async def aio_server(sock: socket.socket, count: int, echo: bool) -> float:
    """`dtlsgate.io.aio.serve` on ``sock`` with the echo handler of ``dtlsgate serve``, until
    ``count`` handshakes completed (or records were echoed); the CPU time at the first
    record when ``echo``."""
    finished = asyncio.Event()
    done, started = 0, 0.0

    async def handler(stream: aio.DtlsStream) -> None:
        nonlocal done, started
        if not echo:
            done += 1
            if done == count:
                finished.set()
        while data := await stream.recv():
            stream.send(data)
            if echo:
                if not done:
                    started = time.process_time()
                done += 1
                if done == count:
                    finished.set()

    server = await aio.serve(handler, config=our_config(), sock=sock)
    await finished.wait()
    server.close()
    await server.wait_closed()
    return started


def serve_aio(sock: socket.socket, count: int) -> None:
    aio.run(aio_server(sock, count, echo=False))


def echo_aio(sock: socket.socket, count: int) -> float:
    return aio.run(aio_server(sock, count, echo=True))


def serve_aio_asyncio(sock: socket.socket, count: int) -> None:
    asyncio.run(aio_server(sock, count, echo=False))


def echo_aio_asyncio(sock: socket.socket, count: int) -> float:
    return asyncio.run(aio_server(sock, count, echo=True))


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


SERVERS: dict[str, Any] = {
    "dtlsgate": serve_ours,
    "aio": serve_aio,
    "aio-asyncio": serve_aio_asyncio,
    "pyopenssl": serve_pyopenssl,
}
# --echo: each returns the process's CPU time at the first record.
ECHO_SERVERS: dict[str, Any] = {
    "dtlsgate": echo_ours,
    "aio": echo_aio,
    "aio-asyncio": echo_aio_asyncio,
}


def server_process(
    name: str, count: int, echo: bool, ready: Any, result: Any, profile: bool = False
) -> None:
    sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4 << 20)
    sock.bind(("127.0.0.1", 0))
    ready.send(sock.getsockname()[1])
    ready.recv()  # the clients are about to start
    serve = (ECHO_SERVERS if echo else SERVERS)[name]
    cpu, before = time.process_time(), resource.getrusage(resource.RUSAGE_SELF)
    if profile:
        profiler = cProfile.Profile()
        started = profiler.runcall(serve, sock, count)
        report_profile(profiler, count, "record" if echo else "handshake")
    else:
        started = serve(sock, count)
    after = resource.getrusage(resource.RUSAGE_SELF)
    usage = {field: getattr(after, field) - getattr(before, field) for field in USAGE}
    result.send((time.process_time() - (started or cpu), usage))


# getrusage fields reported by --rusage (from the server's start: with --echo the handshakes
# before the first record are in them, a few against thousands of records).
USAGE = ("ru_utime", "ru_stime", "ru_nvcsw", "ru_nivcsw", "ru_minflt")


def report_profile(
    profiler: cProfile.Profile, count: int, unit: str = "handshake", top: int = 30
) -> None:
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
    print(f"per {unit}: {python_calls / count:.0f} Python calls, {c_calls / count:.0f} C calls")
    print(
        f"own time per {unit}: {1e6 * own_sum / count:.0f} us; system calls"
        f" {1e6 * sockets / count:.0f} us, Python code {1e6 * python / count:.0f} us,"
        f" other C calls {1e6 * (own_sum - sockets - python) / count:.0f} us"
    )
    print(f"{'own %':>6} {'own us':>7} {'cum us':>7} {'calls':>6}  function (per {unit})")
    for own, total, calls, where in rows[:top]:
        print(
            f"{100 * own / own_sum:6.1f} {1e6 * own / count:7.1f} {1e6 * total / count:7.1f}"
            f" {calls / count:6.1f}  {where}"
        )


class Client:
    """One pyOpenSSL DTLS client in memory over its own UDP socket, handshaking again and
    again (a new connection each time, from the same address)."""

    def __init__(self, ctx: SSL.Context, server: tuple[str, int], record: bytes = b"") -> None:
        self.ctx, self.server = ctx, server
        # With a record: one handshake, then that record sent again and again, each once
        # the previous one came back (``completed`` counts those).
        self.record = record
        self.established = False
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self.sock.bind(("127.0.0.1", 0))
        self.completed = 0
        self.server_stopped = False
        self.start()

    def start(self) -> None:
        self.conn = SSL.Connection(self.ctx, None)
        self.conn.set_connect_state()
        self.step(b"")

    def step(self, datagram: bytes) -> None:
        if datagram:
            self.conn.bio_write(datagram)
        if self.established:
            # ZeroReturnError: the aio server's close_notify once it echoed --count records.
            with contextlib.suppress(SSL.WantReadError, SSL.ZeroReturnError):
                if self.conn.recv(MAX_DATAGRAM) == self.record:
                    self.completed += 1
                    self.send_record()
            return
        try:
            self.conn.do_handshake()
            finished = True
        except SSL.WantReadError:
            finished = False
        except SSL.ZeroReturnError:
            # The aio server's close_notify to a handshake in progress: it reached --count
            # and stopped (before this process saw the last of its handshakes complete).
            self.server_stopped = True
            return
        for out in read_all(self.conn):
            self.sock.sendto(out, self.server)
        if finished and self.record:
            self.established = True
            self.send_record()
        elif finished:
            self.completed += 1
            self.start()

    def send_record(self) -> None:
        self.conn.send(self.record)
        for out in read_all(self.conn):
            self.sock.sendto(out, self.server)


def run_clients(port: int, count: int, clients: int, record: bytes = b"") -> None:
    ctx = client_context()
    pool = [Client(ctx, ("127.0.0.1", port), record) for _ in range(clients)]
    by_sock = {c.sock: c for c in pool}
    last, progress = time.monotonic(), 0
    while sum(c.completed for c in pool) < count:
        ready, _, _ = select.select(list(by_sock), [], [], 1.0)
        for s in ready:
            by_sock[s].step(s.recv(MAX_DATAGRAM))
        if any(c.server_stopped for c in pool):
            break
        total = sum(c.completed for c in pool)
        if total != progress:
            last, progress = time.monotonic(), total
        elif time.monotonic() - last > STALL_SECONDS:
            sys.exit(f"stalled after {total} {'records' if record else 'handshakes'}")
    for c in pool:
        c.sock.close()


def one_round(
    name: str,
    count: int,
    clients: int,
    profile: bool = False,
    record: bytes = b"",
    usages: list[dict[str, float]] | None = None,
) -> float:
    """Handshakes (echoed records with ``record``) per CPU-second of the server process;
    the server's getrusage differences (`USAGE`) appended to ``usages``."""
    mp = multiprocessing.get_context("fork")
    ready, ready_child = mp.Pipe()
    result, result_child = mp.Pipe()
    args = (name, count, bool(record), ready_child, result_child, profile)
    proc = mp.Process(target=server_process, args=args)
    proc.start()
    try:
        port = ready.recv()
        ready.send(True)
        run_clients(port, count, clients, record)
        if not result.poll(30):
            sys.exit(f"{name}: the server did not report")
        cpu, usage = result.recv()
        if usages is not None:
            usages.append(usage)
    finally:
        proc.join(10)
        with contextlib.suppress(Exception):
            proc.kill()
    return count / cpu


def in_process(name: str, count: int, clients: int, record: int) -> None:
    """One run of server ``name`` in this process; the clients in a child process."""
    sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4 << 20)
    sock.bind(("127.0.0.1", 0))
    argv = [sys.executable, __file__, "--count", str(count), "--clients", str(clients)]
    argv += ["--clients-for", str(sock.getsockname()[1])]
    argv += ["--echo", "--record", str(record)] if record else []
    child = subprocess.Popen(argv)
    finished = threading.Event()

    def watch() -> None:  # clients that died (a stall) must not leave the server waiting
        child.wait()
        if not finished.wait(STALL_SECONDS):
            print(f"{name}: the clients ended first; stopped", file=sys.stderr)
            os._exit(1)

    threading.Thread(target=watch, daemon=True).start()
    try:
        cpu = time.process_time()
        started = (ECHO_SERVERS if record else SERVERS)[name](sock, count)
        cpu = time.process_time() - (started or cpu)
        finished.set()
        child.wait(STALL_SECONDS)
    finally:
        child.kill()
    print(f"{name}: {count} {'records' if record else 'handshakes'}, {cpu:.3f} CPU-seconds")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--count", type=int, default=300)
    parser.add_argument("--rounds", type=int, default=7)
    parser.add_argument("--clients", type=int, default=4)
    parser.add_argument("--profile", action="store_true")
    parser.add_argument("--servers", default="dtlsgate,pyopenssl")
    parser.add_argument("--echo", action="store_true", help="echoed records, not handshakes")
    parser.add_argument("--record", type=int, default=1200, help="--echo: record size")
    parser.add_argument("--in-process", action="store_true", help="for callgrind: see above")
    parser.add_argument("--rusage", action="store_true", help="user/system split: see above")
    parser.add_argument("--clients-for", type=int, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.clients_for:  # the child of --in-process
        record = os.urandom(args.record) if args.echo else b""
        run_clients(args.clients_for, args.count, args.clients, record)
        return
    names = args.servers.split(",")
    table = ECHO_SERVERS if args.echo else SERVERS
    if len(names) < (1 if args.profile or args.in_process else 2) or not set(names) <= set(table):
        parser.error(f"--servers: two or more of {', '.join(table)}")
    if args.in_process:
        in_process(names[0], args.count, args.clients, args.record if args.echo else 0)
        return
    record = os.urandom(args.record) if args.echo else b""
    if args.profile:
        one_round(names[0], args.count, args.clients, profile=True, record=record)
        return
    rates: dict[str, list[float]] = {name: [] for name in names}
    usages: dict[str, list[dict[str, float]]] = {name: [] for name in names}
    for _ in range(args.rounds):
        for name in names:
            rate = one_round(name, args.count, args.clients, record=record, usages=usages[name])
            rates[name].append(rate)
    what = f"echoed {args.record}-byte records" if args.echo else "DTLS 1.2 full handshakes"
    print(
        f"{what} per server CPU-second, {args.count} x {args.rounds} rounds,"
        f" {args.clients} clients in another process over UDP loopback"
    )
    print("(ECDHE-ECDSA P-256, AES-128-GCM, EMS, cookie exchange)")
    for name, values in rates.items():
        print(f"  {name:11s} median {statistics.median(values):8.0f}/s  best {max(values):8.0f}/s")
    first = names[0]
    for name in names[1:]:
        ratios = [a / b for a, b in zip(rates[first], rates[name], strict=True)]
        print(f"  {first} / {name} = {statistics.median(ratios):.3f} (median of round ratios)")
    if args.rusage:
        unit = "record" if args.echo else "handshake"
        print(f"getrusage per {unit}, median of rounds (us: microseconds)")
        print("  server       user us  system us  vol. csw  invol. csw  minor faults")
        for name, runs in usages.items():
            med = {f: statistics.median(u[f] for u in runs) / args.count for f in USAGE}
            print(
                f"  {name:11s} {1e6 * med['ru_utime']:8.1f} {1e6 * med['ru_stime']:10.1f}"
                f" {med['ru_nvcsw']:9.2f} {med['ru_nivcsw']:11.2f} {med['ru_minflt']:13.2f}"
            )


if __name__ == "__main__":
    main()
