"""The application data record path, counted: what our server runs per echoed record.

bench/throughput.py's loop (``receive``, ``next_event``, ``send``, ``datagrams_to_send`` per
1,200-byte record) after one handshake, for DTLS 1.2 (a pyOpenSSL client, bench/handshake.py's
setup: ECDHE-ECDSA P-256, AES-128-GCM) or DTLS 1.3 (our client, TLS_AES_128_GCM_SHA256,
P-256, the gate's HelloRetryRequest first: bench/in_memory.py). The client's records are
made before the loop, so only the server's work is in it.

- Default: the loop runs inside ``functools.reduce`` with the cyclic collector off, so that
  callgrind counts it alone::

      PYTHONHASHSEED=0 valgrind --tool=callgrind --collect-atstart=no \\
          --toggle-collect=functools_reduce .venv/bin/python bench/echo_count.py dtls12
      # total instructions / --count = instructions per echoed record

- ``--opcodes``: the package's Python bytecodes per record (``sys.settrace`` opcode events,
  as bench/opcodes.py counts them), in total and per function.

Usage: python bench/echo_count.py {dtls12,dtls13} [--count N] [--opcodes] [--top K]
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from typing import Any

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

import in_memory
from handshake import (
    PEER,
    OurServer,
    PyOpenSSLClient,
    client13_config,
    client_context,
    handshake,
    our_config,
)
from opcount import count_records

from dtlsgate.connection.datagram13 import Dtls13ClientConnection
from dtlsgate.events import DataReceived
from dtlsgate.gate.datagram import Gate

RECORD = 1200


def dtls12(count: int) -> tuple[Any, list[bytes]]:
    """An established DTLS 1.2 server connection and ``count`` records from its client."""
    config = our_config()
    server, client = OurServer(config, Gate(config)), PyOpenSSLClient(client_context())
    handshake(server, client)
    conn = server.conn
    assert conn is not None
    while conn.next_event() is not None:
        pass
    payload = os.urandom(RECORD)
    records: list[bytes] = []
    for _ in range(count):
        client.conn.send(payload)
        while True:
            try:
                records.append(client.conn.bio_read(65535))
            except Exception:  # SSL.WantReadError: nothing more
                break
    return conn, records


def dtls13(count: int) -> tuple[Any, list[bytes]]:
    """An established DTLS 1.3 server connection and ``count`` records from its client."""
    client = Dtls13ClientConnection(client13_config(), PEER)
    server = in_memory.handshake(client, Gate(our_config()), PEER, PEER)
    payload = os.urandom(RECORD)
    records: list[bytes] = []
    for _ in range(count):
        client.send(payload)
        records += [d for d, _ in client.datagrams_to_send()]
    return server, records


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("version", choices=("dtls12", "dtls13"))
    parser.add_argument("--count", type=int, default=1000)
    parser.add_argument("--opcodes", action="store_true")
    parser.add_argument("--top", type=int, default=15)
    args = parser.parse_args()
    conn, records = (dtls12 if args.version == "dtls12" else dtls13)(args.count)
    assert len(records) == args.count
    now = time.time()

    def echo(done: int, record: bytes) -> int:
        conn.receive(record, PEER, now)
        event = conn.next_event()
        assert type(event) is DataReceived
        conn.send(event.data)
        conn.datagrams_to_send()
        return done + 1

    count_records(echo, records, args.version, "echoed record", args.top, args.opcodes)


if __name__ == "__main__":
    main()
