"""How fast two CPython builds run Python, and our gate, side by side: which interpreter to
read the benches on.

The benches compare our interpreted server with C (pyOpenSSL, OpenSSL's ``ssl``), so their
ratios depend on how the interpreter was built: a plain source build (pyenv's default: no
profile-guided or link-time optimization, a shared libpython) runs Python code slower than
a distribution's python3, built with profile-guided optimization and libpython linked into
the executable (bench/RESULTS.md, session 23).

This runs the same two measures in this interpreter, then in ``--against`` (another Python
with dtlsgate installed, in a child process: by default ``.venv-bench``'s, which ``make
bench`` makes from the distribution's python3), and prints each one's figures and the ratio
of their rates:

- ``loop``: method calls, attribute reads and dict stores, nothing of dtlsgate;
- ``gate``: HelloVerifyRequests per second from ``Gate.judge`` on OpenSSL's captured DTLS 1.2
  ClientHello (pure Python and one BLAKE2s MAC per reply).

Rounds alternate the two, each in a fresh process (a warm-up, then the median of three
process-time measurements); the ratio is the median of the rounds' ratios.

Usage: python bench/interpreter.py [--against PYTHON] [--rounds 9]
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
HELLO_HEX = ROOT / "tests" / "data" / "openssl_dtls12_client_hello.hex"
LOOP_ITERATIONS = 1_000_000
GATE_REPLIES = 50_000


class _Point:
    __slots__ = ("a", "b")

    def __init__(self, a: int, b: int) -> None:
        self.a = a
        self.b = b

    def at(self, x: int) -> int:
        return self.a + x * self.b


def loop_seconds() -> float:
    point, table, total = _Point(1, 2), {}, 0
    start = time.process_time()
    for i in range(LOOP_ITERATIONS):
        total += point.at(i)
        table[i & 255] = total
    return time.process_time() - start


def gate_seconds() -> float:
    from dtlsgate import CookieJar, Gate, ServerConfig

    gate = Gate(ServerConfig(cookie_jar=CookieJar(bytes(range(32)))))
    hello = bytes.fromhex(HELLO_HEX.read_text().strip())
    judge, peer, now = gate.judge, ("127.0.0.1", 40000), time.time()
    if type(judge(hello, peer, now)) is not bytes:
        raise SystemExit("interpreter.py: the gate did not answer with a HelloVerifyRequest")
    start = time.process_time()
    for _ in range(GATE_REPLIES):
        judge(hello, peer, now)
    return time.process_time() - start


def libpython() -> str:
    """Where the interpreter's code is: a shared libpython (its path) or the executable.
    Read from the process's mappings (Linux), not from ``sysconfig``: Debian records its
    shared build's configuration, while /usr/bin/python3 has libpython linked in."""
    try:
        maps = Path("/proc/self/maps").read_text()
    except OSError:
        return "(unknown)"
    for line in maps.splitlines():
        path = line.split()[-1]
        if "/libpython" in path:
            return f"shared, {path}"
    return "in the executable"


def measure() -> dict[str, object]:
    """This interpreter's figures: loop iterations and gate replies per CPU-second, the
    median of three measurements after a warm-up."""
    loop_seconds(), gate_seconds()
    loops = [loop_seconds() for _ in range(3)]
    gates = [gate_seconds() for _ in range(3)]
    return {
        "python": sys.version.split()[0],
        "executable": getattr(sys, "_base_executable", sys.executable),
        "libpython": libpython(),
        "loop": LOOP_ITERATIONS / statistics.median(loops),
        "gate": GATE_REPLIES / statistics.median(gates),
    }


def in_child(python: str) -> dict[str, object]:
    run = subprocess.run(
        [python, __file__, "--child"],
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    if run.returncode:
        raise SystemExit(f"interpreter.py: {python} failed:\n{run.stderr.strip()}")
    figures: dict[str, object] = json.loads(run.stdout)
    return figures


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--against", default=str(ROOT / ".venv-bench" / "bin" / "python"))
    parser.add_argument("--rounds", type=int, default=9)
    parser.add_argument("--child", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        print(json.dumps(measure()))
        return
    if not Path(args.against).exists():
        raise SystemExit(f"interpreter.py: no {args.against} (`make bench` makes .venv-bench)")
    # Rounds alternate the two interpreters, each round in a fresh process, so that the
    # machine's noise falls on both alike.
    runs: dict[str, list[dict[str, object]]] = {"this": [], "against": []}
    for _ in range(args.rounds):
        runs["this"].append(in_child(sys.executable))
        runs["against"].append(in_child(args.against))
    for name, figures in runs.items():
        first = figures[0]
        median = {
            key: statistics.median(float(f[key]) for f in figures)  # type: ignore[arg-type]
            for key in ("loop", "gate")
        }
        print(f"{name:8} Python {first['python']} {first['executable']}")
        print(f"{'':8} libpython: {first['libpython']}")
        print(
            f"{'':8} loop {median['loop']:,.0f} iterations/s, "
            f"gate {median['gate']:,.0f} HelloVerifyRequests/s (medians)"
        )
    for key in ("loop", "gate"):
        ratios = sorted(
            float(a[key]) / float(t[key])  # type: ignore[arg-type]
            for a, t in zip(runs["against"], runs["this"], strict=True)
        )
        print(
            f"{key}: against / this = {statistics.median(ratios):.2f} "
            f"(rounds {ratios[0]:.2f}-{ratios[-1]:.2f})"
        )


if __name__ == "__main__":
    main()
