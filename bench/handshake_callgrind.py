"""Machine instructions per DTLS 1.2 server handshake, counted by callgrind: deterministic
where timings on a shared machine are not.

The server runs in this process: bench/handshake.py's ``OurServer`` (the gate, then a
DtlsServerConnection on the gate's prepared context), or with ``--pyopenssl`` its
``PyOpenSSLServer``. The pyOpenSSL client (ECDHE-ECDSA P-256, AES-128-GCM, EMS) runs in a
child process and exchanges its datagrams over a pipe, so callgrind counts the server's
instructions only (and the few of the pipe loop, the same for every server). Start-up
(imports, the certificate) is not a handshake: run twice, with N and M handshakes, and take
the difference::

    for n in 10 110; do
        PYTHONHASHSEED=0 valgrind --tool=callgrind --callgrind-out-file=cg.$n \\
            .venv/bin/python bench/handshake_callgrind.py --count $n
    done
    # (total of cg.110 - total of cg.10) / 100 = instructions per handshake

Compile the tree first (``python -m compileall src bench``): a module compiled during one
run and not the other shows up as parser instructions. To compare another tree, run the
same command with ``PYTHONPATH=<tree>/src`` and that tree's bench directory.

With ``--dtls13``, the handshake is DTLS 1.3 (RFC 9147): bench/handshake.py's
``OurServer13`` (the gate's stateless HelloRetryRequest, then a Dtls13ServerConnection on
the gate's prepared context) in this process, and our DTLS 1.3 client (ECDHE P-256,
TLS_AES_128_GCM_SHA256, the ECDSA P-256 certificate not verified) in the child: the same
difference gives the DTLS 1.3 server's instructions per handshake.

With ``--floor``, the server is bench/handshake_floor.py's ``Floor`` (the cryptography
calls alone) answering with our server's datagrams as recorded at start-up, and the child
replays the recorded client flights instead of running a client: the same pipe traffic,
so the same difference gives the floor's instructions per handshake.

With ``--null``, the same replay is answered with the recorded datagrams and no work at
all: what is left is this driver's own (the pipe, the framing), to subtract from the
others' counts when they are split by object or compared as costs of the server alone.

Every call into the server is made through ``operator.call``, so that callgrind's
``--toggle-collect=_operator_call`` counts the server's calls alone (nothing of the driver,
the client or start-up); the difference of two runs still takes out what the first
handshakes do once. With ``--in-memory`` (ours or ``--pyopenssl``), the pyOpenSSL client
runs in this process as in bench/handshake.py, between the server's calls: the server then
meets the caches and branch predictors as the client left them, as it does in that bench;
``--in-flight K`` runs K handshakes in lockstep, as that bench does by default (its
``handshakes``), so the server's calls for K handshakes come back to back.
Cache and branch figures: add ``--cache-sim=yes --branch-sim=yes`` and the cache sizes (the
defaults are read from the host, which a VM may misreport) to the same two runs; the
difference of each event is then per handshake too (bench/RESULTS.md, mem11).

With ``--group x25519``, our server's ECDHE group is X25519 instead of P-256 (the pyOpenSSL
client offers both; with ``--dtls13`` our client offers X25519 alone); pyOpenSSL's server and
the floor stay on P-256.

Usage: python bench/handshake_callgrind.py [--count N] [--pyopenssl | --floor | --null | --dtls13]
    [--in-memory [--in-flight K]] [--group secp256r1 | x25519]
"""

from __future__ import annotations

import argparse
import contextlib
import operator
import os
import struct
import subprocess
import sys
import time
from typing import IO, Any

from OpenSSL import SSL

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

from handshake import (
    PEER,
    OurServer,
    OurServer13,
    PyOpenSSLClient,
    PyOpenSSLServer,
    client13_config,
    client_context,
    handshakes,
    in_batches,
    our_config,
    pyopenssl_server_context,
    read_all,
)

from dtlsgate.gate.datagram import Gate
from dtlsgate.wire.enums import NamedGroup

_COUNT = struct.Struct("!II")  # datagrams in the message, and 1 when the handshake is over
_LENGTH = struct.Struct("!I")
MAX_STEPS = 10  # a handshake is 4 client flights


def send(pipe: IO[bytes], datagrams: list[bytes], done: bool = False) -> None:
    parts = [_COUNT.pack(len(datagrams), done)]
    for d in datagrams:
        parts += [_LENGTH.pack(len(d)), d]
    pipe.write(b"".join(parts))
    pipe.flush()


def receive(pipe: IO[bytes]) -> tuple[list[bytes], bool]:
    count, done = _COUNT.unpack(pipe.read(_COUNT.size))
    datagrams = []
    for _ in range(count):
        (length,) = _LENGTH.unpack(pipe.read(_LENGTH.size))
        datagrams.append(pipe.read(length))
    return datagrams, bool(done)


class FloorServer:
    """The floor's steps, one per client flight, each answered with our server's recorded
    datagrams."""

    def __init__(self, steps: Any, answers: list[list[bytes]]) -> None:
        self.steps, self.answers = steps, answers
        self.flight = 0
        self.done = False

    def feed(self, datagrams: list[bytes]) -> list[bytes]:
        if not datagrams or self.done:
            return []
        flight = self.flight
        self.steps[flight]()
        self.flight += 1
        self.done = self.flight == len(self.steps)
        return self.answers[flight]


def replay(count: int) -> None:
    """The child for --floor: our recorded client flights, as the pyOpenSSL client's pipe
    messages (its flights, then an empty one when it has finished)."""
    from handshake_floor import record_handshake

    config = our_config()
    flights = [f for f in record_handshake(config, Gate(config))[1] if f]
    inp, out = sys.stdin.buffer, sys.stdout.buffer
    for _ in range(count):
        for flight in [*flights, []]:
            send(out, flight)
            receive(inp)
        send(out, [], done=True)


def client(count: int) -> None:
    """The child: ``count`` pyOpenSSL handshakes over stdin/stdout."""
    ctx = client_context()
    inp, out = sys.stdin.buffer, sys.stdout.buffer
    for _ in range(count):
        conn = SSL.Connection(ctx, None)
        conn.set_connect_state()
        incoming: list[bytes] = []
        for _ in range(MAX_STEPS):
            for d in incoming:
                conn.bio_write(d)
            with contextlib.suppress(SSL.WantReadError):
                conn.do_handshake()
            send(out, read_all(conn))
            incoming, _ = receive(inp)
            if not incoming:
                break
        send(out, [], done=True)


def client13(count: int, group: NamedGroup) -> None:
    """The child for --dtls13: ``count`` handshakes of our DTLS 1.3 client over
    stdin/stdout."""
    from dtlsgate.connection.datagram13 import Dtls13ClientConnection

    config = client13_config(group)
    inp, out = sys.stdin.buffer, sys.stdout.buffer
    for _ in range(count):
        now = time.time()
        conn = Dtls13ClientConnection(config, PEER)
        conn.connect(now)
        for _ in range(MAX_STEPS):
            send(out, [d for d, _ in conn.datagrams_to_send()])
            incoming, _ = receive(inp)
            if not incoming:
                break
            for d in incoming:
                conn.receive(d, PEER, now)
        send(out, [], done=True)


class Counted:
    """A server whose calls go through ``operator.call``, so that callgrind's
    ``--toggle-collect=_operator_call`` counts them alone (the driver's own work is outside)."""

    def __init__(self, server: Any) -> None:
        self.server = server

    def feed(self, datagrams: list[bytes]) -> list[bytes]:
        return operator.call(self.server.feed, datagrams)

    @property
    def done(self) -> bool:
        return bool(self.server.done)


def in_memory(count: int, make: Any, in_flight: int) -> None:
    """``count`` handshakes with bench/handshake.py's in-memory pyOpenSSL clients, driven by
    its ``handshakes``, ``in_flight`` at a time."""
    cctx = client_context()
    spent = 0.0
    for size in in_batches(count, in_flight):
        spent += handshakes([(Counted(make()), PyOpenSSLClient(cctx)) for _ in range(size)])
    report(count, count, spent)  # handshakes raises unless every one completed


def report(completed: int, count: int, spent: float) -> None:
    """How many handshakes completed, and the time in the server's calls per handshake (for
    comparing the driver's modes, not under callgrind)."""
    per = spent / max(count, 1) * 1e6
    print(f"{completed} of {count} handshakes completed, {per:.0f} us in the server each")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--count", type=int, default=10)
    parser.add_argument("--pyopenssl", action="store_true", help="time pyOpenSSL's server")
    parser.add_argument("--floor", action="store_true", help="the cryptography calls alone")
    parser.add_argument("--null", action="store_true", help="the driver alone, no server work")
    parser.add_argument("--dtls13", action="store_true", help="a DTLS 1.3 handshake")
    parser.add_argument("--in-memory", action="store_true", help="the client in this process")
    parser.add_argument("--in-flight", type=int, default=1, help="--in-memory: in lockstep")
    parser.add_argument("--group", choices=["secp256r1", "x25519"], default="secp256r1")
    parser.add_argument("--client", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--replay", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args()
    group = NamedGroup[args.group]
    if args.client:
        if args.dtls13:
            client13(args.count, group)
        else:
            (replay if args.replay else client)(args.count)
        return
    args.replay = args.floor or args.null
    config = our_config(group)
    gate = Gate(config)
    sctx = pyopenssl_server_context() if args.pyopenssl else None
    make: Any = None
    if args.floor:
        from handshake_floor import floor_steps, make_floor, record_handshake

        steps = floor_steps(make_floor(config, gate))
        answers = [f for f in record_handshake(config, gate)[2] if f]
        make = lambda: FloorServer(steps, answers)  # noqa: E731
    elif args.null:
        from handshake_floor import record_handshake

        answers = [f for f in record_handshake(config, gate)[2] if f]
        nothing = [lambda: None] * len(answers)
        make = lambda: FloorServer(nothing, answers)  # noqa: E731
    if args.in_memory:
        make = lambda: PyOpenSSLServer(sctx) if sctx else OurServer(config, gate)  # noqa: E731
        in_memory(args.count, make, args.in_flight)
        return
    child = subprocess.Popen(
        [sys.executable, __file__, "--client", "--count", str(args.count)]
        + (["--replay"] if args.replay else [])
        + (["--dtls13"] if args.dtls13 else [])
        + ["--group", args.group],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
    )
    assert child.stdin is not None and child.stdout is not None
    completed = 0
    spent = 0.0
    for _ in range(args.count):
        if make is not None:
            server = make()
        elif args.dtls13:
            server = OurServer13(config, gate)
        elif sctx is not None:
            server = PyOpenSSLServer(sctx)
        else:
            server = OurServer(config, gate)
        for _ in range(MAX_STEPS + 1):
            datagrams, done = receive(child.stdout)
            if done:
                break
            start = time.thread_time()
            answer = operator.call(server.feed, datagrams)
            spent += time.thread_time() - start
            send(child.stdin, answer)
        completed += server.done
    child.stdin.close()
    child.wait(timeout=60)
    report(completed, args.count, spent)


if __name__ == "__main__":
    main()
