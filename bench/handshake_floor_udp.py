"""The floor per server CPU-second over UDP: bench/handshake_floor.py's cryptography calls plus
the socket work our DTLS 1.2 server does per handshake, against pyOpenSSL's DTLS server and
ours as bench/handshake_udp.py measures them, in the same rounds.

The floor server (a process of its own on a UDP socket on loopback, like the others)
receives each client datagram with one ``recvfrom`` and, when a client flight is complete,
makes that flight's cryptography calls (``Floor``: the cookie on ClientHello1; the cookie,
the transcript, ECDHE and the signature on ClientHello2; the rest on the client's last
flight) and sends our server's answer with one ``sendto`` per datagram: the same number of
datagrams of the same sizes both ways as our server (recorded from one real handshake at
start-up: 154/175/166 bytes in, 49/770/211 out). Its only Python is the loop, a dict
lookup per datagram and a counter. No real client can talk to it (its answers are replayed
bytes), so its clients replay the recorded client flights from ``--clients`` sockets in
another process. A replaying client is much cheaper than a pyOpenSSL one, which changes
how often the server finds its queue empty and sleeps in ``recvfrom``; so by default each
replaying client first spins for the CPU time a pyOpenSSL client spends on that step
(measured at start-up, in memory against pyOpenSSL's server), which keeps the client
process as busy as bench/handshake_udp.py's. ``--no-pace`` turns that off.

``--sockets`` adds a fourth server in the same rounds: the floor's socket work alone
(no cryptography), to split the floor into system calls and crypto.

The figure is each server's CPU time (``time.process_time`` in its process) per completed
handshake; the ratios are medians of per-round ratios. ``floor / pyopenssl`` (rates) is
the highest rate per CPU-second that a Python server over these sockets can reach, in
units of pyOpenSSL's.

Usage: python bench/handshake_floor_udp.py [--count N] [--rounds R] [--clients K]
       [--no-pace] [--sockets]
"""

from __future__ import annotations

import argparse
import contextlib
import multiprocessing
import os
import select
import socket
import statistics
import sys
import time
from typing import Any

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

import handshake_udp
from handshake import PyOpenSSLClient, PyOpenSSLServer, client_context, our_config
from handshake import pyopenssl_server_context as server_context
from handshake_floor import Floor, floor_steps, make_floor, record_handshake
from handshake_udp import MAX_DATAGRAM, STALL_SECONDS, one_round

from dtlsgate.gate.datagram import Gate

# Set in main() before the server processes fork.
FLOOR: Floor | None = None
CLIENT_FLIGHTS: list[list[bytes]] = []
SERVER_FLIGHTS: list[list[bytes]] = []


def serve_floor(sock: socket.socket, count: int, crypto: bool = True) -> None:
    """``count`` handshakes' worth of datagrams in and out, and the floor's calls."""
    assert FLOOR is not None
    steps = floor_steps(FLOOR)
    # How many datagrams each client flight has; what we send after each one.
    sizes = [len(flight) for flight in CLIENT_FLIGHTS]
    answers = SERVER_FLIGHTS
    last = len(steps) - 1
    seen: dict[Any, list[int]] = {}  # peer -> [flight, datagrams of it received]
    done = 0
    while done < count:
        _, peer = sock.recvfrom(MAX_DATAGRAM)
        state = seen.get(peer)
        if state is None:
            state = seen[peer] = [0, 0]
        state[1] += 1
        flight = state[0]
        if state[1] < sizes[flight]:
            continue
        if crypto:
            steps[flight]()
        for datagram in answers[flight]:
            sock.sendto(datagram, peer)
        if flight == last:
            del seen[peer]
            done += 1
        else:
            state[0], state[1] = flight + 1, 0


def serve_sockets(sock: socket.socket, count: int) -> None:
    serve_floor(sock, count, crypto=False)


class Replayer:
    """One client over its own UDP socket: sends the recorded client flights, each after
    the server's whole answer to the previous one (and a spin for a real client's work)."""

    def __init__(self, server: tuple[str, int], pace: list[float]) -> None:
        self.server, self.pace = server, pace
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self.sock.bind(("127.0.0.1", 0))
        self.completed = 0
        self.start()

    def start(self) -> None:
        self.flight, self.received = 0, 0
        self.send()

    def send(self) -> None:
        spin(self.pace[self.flight])
        for datagram in CLIENT_FLIGHTS[self.flight]:
            self.sock.sendto(datagram, self.server)

    def step(self) -> None:
        self.received += 1
        if self.received < len(SERVER_FLIGHTS[self.flight]):
            return
        self.flight, self.received = self.flight + 1, 0
        if self.flight == len(SERVER_FLIGHTS):
            spin(self.pace[self.flight])  # the client's step on our last flight
            self.completed += 1
            self.start()
        else:
            self.send()


def spin(seconds: float) -> None:
    end = time.process_time() + seconds
    while time.process_time() < end:
        pass


def run_replayers(port: int, count: int, clients: int, pace: list[float]) -> None:
    pool = [Replayer(("127.0.0.1", port), pace) for _ in range(clients)]
    by_sock = {c.sock: c for c in pool}
    last, progress = time.monotonic(), 0
    while sum(c.completed for c in pool) < count:
        ready, _, _ = select.select(list(by_sock), [], [], 1.0)
        for s in ready:
            s.recv(MAX_DATAGRAM)
            by_sock[s].step()
        total = sum(c.completed for c in pool)
        if total != progress:
            last, progress = time.monotonic(), total
        elif time.monotonic() - last > STALL_SECONDS:
            sys.exit(f"stalled after {total} handshakes")
    for c in pool:
        c.sock.close()


def replay_round(name: str, count: int, clients: int, pace: list[float]) -> float:
    """Handshakes per CPU-second of the server process (as handshake_udp.one_round)."""
    mp = multiprocessing.get_context("fork")
    ready, ready_child = mp.Pipe()
    result, result_child = mp.Pipe()
    proc = mp.Process(
        target=handshake_udp.server_process, args=(name, count, False, ready_child, result_child)
    )
    proc.start()
    try:
        port = ready.recv()
        ready.send(True)
        run_replayers(port, count, clients, pace)
        if not result.poll(30):
            sys.exit(f"{name}: the server did not report")
        cpu, _usage = result.recv()  # (CPU seconds, getrusage deltas)
    finally:
        proc.join(10)
        with contextlib.suppress(Exception):
            proc.kill()
    return count / cpu


def client_pace(count: int = 100) -> list[float]:
    """A pyOpenSSL client's CPU seconds per step (its first flight, then after each of the
    server's flights), in memory against pyOpenSSL's server."""
    cctx, sctx = client_context(), server_context()
    totals = [0.0] * (len(CLIENT_FLIGHTS) + 1)
    for _ in range(count):
        start = time.process_time()
        client = PyOpenSSLClient(cctx)
        to_server = client.step([])
        totals[0] += time.process_time() - start
        server = PyOpenSSLServer(sctx)
        for step in range(1, len(totals)):
            to_client = server.feed(to_server)
            start = time.process_time()
            to_server = client.step(to_client)
            totals[step] += time.process_time() - start
    return [t / count for t in totals]


def main() -> None:
    global FLOOR
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--count", type=int, default=300)
    parser.add_argument("--rounds", type=int, default=7)
    parser.add_argument("--clients", type=int, default=4)
    parser.add_argument("--no-pace", action="store_true", help="replay without spinning")
    parser.add_argument("--sockets", action="store_true", help="also the sockets alone")
    args = parser.parse_args()
    config = our_config()
    gate = Gate(config)
    FLOOR = make_floor(config, gate)
    _, client_flights, server_flights = record_handshake(config, gate)
    while not client_flights[-1] and not server_flights[-1]:
        client_flights.pop()
        server_flights.pop()
    CLIENT_FLIGHTS[:] = [f for f in client_flights if f]
    SERVER_FLIGHTS[:] = server_flights[: len(CLIENT_FLIGHTS)]
    assert len(CLIENT_FLIGHTS) == len(floor_steps(FLOOR)), (CLIENT_FLIGHTS, SERVER_FLIGHTS)
    handshake_udp.SERVERS["floor"] = serve_floor
    handshake_udp.SERVERS["sockets"] = serve_sockets
    pace = [0.0] * (len(CLIENT_FLIGHTS) + 1) if args.no_pace else client_pace()
    replayed = ["floor", "sockets"] if args.sockets else ["floor"]
    names = [*replayed, "pyopenssl", "dtlsgate"]
    rates: dict[str, list[float]] = {name: [] for name in names}
    for _ in range(args.rounds):
        for name in names:
            if name in replayed:
                rates[name].append(replay_round(name, args.count, args.clients, pace))
            else:
                rates[name].append(one_round(name, args.count, args.clients))

    def ratio(a: str, b: str) -> float:
        return statistics.median(x / y for x, y in zip(rates[a], rates[b], strict=True))

    sizes_in = "/".join(str(len(d)) for f in CLIENT_FLIGHTS for d in f)
    sizes_out = "/".join(str(len(d)) for f in SERVER_FLIGHTS for d in f)
    print(
        f"DTLS 1.2 server handshakes per server CPU-second, {args.count} x {args.rounds} rounds,"
        f" {args.clients} clients in another process over UDP loopback"
    )
    print(
        f"floor: the cryptography calls + recvfrom {sizes_in} / sendto {sizes_out} bytes;"
        f" replayed clients, {'not paced' if args.no_pace else 'paced'}"
        f" ({'/'.join(f'{1e6 * p:.0f}' for p in pace)} us per step)"
    )
    for name, values in rates.items():
        print(f"  {name:10s} median {statistics.median(values):8.0f}/s  best {max(values):8.0f}/s")
    print(f"  floor / pyopenssl    = {ratio('floor', 'pyopenssl'):.2f} (median of round ratios)")
    print(f"  dtlsgate / pyopenssl = {ratio('dtlsgate', 'pyopenssl'):.2f}")
    print(f"  dtlsgate / floor     = {ratio('dtlsgate', 'floor'):.2f}")
    if args.sockets:
        print(f"  sockets / pyopenssl  = {ratio('sockets', 'pyopenssl'):.2f}")


if __name__ == "__main__":
    main()
