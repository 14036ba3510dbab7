"""How long a server's side of a handshake takes over slow, lossy links, in simulated time:
what a handshake deadline (``ServerConfig.handshake_timeout``) must leave room for.

Our client and server (behind the gate) over tests/helpers.py's LatencyLink: one-way delay
0.05-1.8 s (by seed) plus an exponential jitter of mean 0.5 s, 10% duplication, the given
loss; MTU 300, certificates. For each version and loss rate it prints the server-side time
(from the gate's admission to the server's HandshakeCompleted) over ``--seeds`` seeds:
median, 99th and 99.9th percentile, maximum, and how many took over 15, 30, 45, 60 s.
Deterministic (no wall clock): the same numbers on any machine.

    .venv/bin/python bench/lossy_handshakes.py [--seeds 1000] [--first 0] [--loss 0.2 0.3]
"""

from __future__ import annotations

import argparse
import statistics
import sys
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "tests"))

from helpers import (
    DatagramPair,
    LatencyLink,
    StillRunning,
    client_config,
    make_pair,
    make_pair13,
    run_over_link,
    server_config,
)

from dtlsgate.events import HandshakeCompleted

MTU = 300


class TimedPair(DatagramPair):
    """A pair that notes when the server was admitted and when it completed."""

    admitted_at: float | None = None
    server_done_at: float | None = None

    def to_server(self, datagrams: list[bytes]) -> None:
        had = self.server is not None
        super().to_server(datagrams)
        if not had and self.server is not None:
            self.admitted_at = self.now

    def drain(self) -> None:
        before = len(self.server_events)
        super().drain()
        new = self.server_events[before:]
        if self.server_done_at is None and any(isinstance(e, HandshakeCompleted) for e in new):
            self.server_done_at = self.now


def server_side(version: str, seed: int, loss: float) -> float | None:
    """The server-side handshake time of one seeded run, None when it never completed."""
    link = LatencyLink(seed, min_delay=0.05 + (seed % 8) * 0.25, jitter=0.5, loss=loss, dup=0.1)
    if version == "DTLS 1.2":
        pair: Any = make_pair(server_config(mtu=MTU), client_config(mtu=MTU))
    else:
        pair = make_pair13(server_config(mtu=MTU), client_config(mtu=MTU), gated=True)
    pair.__class__ = TimedPair
    try:
        run_over_link(pair, link, 20_000)
    except StillRunning:
        return None
    if pair.admitted_at is None or pair.server_done_at is None:
        return None
    return float(pair.server_done_at - pair.admitted_at)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", type=int, default=1000)
    parser.add_argument("--first", type=int, default=0)
    parser.add_argument("--loss", type=float, nargs="+", default=[0.2, 0.3])
    args = parser.parse_args()
    for loss in args.loss:
        for version in ("DTLS 1.2", "DTLS 1.3"):
            seeds = range(args.first, args.first + args.seeds)
            times = [server_side(version, seed, loss) for seed in seeds]
            done = sorted(t for t in times if t is not None)
            if not done:
                print(f"{version}, {loss:.0%} loss: none completed")
                continue

            def pct(p: float, done: list[float] = done) -> float:
                return done[min(len(done) - 1, int(len(done) * p))]

            over = " ".join(f">{s}s {sum(t > s for t in done)}" for s in (15, 30, 45, 60))
            print(
                f"{version}, {loss:.0%} loss, {len(times)} seeds: never completed "
                f"{len(times) - len(done)}; median {statistics.median(done):.1f} s, p99 "
                f"{pct(0.99):.1f}, p99.9 {pct(0.999):.1f}, max {done[-1]:.1f}; {over}"
            )


if __name__ == "__main__":
    main()
