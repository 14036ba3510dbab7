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
# The cores the hypervisor took while a bench ran (steal time, /proc/stat): on this
# workplace's VMs near 0 with the cores idle and up to 0.6 of 2 with both busy
# (bench/RESULTS.md, session 25), which slows whatever runs then. Two servers timed in
# alternating rounds are hit alike; a bench that needs both cores (workers.py) is not.
cpu_line() { head -1 /proc/stat; }
stolen() {
    printf '%s\n%s\n' "$1" "$(cpu_line)" | awk -v n="$(nproc)" '
        NR == 1 { for (i = 2; i <= 9; i++) a[i] = $i }
        NR == 2 { for (i = 2; i <= 9; i++) { d = $i - a[i]; t += d; if (i == 9) st = d }
                  printf "%.2f", t ? n * st / t : 0 }'
}
run() {
    echo "== $(date -u +%H:%M:%S) load $(cut -d' ' -f1 /proc/loadavg): $*"
    before=$(cpu_line)
    "$PY" -W ignore "$@"
    echo "   (the hypervisor took $(stolen "$before") of $(nproc) cores during it)"
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
