"""Echo throughput with 1,200-byte records: our server against a pyOpenSSL DTLS server.

After one handshake with each server (see bench/handshake.py, same drivers), a pyOpenSSL
client in memory sends N application data records of 1,200 bytes; each server decrypts the
record, and sends the same bytes back in a new record. Only the server's calls are timed
(ours: ``receive`` + ``next_event`` + ``send`` + ``datagrams_to_send``; pyOpenSSL:
``bio_write`` + ``recv`` + ``send`` + ``bio_read``). Rounds alternate; the figure is the
median of per-round ratios.

Usage: python bench/throughput.py [--count N] [--rounds R]
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

from handshake import (
    PEER,
    OurServer,
    PyOpenSSLClient,
    PyOpenSSLServer,
    client_context,
    handshake,
    our_config,
    pyopenssl_server_context,
    read_all,
)

from dtlsgate.events import DataReceived
from dtlsgate.gate.datagram import Gate

RECORD = 1200


def records(client: PyOpenSSLClient, count: int) -> list[bytes]:
    out = []
    payload = os.urandom(RECORD)
    for _ in range(count):
        client.conn.send(payload)
        out += read_all(client.conn)
    return out


def ours(count: int) -> float:
    config = our_config()
    server, client = OurServer(config, Gate(config)), PyOpenSSLClient(client_context())
    handshake(server, client)
    conn = server.conn
    assert conn is not None
    while conn.next_event() is not None:  # HandshakeCompleted
        pass
    incoming = records(client, count)
    now = time.time()
    t = time.perf_counter()
    for record in incoming:
        conn.receive(record, PEER, now)
        event = conn.next_event()
        assert type(event) is DataReceived
        conn.send(event.data)
        conn.datagrams_to_send()
    spent = time.perf_counter() - t
    return count * RECORD / spent


def theirs(count: int) -> float:
    server, client = PyOpenSSLServer(pyopenssl_server_context()), PyOpenSSLClient(client_context())
    handshake(server, client)
    conn = server.conn
    incoming = records(client, count)
    t = time.perf_counter()
    for record in incoming:
        conn.bio_write(record)
        data = conn.recv(65535)
        conn.send(data)
        conn.bio_read(65535)
    spent = time.perf_counter() - t
    return count * RECORD / spent


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--count", type=int, default=20000)
    parser.add_argument("--rounds", type=int, default=7)
    args = parser.parse_args()
    a, b = [], []
    for _ in range(args.rounds):
        a.append(ours(args.count))
        b.append(theirs(args.count))
    ratios = [x / y for x, y in zip(a, b, strict=True)]
    mb = 1e6
    print(f"DTLS 1.2 echo, {RECORD}-byte records, server side only, {args.count} x {args.rounds}")
    print(f"  dtlsgate   median {statistics.median(a) / mb:7.1f} MB/s  best {max(a) / mb:7.1f}")
    print(f"  pyopenssl  median {statistics.median(b) / mb:7.1f} MB/s  best {max(b) / mb:7.1f}")
    print(f"  dtlsgate / pyopenssl = {statistics.median(ratios):.2f} (median of round ratios)")


if __name__ == "__main__":
    main()
