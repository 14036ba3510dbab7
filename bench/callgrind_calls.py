"""Which functions run per call, from two callgrind runs of the same loop with N and M
iterations: for every function, the calls made into it and the inclusive instructions of
those calls, as (M-run minus N-run) / (M - N). Used to see which OpenSSL functions a
``cryptography`` call runs (bench/RESULTS.md, ecdhe13)::

    for n in 100 300; do valgrind --tool=callgrind --callgrind-out-file=cg.$n \\
        .venv/bin/python bench/crypto_calls.py --op p256-routes/now --count $n; done
    python bench/callgrind_calls.py cg.100 cg.300 200 --match 'export_to_provider|check_named'

Inclusive costs are summed over call sites (a recursive function's calls count once per
level); the total per call is the runs' whole difference.

Usage: python bench/callgrind_calls.py SMALL BIG ITERATIONS [--match REGEX] [--top K]
"""

from __future__ import annotations

import argparse
import collections
import re

_NAMED = re.compile(r"\((\d+)\)(?: (.*))?")


def parse(path: str) -> tuple[collections.Counter[str], collections.Counter[str], int]:
    """(calls into each function, inclusive cost of those calls, the run's total)."""
    names: dict[str, str] = {}
    calls: collections.Counter[str] = collections.Counter()
    inclusive: collections.Counter[str] = collections.Counter()
    total = 0
    callee = ""
    pending: int | None = None

    def name(text: str) -> str:
        # callgrind's name compression: "(id) name" the first time, "(id)" after.
        m = _NAMED.match(text)
        if m is None:
            return text
        if m.group(2) is not None:
            names[m.group(1)] = m.group(2)
        return names[m.group(1)]

    with open(path) as f:
        for line in f:
            if line.startswith("fn="):
                name(line[3:].rstrip("\n"))
            elif line.startswith("cfn="):
                callee = name(line[4:].rstrip("\n"))
            elif line.startswith("calls="):
                pending = int(line[6:].split()[0])
            elif line[:1].isdigit() or line[:1] in "+-*":
                parts = line.split()
                cost = int(parts[1]) if len(parts) > 1 else 0
                if pending is None:
                    total += cost
                else:
                    calls[callee] += pending
                    inclusive[callee] += cost
                    pending = None
    return calls, inclusive, total


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("small")
    parser.add_argument("big")
    parser.add_argument("iterations", type=float, help="M - N")
    parser.add_argument("--match", help="only functions whose name matches this regex")
    parser.add_argument("--top", type=int, default=40)
    args = parser.parse_args()
    calls_a, incl_a, total_a = parse(args.small)
    calls_b, incl_b, total_b = parse(args.big)
    n = args.iterations
    print(f"instructions per call: {(total_b - total_a) / n:,.0f}")
    match = re.compile(args.match) if args.match else None
    rows = []
    for function in set(calls_a) | set(calls_b):
        if match is not None and not match.search(function):
            continue
        calls = (calls_b[function] - calls_a[function]) / n
        inclusive = (incl_b[function] - incl_a[function]) / n
        if abs(calls) >= 0.5 or abs(inclusive) > 500:
            rows.append((inclusive, calls, function))
    print(f"{'inclusive':>12} {'calls':>8}  function")
    for inclusive, calls, function in sorted(rows, reverse=True)[: args.top]:
        print(f"{inclusive:12,.0f} {calls:8.2f}  {function[:100]}")


if __name__ == "__main__":
    main()
