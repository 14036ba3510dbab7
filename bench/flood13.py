"""The gate under a flood of spoofed DTLS 1.3 ClientHellos: memory, and HRRs against HVRs.

1. Memory (issue 12's 200,000): distinct DTLS 1.3 ClientHellos (each random differs) from
   distinct spoofed addresses, with the cyclic garbage collector off, traced by tracemalloc
   after a warm-up (the DTLS 1.3 context, the jar's secret, CPython's free lists). Printed:
   the traced growth over the flood and at its middle (flat: nothing is kept per call, and
   with the collector off nothing is left in cycles either).
2. Rate, in-process, no sockets, interleaved round by round: the gate's stateless
   HelloRetryRequest for a DTLS 1.3 ClientHello against its HelloVerifyRequest for a DTLS
   1.2 one (same gate, same jar); the ratio is the figure, the rates are context only.

Usage: python bench/flood13.py [--count N] [--rounds R]
"""

from __future__ import annotations

import argparse
import gc
import statistics
import sys
import time
import tracemalloc
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "tests"))

from helpers import NOW, SERVER, client_config, server_config

from dtlsgate.config import ClientConfig
from dtlsgate.connection.datagram import DtlsClientConnection
from dtlsgate.connection.datagram13 import Dtls13ClientConnection
from dtlsgate.gate.datagram import Gate, Reply

RANDOM_AT = 13 + 12 + 2  # the ClientHello random inside the datagram


def dtls13_hello() -> bytes:
    client = Dtls13ClientConnection(client_config(), SERVER)
    client.connect(NOW)
    ((datagram, _),) = client.datagrams_to_send()
    return datagram


def dtls12_hello() -> bytes:
    cfg: ClientConfig = client_config(dtls_versions=(0xFEFD,))
    client = DtlsClientConnection(cfg, SERVER)
    client.connect(NOW)
    ((datagram, _),) = client.datagrams_to_send()
    return datagram


def flood(gate: Gate, template: bytearray, start: int, count: int) -> None:
    for i in range(start, start + count):
        template[RANDOM_AT : RANDOM_AT + 4] = i.to_bytes(4, "big")
        peer = (f"10.{(i >> 16) & 255}.{(i >> 8) & 255}.{i & 255}", 1024 + i % 60000)
        if type(gate.receive(bytes(template), peer, NOW + i / 1_000_000)) is not Reply:
            raise SystemExit(f"hello {i} was not answered")


def memory(count: int) -> None:
    gate = Gate(server_config())
    template = bytearray(dtls13_hello())
    gc.collect()
    gc.disable()
    flood(gate, template, 0, 5000)
    tracemalloc.start()
    try:
        before = tracemalloc.get_traced_memory()[0]
        flood(gate, template, 5000, count // 2)
        middle = tracemalloc.get_traced_memory()[0] - before
        flood(gate, template, 5000 + count // 2, count - count // 2)
        end, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
        gc.enable()
    print(
        f"{count:,} DTLS 1.3 ClientHellos, collector off: traced growth {middle:,} B at "
        f"half, {end - before:,} B at the end, peak {peak - before:,} B; "
        f"{gate.replies:,} HelloRetryRequests"
    )


def rates(count: int, rounds: int) -> None:
    gate = Gate(server_config())
    hellos = {"HRR (DTLS 1.3)": dtls13_hello(), "HVR (DTLS 1.2)": dtls12_hello()}
    results: dict[str, list[float]] = {name: [] for name in hellos}
    for r in range(rounds):
        for name, hello in hellos.items():
            template = bytearray(hello)
            start = time.perf_counter()
            flood(gate, template, r * count, count)
            results[name].append(count / (time.perf_counter() - start))
    ratios = [a / b for a, b in zip(*results.values(), strict=True)]
    for name, values in results.items():
        print(f"{name}: {statistics.median(values):,.0f} replies/s (median of {rounds})")
    low, high = min(ratios), max(ratios)
    print(f"HRR/HVR ratio: {statistics.median(ratios):.2f} (per-round {low:.2f}-{high:.2f})")


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--count", type=int, default=200_000)
    parser.add_argument("--rounds", type=int, default=5)
    args = parser.parse_args()
    memory(args.count)
    rates(min(args.count, 20_000), args.rounds)


if __name__ == "__main__":
    main()
