#!/bin/sh
# Issue 14's targets table: every bench of the table once with its defaults, back to back, on
# a quiet machine (no suite, fuzzer or helper running); bench/RESULTS.md's session tables
# were made this way. handshake_udp.py runs twice: the first bench after compileall read low
# in sessions 11 and 13. With --workers, bench/workers.py follows (about 10 minutes more:
# its defaults, then with the generator under SCHED_IDLE).
#
# Usage: sh bench/all.sh [--workers]   (from the repository's top; prints to stdout)
set -eu
PY=${PY:-.venv/bin/python}
run() {
    echo "== $(date -u +%H:%M:%S) load $(cut -d' ' -f1 /proc/loadavg): $*"
    "$PY" -W ignore "$@"
}
"$PY" -m compileall -q src bench
run bench/handshake_udp.py
run bench/handshake_udp.py
run bench/handshake_floor_udp.py
run bench/handshake.py
run bench/handshake.py --group x25519
run bench/handshake_floor.py
run bench/tls13.py
run bench/throughput.py
run bench/listen.py --rounds 11
run bench/listen.py --rounds 11 --cpu-time
run bench/memory.py
if [ "${1:-}" = "--workers" ]; then
    run bench/workers.py
    run bench/workers.py --idle-generator --host-work '' --no-check
fi
echo "== $(date -u +%H:%M:%S) load $(cut -d' ' -f1 /proc/loadavg): done"
