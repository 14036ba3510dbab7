"""The asyncio servers' idle timeout per association, alone, for callgrind: a timer of its
own (what the servers did before session 11: ``loop.call_at`` at establishment, kept in a
dict, cancelled at the end) against `dtlsgate.io.idle.IdleOrder` (``add``, ``discard``).

``--count`` associations are established one after the other, each with a fresh
``last_received``, ``--held`` of them held at once (the oldest ends as the next comes: the
lockstep bench/handshake_udp.py holds 1); ``--how none`` does the same without any timer,
the baseline to subtract. On uvloop when it is installed (``aio.run``), else asyncio's loop::

    for how in none timer order; do for n in 2000 12000; do
        PYTHONHASHSEED=0 valgrind --tool=callgrind --callgrind-out-file=cg.$how.$n \\
            .venv/bin/python bench/idle_calls.py --how $how --count $n
    done; done
    # ((cg.H.12000 - cg.H.2000) - (cg.none.12000 - cg.none.2000)) / 10000 per association

Usage: python bench/idle_calls.py [--how none|timer|order] [--count N] [--held K]
"""

from __future__ import annotations

import argparse
import asyncio
from collections import deque

from dtlsgate.io import aio
from dtlsgate.io.idle import IdleOrder


class Association:
    def __init__(self, last_received: float) -> None:
        self.last_received = last_received


def idle(association: Association) -> None:
    """Never called: the timeout is far off."""


async def run(how: str, count: int, held: int) -> None:
    loop = asyncio.get_running_loop()
    live: deque[Association] = deque()
    timers: dict[Association, asyncio.TimerHandle] = {}
    order: IdleOrder[Association] = IdleOrder(loop, 300.0, idle)
    for _ in range(count):
        association = Association(loop.time())
        if how == "timer":
            timers[association] = loop.call_at(association.last_received + 300.0, idle)
        elif how == "order":
            order.add(association)
        live.append(association)
        if len(live) > held:
            ended = live.popleft()
            if how == "timer":
                timers.pop(ended).cancel()
            elif how == "order":
                order.discard(ended)
    order.stop()
    for timer in timers.values():
        timer.cancel()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--how", choices=("none", "timer", "order"), default="order")
    parser.add_argument("--count", type=int, default=10_000)
    parser.add_argument("--held", type=int, default=1)
    args = parser.parse_args()
    aio.run(run(args.how, args.count, args.held))
    print(f"{args.how}: {args.count} associations, {args.held} held at once")


if __name__ == "__main__":
    main()
