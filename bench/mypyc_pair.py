"""The benches run on the pure-Python package and on a mypyc build of it, alternating.

Each round runs every bench once per build (order swapped each round), each in a fresh
process: the pure build from the installed source tree, the compiled one with ``--compiled``
(a tree made by scripts/mypyc_build.py) first on ``PYTHONPATH``. A bench's own figure
compares dtlsgate with its reference (pyOpenSSL, Python ``ssl``, the bare loop) within that
process, so the load of the machine cancels out of it; the figure here is, per round,
compiled ratio / pure ratio, and the median over rounds. The rates are printed too.

``handshake_x25519`` (``handshake.py --group x25519``) runs only when ``--only`` names it.

Usage: python bench/mypyc_pair.py --compiled DIR [--rounds R] [--only name,name] [--scale K]
"""

from __future__ import annotations

import argparse
import os
import re
import statistics
import subprocess
import sys

BENCH = os.path.dirname(os.path.abspath(__file__))
_OURS_X_BARE = r"\s+dtlsgate\s+median\s+\d+/s.*= ([\d.]+) x bare"
# name -> (arguments, {figure: regex for it in the output})
BENCHES: dict[str, tuple[list[str], dict[str, str]]] = {
    "handshake_udp": (
        ["handshake_udp.py", "--count", "300", "--rounds", "1"],
        {
            "rate": r"dtlsgate\s+median\s+(\d+)/s",
            "x pyopenssl": r"dtlsgate / pyopenssl = ([\d.]+)",
        },
    ),
    "handshake": (
        ["handshake.py", "--count", "200", "--rounds", "1"],
        {
            "rate": r"dtlsgate\s+median\s+(\d+)/s",
            "x pyopenssl": r"dtlsgate / pyopenssl = ([\d.]+)",
            "1.3 rate": r"dtlsgate 1.3\s+median\s+(\d+)/s",
            "1.3 x pyopenssl 1.2": r"dtlsgate 1.3 / pyopenssl 1.2 = ([\d.]+)",
        },
    ),
    # The same with X25519 for both servers' ECDHE (pyOpenSSL gains more from it: session 14).
    "handshake_x25519": (
        ["handshake.py", "--count", "200", "--rounds", "1", "--group", "x25519"],
        {
            "rate": r"dtlsgate\s+median\s+(\d+)/s",
            "x pyopenssl": r"dtlsgate / pyopenssl = ([\d.]+)",
            "1.3 rate": r"dtlsgate 1.3\s+median\s+(\d+)/s",
        },
    ),
    "listen": (
        ["listen.py", "--rounds", "1"],
        {
            "batch x bare": r"in batches[^\n]*\n(?:.*\n)*?" + _OURS_X_BARE,
            "one x bare": r"one datagram[^\n]*\n(?:.*\n)*?" + _OURS_X_BARE,
            "gate alone x bare": r"gate alone, in-process \(no sockets\): ([\d.]+)",
        },
    ),
    "tls13": (
        ["tls13.py", "--handshakes", "200"],
        {
            "rate": r"dtlsgate server\s+(\d+) handshakes/s",
            "x ssl": r"ratio dtlsgate/ssl\s+([\d.]+)",
        },
    ),
    "throughput": (
        ["throughput.py", "--count", "20000", "--rounds", "1"],
        {
            "MB/s": r"dtlsgate\s+median\s+([\d.]+) MB/s",
            "x pyopenssl": r"dtlsgate / pyopenssl = ([\d.]+)",
        },
    ),
}


def run(args: list[str], compiled: str | None) -> str:
    env = dict(os.environ)
    env.pop("PYTHONPATH", None)
    if compiled:
        env["PYTHONPATH"] = compiled
    done = subprocess.run(
        [sys.executable, "-W", "ignore", *args],
        cwd=BENCH,
        env=env,
        capture_output=True,
        text=True,
        timeout=900,
        check=True,
    )
    return done.stdout


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--compiled", required=True)
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--only", default=",".join(n for n in BENCHES if n != "handshake_x25519"))
    parser.add_argument("--scale", type=int, default=1, help="multiply the handshake counts")
    args = parser.parse_args()
    check = "import dtlsgate.handshake.dtls12.server as m; print(m.__file__)"
    for compiled in (None, args.compiled):
        where = run(["-c", check], compiled).strip()
        print(f"{'compiled' if compiled else 'pure':8s} build: {where}")
    names = args.only.split(",")
    figures: dict[tuple[str, str, str], list[float]] = {}
    for r in range(args.rounds):
        builds = ("pure", "compiled") if r % 2 == 0 else ("compiled", "pure")
        for name in names:
            argv, patterns = BENCHES[name]
            argv = [
                str(int(a) * args.scale) if prev in ("--count", "--handshakes") else a
                for prev, a in zip(["", *argv[:-1]], argv, strict=True)
            ]
            for build in builds:
                out = run(argv, args.compiled if build == "compiled" else None)
                for figure, pattern in patterns.items():
                    found = re.search(pattern, out)
                    if found is None:
                        print(f"round {r}: {name} {build}: no {figure!r} in:\n{out}")
                        continue
                    figures.setdefault((name, figure, build), []).append(float(found[1]))
            line = ", ".join(
                f"{figure} {figures.get((name, figure, 'pure'), [0])[-1]:g}"
                f" -> {figures.get((name, figure, 'compiled'), [0])[-1]:g}"
                for figure in patterns
            )
            print(f"round {r + 1}: {name}: {line}", flush=True)
    print(f"\nmedians over {args.rounds} rounds: pure, compiled, compiled/pure (median of rounds)")
    for name in names:
        for figure in BENCHES[name][1]:
            pure = figures.get((name, figure, "pure"), [])
            comp = figures.get((name, figure, "compiled"), [])
            if not pure or not comp:
                continue
            gain = statistics.median(c / p for p, c in zip(pure, comp, strict=False))
            print(
                f"  {name:14s} {figure:22s} {statistics.median(pure):9.2f}"
                f" {statistics.median(comp):9.2f}  {gain:.3f}"
                f"  (rounds {min(c / p for p, c in zip(pure, comp, strict=False)):.3f}"
                f"-{max(c / p for p, c in zip(pure, comp, strict=False)):.3f})"
            )


if __name__ == "__main__":
    main()
