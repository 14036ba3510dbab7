"""Each benchmark that no other test runs, run once with tiny counts: a bench broken by a
change elsewhere (as `handshake_floor_udp.py` was twice, by a changed result of
`handshake_udp.server_process`) fails the suite instead of the next session's measurements.
Only that it runs to its last figure is checked, never a rate (STYLE.md 17)."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import pytest

BENCH = Path(__file__).resolve().parent.parent / "bench"

RUNS = [
    ("handshake_udp.py", ["--count", "20", "--rounds", "1"], "dtlsgate / pyopenssl ="),
    ("handshake_floor_udp.py", ["--count", "20", "--rounds", "1"], "dtlsgate / floor"),
    ("handshake.py", ["--count", "10", "--rounds", "1"], "one at a time"),
    (
        "handshake.py",
        ["--count", "3", "--rounds", "1", "--in-flight", "1"],
        "dtlsgate 1.3 / pyopenssl 1.2 =",
    ),
    (
        "handshake.py",
        ["--count", "10", "--rounds", "1", "--group", "x25519"],
        "dtlsgate 1.3 / pyopenssl 1.2 =",
    ),
    ("handshake_floor.py", ["--count", "10", "--rounds", "2"], "dtlsgate / pyOpenSSL rate ="),
    (
        "handshake_floor.py",
        ["--count", "3", "--rounds", "2", "--in-flight", "1", "--interleave"],
        "dtlsgate / pyOpenSSL rate =",
    ),
    ("throughput.py", ["--count", "50", "--rounds", "1"], "dtlsgate / pyopenssl ="),
    ("listen.py", ["--count", "50", "--rounds", "1"], "gate alone, in-process"),
    ("listen.py", ["--count", "50", "--rounds", "1", "--cpu-time"], "gate alone, in-process"),
    ("tls13.py", ["--handshakes", "10"], "ratio resumed/full"),
    ("handshake_callgrind.py", ["--count", "2", "--null"], "2 of 2 handshakes completed"),
    ("handshake_callgrind.py", ["--count", "2", "--in-memory"], "2 of 2 handshakes completed"),
    (
        "handshake_callgrind.py",
        ["--count", "3", "--in-memory", "--in-flight", "2"],
        "3 of 3 handshakes completed",
    ),
    ("aio_client.py", ["--count", "5", "--connects", "2"], "aio client on "),
    ("aio_memory.py", ["--count", "5", "--warmup", "5", "--loop", "asyncio"], "asyncio  "),
    ("idle_calls.py", ["--count", "50", "--held", "5"], "order: 50 associations"),
    ("gate_calls.py", ["hvr", "5"], "ClientHellos judged after the warm-up: hvr"),
    ("gate_calls.py", ["hrr", "5"], "ClientHellos judged after the warm-up: hrr"),
    ("gate_calls.py", ["hrr2", "5"], "ClientHellos judged after the warm-up: hrr2"),
    ("gate_calls.py", ["tls", "5"], "ClientHellos judged after the warm-up: tls"),
    ("gate_calls.py", ["tls2", "5"], "ClientHellos judged after the warm-up: tls2"),
    ("record_count.py", ["dtls13", "open", "--count", "20", "--time", "2"], "us per record"),
    (
        "record_count.py",
        ["dtls12", "seal", "--side", "client", "--count", "20", "--opcodes"],
        "bytecodes per record",
    ),
    ("echo_count.py", ["dtls13", "--count", "20", "--opcodes"], "bytecodes per echoed record"),
    ("memory.py", ["--count", "20", "--groups", "x25519"], "pending      x25519  tracemalloc"),
    ("interpreter.py", ["--against", sys.executable, "--rounds", "1"], "gate: against / this ="),
]


@pytest.mark.parametrize(("script", "args", "last"), RUNS, ids=[run[0] for run in RUNS])
def test_bench_runs_to_its_last_figure(script: str, args: list[str], last: str) -> None:
    pytest.importorskip("OpenSSL")  # the benches' pyOpenSSL contenders
    out = subprocess.run(
        [sys.executable, "-W", "ignore", str(BENCH / script), *args],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert out.returncode == 0, out.stderr[-3000:]
    assert last in out.stdout, out.stdout[-3000:]


def test_time_profile_runs_to_its_last_figure() -> None:
    """bench/time_profile.py needs Linux perf (a profiler, not a test dependency): it runs
    where perf is installed, as on the machines the figures come from."""
    pytest.importorskip("OpenSSL")
    if shutil.which("perf") is None:
        pytest.skip("perf is not installed (apt-get install linux-perf)")
    out = subprocess.run(
        [sys.executable, "-W", "ignore", str(BENCH / "time_profile.py"), "--count", "20",
         "--rounds", "1", "--symbols", "3"],
        capture_output=True,
        text=True,
        timeout=120,
    )  # fmt: skip
    assert out.returncode == 0, out.stderr[-3000:]
    assert "libpython" in out.stdout and "by symbol" in out.stdout, out.stdout[-3000:]
