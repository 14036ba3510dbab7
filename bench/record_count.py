"""Application data records counted one direction at a time: what sealing a record (``send``
and ``datagrams_to_send``) or opening one (``receive`` and ``next_event``) costs our server
or our client, DTLS 1.2 or DTLS 1.3.

Our client and our server handshake in memory (bench/in_memory.py: the gate first, DTLS
1.2's HelloVerifyRequest or DTLS 1.3's HelloRetryRequest; ECDHE P-256, AES-128-GCM, the
ECDSA P-256 certificate of bench/handshake.py not verified). Then ``--count`` records of
``--size`` bytes go one way: with ``seal`` the counted loop is the sending side's ``send``
and ``datagrams_to_send`` per record; with ``open`` the other side seals the records first,
outside the count, and the counted loop is the receiving side's ``receive`` and
``next_event`` (each record must come out as its `DataReceived`). ``--side`` says whose
work is counted (default: the server).

The loop runs inside ``functools.reduce`` with the cyclic collector off, so that callgrind
counts it alone; two runs with different counts, and their difference, take out what the
first records do once (as bench/handshake_callgrind.py's handshakes)::

    for n in 200 1200; do
        PYTHONHASHSEED=0 valgrind --tool=callgrind --collect-atstart=no \\
            --toggle-collect=functools_reduce --callgrind-out-file=cg.$n \\
            .venv/bin/python bench/record_count.py dtls13 open --side server --count $n
    done
    # (total of cg.1200 - total of cg.200) / 1000 = instructions per record

``--opcodes``: the package's Python bytecodes per record instead, in total and per function
(``sys.settrace`` opcode events, as bench/echo_count.py counts them).

``--time R``: R rounds of ``--count`` records, each timed (``perf_counter``); prints the
median microseconds per record. For paired runs of two trees, alternated
(``PYTHONPATH=<tree>/src``); never a figure alone on a shared machine.

Usage: python bench/record_count.py {dtls12,dtls13} {seal,open} [--side server|client]
    [--count N] [--size BYTES] [--opcodes] [--top K] [--time R]
"""

from __future__ import annotations

import argparse
import functools
import os
import statistics
import sys
import time
from typing import Any

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

from handshake import client13_config, our_config
from in_memory import handshake
from opcount import count_records

from dtlsgate.config import ClientConfig
from dtlsgate.connection.datagram import DtlsClientConnection
from dtlsgate.connection.datagram13 import Dtls13ClientConnection
from dtlsgate.events import DataReceived
from dtlsgate.gate.datagram import Gate
from dtlsgate.wire.enums import CipherSuite, NamedGroup

CLIENT = ("127.0.0.1", 40000)
SERVER = ("127.0.0.1", 4433)


def connected_pair(version: str) -> tuple[Any, Any]:
    """Our client and our server after a handshake in memory, their events drained."""
    if version == "dtls12":
        config = ClientConfig(
            insecure=True,
            groups=(NamedGroup.secp256r1,),
            cipher_suites=(CipherSuite.TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256,),
        )
        client: Any = DtlsClientConnection(config, SERVER)
    else:
        client = Dtls13ClientConnection(client13_config(), SERVER)
    server = handshake(client, Gate(our_config()), CLIENT, SERVER)
    return client, server


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("version", choices=("dtls12", "dtls13"))
    parser.add_argument("direction", choices=("seal", "open"))
    parser.add_argument("--side", choices=("server", "client"), default="server")
    parser.add_argument("--count", type=int, default=1000)
    parser.add_argument("--size", type=int, default=1000)
    parser.add_argument("--opcodes", action="store_true")
    parser.add_argument("--top", type=int, default=15)
    parser.add_argument("--time", type=int, default=0, metavar="ROUNDS")
    args = parser.parse_args()
    client, server = connected_pair(args.version)
    conn, peer = (server, client) if args.side == "server" else (client, server)
    address = CLIENT if args.side == "server" else SERVER
    payload = os.urandom(args.size)
    now = time.time()

    def seal(done: int, data: bytes) -> int:
        conn.send(data)
        conn.datagrams_to_send()
        return done + 1

    def open_(done: int, record: bytes) -> int:
        conn.receive(record, address, now)
        event = conn.next_event()
        assert type(event) is DataReceived
        return done + 1

    rounds = max(args.time, 1)
    if args.direction == "seal":
        step, items = seal, [payload] * (args.count * rounds)
    else:
        records: list[bytes] = []
        for _ in range(args.count * rounds):
            peer.send(payload)
            records += [d for d, _ in peer.datagrams_to_send()]
        step, items = open_, records
    assert len(items) == args.count * rounds

    name = f"{args.version} {args.direction} ({args.side})"
    if args.time:
        spent = []
        for i in range(rounds):
            chunk = items[i * args.count : (i + 1) * args.count]
            start = time.perf_counter()
            functools.reduce(step, chunk, 0)
            spent.append(time.perf_counter() - start)
        per_record = statistics.median(spent) / args.count * 1e6
        print(f"{name}: {per_record:.3f} us per record")
        return
    count_records(step, items, name, "record", args.top, args.opcodes)


if __name__ == "__main__":
    main()
