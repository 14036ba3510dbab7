"""Where the DTLS 1.2 server's time goes, in time rather than instructions: a sampling
profile (Linux ``perf``, the ``cpu-clock`` software event) of in-memory handshakes, our
server against pyOpenSSL's, by shared object and by symbol.

The instruction counts elsewhere in bench/ (callgrind) are exact but weigh every instruction
alike; a bytecode that misses the caches costs more than one that does not, and the P-256
operations between our bytecodes evict them. This samples the CPU time itself.

Each server runs in a child process of its own, driven as bench/handshake.py drives it
(pyOpenSSL clients in memory, ``--in-flight`` at a time in lockstep, four by default as
there; ECDHE-ECDSA, AES-128-GCM, EMS, cookie exchange), under
``perf record -e cpu-clock -D -1 --control``: the child enables the samples only around its
counted handshakes, after a warm-up. A share of the samples times the child's process CPU
time per handshake gives microseconds per handshake, for the client and the driver as well
as the server; the client and the driver are the same for both servers, so the difference
between the two columns is the difference between the servers. It includes what the
servers free after the timed calls (bench/handshake.py times only the calls).

Needs ``perf`` (Debian's ``linux-perf``); it does not need hardware counters.

Usage: python bench/time_profile.py [--count N] [--rounds R] [--group secp256r1 | x25519]
                                    [--symbols K] [--in-flight K]
"""

from __future__ import annotations

import argparse
import collections
import json
import os
import re
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

SERVERS = ("dtlsgate", "pyopenssl")
WARMUP = 200
# perf report --stdio lines: "    53.48%  _rust.abi3.so" or, with symbols,
# "    11.90%  libpython3.11.so.1.0  [.] _PyEval_EvalFrameDefault".
REPORT_LINE = re.compile(r"^\s*([0-9.]+)%\s+(\S+)(?:\s+\[[.k]\]\s+(.+?))?\s*$")


def child(server: str, count: int, group_name: str, in_flight: int, ctl: str, ack: str) -> None:
    """Run ``count`` handshakes of ``server``, ``in_flight`` at a time, with perf's samples
    enabled around them; print the process CPU and the server's own time per handshake as
    JSON."""
    import handshake as bench

    from dtlsgate.wire.enums import NamedGroup

    group = NamedGroup[group_name]
    client_context = bench.client_context()
    if server == "dtlsgate":
        config = bench.our_config(group)
        gate = bench.Gate(config)

        def make() -> bench.OurServer | bench.PyOpenSSLServer:
            return bench.OurServer(config, gate)
    else:
        server_context = bench.pyopenssl_server_context(group)

        def make() -> bench.OurServer | bench.PyOpenSSLServer:
            return bench.PyOpenSSLServer(server_context)

    bench.rate(make, client_context, WARMUP, group, in_flight)  # the group checked
    with open(ctl, "w") as control, open(ack) as acks:
        control.write("enable\n")
        control.flush()
        acks.readline()
        started = time.process_time()
        server_us = 1e6 / bench.rate(make, client_context, count, group, in_flight)
        process = time.process_time() - started
        control.write("disable\n")
        control.flush()
        acks.readline()
    print(json.dumps({"process_us": process / count * 1e6, "server_us": server_us}))


def report(data: str, sort: str) -> dict[str, float]:
    """Percent of the samples in ``data`` per DSO (``sort`` "dso") or per "DSO symbol"."""
    out = subprocess.run(
        ["perf", "report", "-i", data, "--sort", sort, "--stdio", "-q"],
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    shares: dict[str, float] = collections.defaultdict(float)
    for line in out.splitlines():
        match = REPORT_LINE.match(line)
        if match:
            percent, dso, symbol = match.groups()
            shares[dso if symbol is None else f"{dso} {symbol}"] += float(percent)
    return shares


@dataclass
class Run:
    """One child's microseconds per handshake (process CPU, the server's calls) and its
    samples' percent per DSO and per "DSO symbol"."""

    process_us: float
    server_us: float
    dso: dict[str, float]
    symbol: dict[str, float]

    def per_handshake(self, kind: str) -> dict[str, float]:
        """Microseconds per handshake per DSO (``kind`` "dso") or per symbol: the share of
        the samples times the process CPU."""
        shares = self.dso if kind == "dso" else self.symbol
        return {name: percent / 100 * self.process_us for name, percent in shares.items()}


def profile(server: str, count: int, group: str, in_flight: int, workdir: str) -> Run:
    """One child under perf; its per-handshake times and its samples' shares."""
    ctl, ack, data = (os.path.join(workdir, name) for name in ("ctl", "ack", f"{server}.data"))
    for fifo in (ctl, ack):
        if os.path.exists(fifo):
            os.unlink(fifo)
        os.mkfifo(fifo)
    command = [
        "perf", "record", "-q", "-e", "cpu-clock", "-F", "10000", "-D", "-1",
        "--control", f"fifo:{ctl},{ack}", "-o", data, "--",
        sys.executable, os.path.abspath(__file__), "--child", server,
        "--count", str(count), "--group", group, "--in-flight", str(in_flight),
        "--ctl", ctl, "--ack", ack,
    ]  # fmt: skip
    done = subprocess.run(command, capture_output=True, text=True, timeout=600, check=True)
    times = json.loads(done.stdout.strip().splitlines()[-1])
    shares = report(data, "dso"), report(data, "dso,sym")
    return Run(times["process_us"], times["server_us"], *shares)


def medians(runs: list[Run], kind: str) -> dict[str, float]:
    """Per name, the median over ``runs`` of its microseconds per handshake."""
    tables = [run.per_handshake(kind) for run in runs]
    names = set().union(*tables)
    return {name: statistics.median(t.get(name, 0.0) for t in tables) for name in names}


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--count", type=int, default=3000)
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--group", choices=["secp256r1", "x25519"], default="secp256r1")
    parser.add_argument("--symbols", type=int, default=12)
    parser.add_argument(
        "--in-flight", type=int, default=4, help="handshakes in lockstep (bench/handshake.py's)"
    )
    parser.add_argument("--child", choices=SERVERS)
    parser.add_argument("--ctl")
    parser.add_argument("--ack")
    args = parser.parse_args()
    if args.child:
        child(args.child, args.count, args.group, args.in_flight, args.ctl, args.ack)
        return
    if shutil.which("perf") is None:
        sys.exit("needs perf: apt-get install linux-perf")

    runs: dict[str, list[Run]] = {server: [] for server in SERVERS}
    with tempfile.TemporaryDirectory() as workdir:
        for _ in range(args.rounds):
            for server in SERVERS:
                run = profile(server, args.count, args.group, args.in_flight, workdir)
                runs[server].append(run)

    ours, theirs = (runs[server] for server in SERVERS)
    print(
        f"DTLS 1.2 server handshakes in memory, {args.count} x {args.rounds} rounds, "
        f"{args.in_flight} in flight, perf cpu-clock samples\n(ECDHE {args.group}, ECDSA P-256, "
        "AES-128-GCM, EMS, cookie; "
        "the same pyOpenSSL clients and driver in both columns; medians of the rounds)"
    )
    for label, key in (("process CPU", "process_us"), ("server calls", "server_us")):
        a = statistics.median(getattr(run, key) for run in ours)
        b = statistics.median(getattr(run, key) for run in theirs)
        print(f"  {label:<14} dtlsgate {a:7.1f} us  pyopenssl {b:7.1f} us  diff {a - b:+7.1f}")
    for kind, title, limit in (("dso", "shared object", 0), ("symbol", "symbol", args.symbols)):
        a, b = medians(ours, kind), medians(theirs, kind)
        names = sorted(set(a) | set(b), key=lambda n: -abs(a.get(n, 0.0) - b.get(n, 0.0)))
        shown = [n for n in names if max(a.get(n, 0.0), b.get(n, 0.0)) >= 1.0]
        print(f"per handshake, us, by {title} (largest differences first)")
        print(f"  {'dtlsgate':>9} {'pyopenssl':>9} {'diff':>8}  {title}")
        for name in shown[: limit or None]:
            x, y = a.get(name, 0.0), b.get(name, 0.0)
            print(f"  {x:9.1f} {y:9.1f} {x - y:+8.1f}  {name}")


if __name__ == "__main__":
    main()
