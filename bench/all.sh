#!/bin/sh
# Issue 14's targets table: every bench of the table once with its defaults, back to back, on
# a quiet machine (no suite, fuzzer or helper running); bench/RESULTS.md's session tables
# were made this way. handshake_udp.py runs twice: the first bench after compileall read low
# in sessions 11 and 13. With --workers, bench/workers.py follows (about 10 minutes more:
# its defaults, then with the generator under SCHED_IDLE).
#
# The interpreter matters as much as the host: the ratios compare our interpreted server with
# C, so a CPython built without profile-guided optimization (a plain source build, pyenv's
# default) reads them lower than a distribution's python3, which has it (bench/RESULTS.md,
# session 23). PY names the interpreter (default: .venv's); `make bench` runs this with
# .venv-bench, made from the distribution's python3. The first lines printed name the host's
# CPU and the interpreter.
#
# Usage: [PY=PYTHON] sh bench/all.sh [--workers]   (from the repository's top; prints to stdout)
set -eu
PY=${PY:-.venv/bin/python}
echo "== host: $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | sed 's/^ *//')," \
    "family $(grep -m1 'cpu family' /proc/cpuinfo | cut -d: -f2 | tr -d ' ')" \
    "model $(grep -m1 '^model[[:space:]]*:' /proc/cpuinfo | cut -d: -f2 | tr -d ' '), $(nproc) cores"
echo "== interpreter: $("$PY" -c 'import sys; print(sys.version.split()[0], getattr(sys, "_base_executable", sys.executable))')"
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
