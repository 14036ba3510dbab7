"""The application data record path, counted: what our server runs per echoed record.

bench/throughput.py's loop (``receive``, ``next_event``, ``send``, ``datagrams_to_send`` per
1,200-byte record) after one handshake, for DTLS 1.2 (a pyOpenSSL client, bench/handshake.py's
setup: ECDHE-ECDSA P-256, AES-128-GCM) or DTLS 1.3 (our client, TLS_AES_128_GCM_SHA256,
P-256, the gate's HelloRetryRequest first). The client's records are made before the loop,
so only the server's work is in it.

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
import functools
import gc
import os
import sys
import time
from typing import Any

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

from handshake import (
    PEER,
    OurServer,
    PyOpenSSLClient,
    client_context,
    handshake,
    our_config,
)
from opcount import count_opcodes

from dtlsgate.config import ClientConfig
from dtlsgate.connection.datagram13 import Dtls13ClientConnection, Dtls13ServerConnection
from dtlsgate.events import DataReceived
from dtlsgate.gate.datagram import Dtls13Admit, Gate, Reply
from dtlsgate.wire.enums import CipherSuite, NamedGroup

RECORD = 1200
MAX_STEPS = 20


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
    config = our_config()
    gate = Gate(config)
    client = Dtls13ClientConnection(
        ClientConfig(
            insecure=True,
            dtls_versions=(0xFEFC,),
            groups=(NamedGroup.secp256r1,),
            cipher_suites=(CipherSuite.TLS_AES_128_GCM_SHA256,),
        ),
        PEER,
    )
    now = time.time()
    client.connect(now)
    server: Dtls13ServerConnection | None = None
    for _ in range(MAX_STEPS):
        to_server = [d for d, _ in client.datagrams_to_send()]
        to_client: list[bytes] = []
        for d in to_server:
            if server is None:
                result = gate.receive(d, PEER, now)
                if type(result) is Reply:
                    to_client.append(result.data)
                elif type(result) is Dtls13Admit:
                    server = Dtls13ServerConnection.from_admit(
                        result, config, context=gate.dtls13_context
                    )
                    server.start(now)
            else:
                server.receive(d, PEER, now)
        if server is not None:
            to_client += [d for d, _ in server.datagrams_to_send()]
        for d in to_client:
            client.receive(d, PEER, now)
        if not to_client and not to_server:
            break
    assert server is not None and server.handshake_complete and client.handshake_complete
    while server.next_event() is not None:
        pass
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
    echoed = 0

    def echo(done: int, record: bytes) -> int:
        conn.receive(record, PEER, now)
        event = conn.next_event()
        assert type(event) is DataReceived
        conn.send(event.data)
        conn.datagrams_to_send()
        return done + 1

    if not args.opcodes:
        gc.disable()
        echoed = functools.reduce(echo, records, 0)
        gc.enable()
        print(f"{echoed} records echoed", file=sys.stderr)
        return

    echoed, ops = count_opcodes(lambda: functools.reduce(echo, records, 0))
    total = sum(ops.values())
    print(f"{args.version}: {total / echoed:.1f} bytecodes per echoed record ({echoed} records)")
    for key, n in ops.most_common(args.top):
        print(f"  {n / echoed:7.1f}  {key}")


if __name__ == "__main__":
    main()
